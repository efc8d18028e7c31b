// KEDA's rabbitmq scaler against a real RabbitMQ (Debian's rabbitmq-server) on 127.0.0.1, one
// broker with every listener at once: AMQP, AMQPS (client certificates verified when given, SASL
// EXTERNAL), the management API over HTTP and over HTTPS (client certificate required). The
// broker's CA is known only through a --ca-dir folder or the auth parameter ca. Every failure's
// message is checked, and no secret appears in any message or log line.
import t from 'tap';
import { createPrivateKey } from 'node:crypto';
import { createConnection, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { connect as amqpConnect } from 'amqplib';
import { createCA, issueCertificate } from '../../../src/certs/x509.js';
import { scalerFactories } from '../../../src/operator/scalers/index.js';
import { createRabbitmqScaler, goQueryEscape } from '../../../src/operator/scalers/rabbitmq.js';
import type { AuthParams } from '../../../src/operator/scaledobjects/types.js';
import { validateScaledObject } from '../../../src/operator/webhook/validate.js';
import { freePort, sleep } from '../../helpers/daemon.js';
import { eventually } from '../../helpers/loop.js';
import { startRabbitmq } from '../../helpers/rabbitmq.js';
import { caDirTrusts, capturingLogger, scalerTestKit } from '../../helpers/scalers.js';
import { pollTrigger } from '../../helpers/trigger-health.js';

const { log, lines: logLines } = capturingLogger();

const root = t.testdir();
const SECRETS = {
  password: 'pw-Sup3rSecretRabbit',
  sharePassword: 'pw-Sup3rSecretSharer',
  keyPassword: 'kp-Sup3rSecretRabbitKey',
};
const USER = 'keda';

// --- PKI: the broker's CA exists only in the --ca-dir folder -----------------------------------
const serverCa = await createCA({ commonName: 'rabbitmq CA (custom)' });
const clientCa = await createCA({ commonName: 'rabbitmq client CA' });
const serverCert = await issueCertificate(serverCa, { commonName: 'rabbitmq', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedUsages: ['serverAuth'] });
// SASL EXTERNAL logs in as the certificate's common name.
const clientCert = await issueCertificate(clientCa, { commonName: 'keda-scaler', extendedUsages: ['clientAuth'] });
const unknownCn = await issueCertificate(clientCa, { commonName: 'not-a-user', extendedUsages: ['clientAuth'] });
const otherClient = await issueCertificate(serverCa, { commonName: 'keda-scaler', extendedUsages: ['clientAuth'] });
const encryptedClientKey = createPrivateKey(clientCert.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: SECRETS.keyPassword }) as string;

const { trust, noCustomTrust } = await caDirTrusts(t, root, log, 'rabbitmq-ca.crt', serverCa.certPem);

// --- the broker -------------------------------------------------------------------------------
const rabbit = await startRabbitmq(t, { cert: serverCert.certPem, key: serverCert.keyPem, clientCa: clientCa.certPem });
await rabbit.addVhost('team-a');
await rabbit.addUser(USER, SECRETS.password, ['/', 'team-a']);
await rabbit.addUser('sharer', SECRETS.sharePassword, ['/', 'team-a']);
await rabbit.addUser('keda-scaler', undefined, ['/']);
for (const q of ['orders', 'inflight', 'durable', 'rates', 'other']) await rabbit.addQueue('/', q);
for (const q of ['jobs', 'work.1', 'work.2', 'work.3', 'unrelated']) await rabbit.addQueue('team-a', q);

const amqp = `amqp://127.0.0.1:${rabbit.amqpPort}`;
const amqps = `amqps://localhost:${rabbit.amqpsPort}`;
const http = `http://127.0.0.1:${rabbit.httpPort}`;
const https = `https://localhost:${rabbit.httpsPort}`;
const keda: AuthParams = { username: USER, password: SECRETS.password };
const withCreds = (url: string, user = USER, password = SECRETS.password) => url.replace('://', `://${user}:${encodeURIComponent(password)}@`);
const clientTls: AuthParams = { tls: 'enable', cert: clientCert.certPem, key: clientCert.keyPem };

// Every error message any test saw (`messages`) is checked at the end for secrets.
const { messages, makeScaler, failure, configFailure, value, readsEventually, expectNoSecrets } = scalerTestKit({ type: 'rabbitmq', trust, timeoutMs: 10_000, log, teardown: (fn) => t.teardown(fn), settleMs: 20_000 });


// --- tests ------------------------------------------------------------------------------------

t.test('AMQP: the queue length and its changes, KEDA\'s metric name, target and activation', async (t) => {
  await rabbit.purge('/', 'orders');
  const s = makeScaler({ host: `${amqp}/`, queueName: 'orders', mode: 'QueueLength', value: '5' }, { auth: keda });
  t.equal(await value(s), 0, 'an empty queue');
  await rabbit.publish('/', 'orders', 3);
  t.equal(await value(s), 3, 'a passive declare counts at once');
  await rabbit.publish('/', 'orders', 2);
  t.equal(await value(s), 5);
  t.equal(s.metricName, 's0-rabbitmq-orders', 'KEDA\'s metric name');
  t.equal(s.targetValue, 5);
  t.equal(makeScaler({ host: amqp, queueName: 'orders.v2/eu (x)' }, { index: 3 }).metricName, 's3-rabbitmq-orders-v2-2Feu+-28x-29', 'the queue name query-escaped, then normalized, as KEDA does');
  t.equal(goQueryEscape('a b*~\'é'), 'a+b%2A~%27%C3%A9', 'Go\'s url.QueryEscape');

  // Credentials in host, as KEDA users write them (in a Secret behind the authentication).
  t.equal(await value(makeScaler({ host: withCreds(amqp), queueName: 'orders' })), 5, 'credentials in host');
  t.equal(await value(makeScaler({ host: withCreds(amqp, 'nobody', 'wrong-password'), queueName: 'orders' }, { auth: keda })), 5, 'username/password replace them');

  // Targets: KEDA's default, the deprecated queueLength, mode and value.
  t.equal(makeScaler({ host: amqp, queueName: 'orders' }).targetValue, 20, 'neither mode/value nor queueLength: QueueLength 20');
  t.equal(makeScaler({ host: amqp, queueName: 'orders', queueLength: '7' }).targetValue, 7, 'the deprecated queueLength');
  t.equal(makeScaler({ host: amqp, queueName: 'orders', mode: 'QueueLength', value: '2.5' }).targetValue, 2.5);

  const a = makeScaler({ host: amqp, queueName: 'orders', mode: 'QueueLength', value: '10', activationValue: '5' }, { auth: keda });
  const v = await value(a);
  t.equal(v, 5);
  t.notOk(a.isActive(v), '5 messages, activationValue 5: not active (KEDA: strictly above)');
  t.ok(a.isActive(6));
  t.notOk(s.isActive(0), 'default activationValue 0');
  t.ok(s.isActive(1));
  await rabbit.purge('/', 'orders');
  t.equal(await value(s), 0, 'and back to zero');
});

t.test('HTTP management API: the queue length, vhosts, excludeUnacknowledged', async (t) => {
  await rabbit.purge('/', 'orders');
  await rabbit.publish('/', 'orders', 4);
  const s = makeScaler({ host: `${http}/`, queueName: 'orders', mode: 'QueueLength', value: '5' }, { auth: keda });
  t.equal(await readsEventually(s, 4), 4);
  t.equal(s.metricName, 's0-rabbitmq-orders', 'the same metric name over either protocol');
  t.equal(await readsEventually(makeScaler({ host: withCreds(http), queueName: 'orders' }), 4), 4, 'credentials in host are basic auth');
  t.equal(await readsEventually(makeScaler({ host: `${http}/%2F`, queueName: 'orders' }, { auth: keda }), 4), 4, 'the default vhost written out');
  t.equal(await readsEventually(makeScaler({ host: http, queueName: 'orders', protocol: 'http' }, { auth: keda }), 4), 4, 'no path: the default vhost');

  await rabbit.publish('team-a', 'jobs', 2);
  t.equal(await readsEventually(makeScaler({ host: `${http}/team-a`, queueName: 'jobs' }, { auth: keda }), 2), 2, 'the vhost from host\'s path');
  t.equal(await readsEventually(makeScaler({ host: `${http}/`, queueName: 'jobs', vhostName: 'team-a' }, { auth: keda }), 2), 2, 'vhostName');
  t.equal(await value(makeScaler({ host: `${amqp}/team-a`, queueName: 'jobs' }, { auth: keda })), 2, 'and over AMQP');
  t.equal(await value(makeScaler({ host: `${amqp}/`, queueName: 'jobs' }, { auth: { ...keda, vhostName: 'team-a' } })), 2, 'vhostName from the authentication, over AMQP');

  // Unacknowledged messages: delivered to a consumer that has not acknowledged them yet.
  await rabbit.purge('/', 'inflight');
  await rabbit.publish('/', 'inflight', 3);
  const consumer = await amqpConnect(withCreds(amqp));
  t.teardown(() => consumer.close().catch(() => undefined));
  const channel = await consumer.createChannel();
  const held = await channel.get('inflight', { noAck: false });
  t.ok(held, 'one message taken and not acknowledged');
  const all = makeScaler({ host: http, queueName: 'inflight' }, { auth: keda });
  const ready = makeScaler({ host: http, queueName: 'inflight', excludeUnacknowledged: 'true' }, { auth: keda });
  t.equal(await readsEventually(all, 3), 3, 'messages: ready and unacknowledged');
  t.equal(await readsEventually(ready, 2), 2, 'excludeUnacknowledged: ready only');
  t.equal(await value(makeScaler({ host: amqp, queueName: 'inflight' }, { auth: keda })), 2, 'AMQP counts ready messages only, as KEDA\'s AMQP mode does');
  await consumer.close();
  t.equal(await readsEventually(ready, 3), 3, 'requeued when the consumer went away');
});

t.test('HTTP: useRegex with sum, avg and max; pageSize', async (t) => {
  const counts = { 'work.1': 1, 'work.2': 2, 'work.3': 4, unrelated: 9 };
  for (const [q, n] of Object.entries(counts)) await rabbit.publish('team-a', q, n);
  const md = { host: `${http}/team-a`, queueName: '^work\\.', useRegex: 'true' };
  const sum = makeScaler(md, { auth: keda });
  t.equal(await readsEventually(sum, 7), 7, 'sum (the default)');
  t.equal(await readsEventually(makeScaler({ ...md, operation: 'avg' }, { auth: keda }), 2), 2, 'avg: 7 / 3, rounded down as KEDA\'s integer division');
  t.equal(await readsEventually(makeScaler({ ...md, operation: 'max' }, { auth: keda }), 4), 4, 'max');
  t.equal(await value(makeScaler({ ...md, queueName: '^nothing-matches$' }, { auth: keda })), 0, 'no queue matches: 0, as KEDA');
  t.equal(sum.metricName, 's0-rabbitmq--5Ework-5C-', 'the regex in the metric name, as KEDA names it');
  const paged = await failure(value(makeScaler({ ...md, pageSize: '2' }, { auth: keda })));
  t.equal(paged, `rabbitmq ${http}/api/queues/team-a: the regex "^work\\." matches more queues than pageSize (2): raise pageSize (RabbitMQ allows up to 500) or narrow the regex`);
  const noVhost = await failure(value(makeScaler({ ...md, vhostName: 'no-such-vhost' }, { auth: keda })));
  t.match(noVhost, `rabbitmq ${http}/api/queues/no-such-vhost: the upstream answered HTTP 404`);
  t.match(noVhost, /no vhost "no-such-vhost": check vhostName/);
});

t.test('HTTP: MessageRate, and its activation', async (t) => {
  await rabbit.purge('/', 'rates');
  const s = makeScaler({ host: http, queueName: 'rates', mode: 'MessageRate', value: '50' }, { auth: keda });
  t.equal(s.targetValue, 50);
  let rate = 0;
  const deadline = Date.now() + 20_000;
  while (rate <= 0 && Date.now() < deadline) {
    await rabbit.publish('/', 'rates', 5);
    rate = await value(s).catch(() => 0);
  }
  t.ok(rate > 0, `messages published per second: ${rate}`);
  t.ok(s.isActive(rate), 'a rate above 0 is active');
  t.ok(s.isActive(0), 'a rate of 0 with messages waiting is active too (KEDA)');
  const high = makeScaler({ host: http, queueName: 'rates', mode: 'MessageRate', value: '50', activationValue: '1000000' }, { auth: keda });
  await value(high);
  t.notOk(high.isActive(0), 'neither the rate nor the queue above activationValue');
  await rabbit.purge('/', 'rates');
});

t.test('AMQPS: the CA in --ca-dir only, the auth parameter ca, EXTERNAL with a client certificate', async (t) => {
  await rabbit.purge('/', 'orders');
  await rabbit.publish('/', 'orders', 2);
  t.equal(await value(makeScaler({ host: `${amqps}/`, queueName: 'orders' }, { auth: keda })), 2, 'trusted through the --ca-dir folder; PLAIN login over TLS');
  t.equal(await value(makeScaler({ host: amqps, queueName: 'orders' }, { auth: { ...keda, tls: 'enable', ca: serverCa.certPem }, trust: noCustomTrust })), 2, 'the auth parameter ca (tls enable)');

  const untrusted = await failure(value(makeScaler({ host: amqps, queueName: 'orders' }, { auth: keda, trust: noCustomTrust })));
  t.match(untrusted, `rabbitmq amqps://localhost:${rabbit.amqpsPort}/%2F: TLS: the upstream's certificate is not trusted`);
  t.match(untrusted, /put its CA in a --ca-dir folder or the trigger's ca/);
  const ignored = await failure(value(makeScaler({ host: amqps, queueName: 'orders' }, { auth: { ...keda, ca: serverCa.certPem }, trust: noCustomTrust })));
  t.match(ignored, /not trusted/, 'without tls enable, ca is not used (as KEDA)');

  const external = `${amqps}/?auth_mechanism=external`;
  t.equal(await value(makeScaler({ host: external, queueName: 'orders' }, { auth: clientTls })), 2, 'SASL EXTERNAL: the client certificate is the login');
  t.equal(await value(makeScaler({ host: external, queueName: 'orders' }, { auth: { ...clientTls, key: encryptedClientKey, keyPassword: SECRETS.keyPassword } })), 2, 'an encrypted key with keyPassword');
  t.equal(await value(makeScaler({ host: amqps, queueName: 'orders' }, { auth: { ...keda, ...clientTls } })), 2, 'a client certificate with a PLAIN login');

  const noCert = await failure(value(makeScaler({ host: external, queueName: 'orders' })));
  t.match(noCert, `rabbitmq amqps://localhost:${rabbit.amqpsPort}/%2F: the broker refused the login (ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL`);
  t.match(noCert, /auth_mechanism external needs a client certificate: give cert and key in the trigger authentication, with tls enable$/);
  const unknownUser = await failure(value(makeScaler({ host: external, queueName: 'orders' }, { auth: { tls: 'enable', cert: unknownCn.certPem, key: unknownCn.keyPem } })));
  t.match(unknownUser, /refused the login .*: is there a user named as the client certificate's common name\?$/, 'a trusted certificate whose name is no user');
  const wrongClient = await failure(value(makeScaler({ host: external, queueName: 'orders' }, { auth: { tls: 'enable', cert: otherClient.certPem, key: otherClient.keyPem } })));
  t.match(wrongClient, `rabbitmq amqps://localhost:${rabbit.amqpsPort}/%2F: `);
  t.match(
    wrongClient,
    /the broker refused our client certificate \(ERR_SSL_\w+\): does it trust the CA that issued the auth parameter cert\?|closed the connection during the AMQP handshake \(it may refuse our client certificate/,
    `a client certificate the broker does not trust: ${wrongClient}`,
  );
});

t.test('HTTPS management API: a client certificate required', async (t) => {
  await rabbit.purge('/', 'orders');
  await rabbit.publish('/', 'orders', 3);
  const md = { host: `${https}/`, queueName: 'orders' };
  t.equal(await readsEventually(makeScaler(md, { auth: { ...keda, ...clientTls } }), 3), 3, 'the CA in --ca-dir, a client certificate');
  t.equal(await readsEventually(makeScaler(md, { auth: { ...keda, ...clientTls, ca: serverCa.certPem }, trust: noCustomTrust }), 3), 3, 'the auth parameter ca');
  const noCert = await failure(value(makeScaler(md, { auth: keda })));
  t.match(noCert, `rabbitmq ${https}/api/queues/%2F/orders: `);
  t.match(noCert, /closed the connection.*give cert and key in the trigger authentication, with tls enable|certificate required/i, `without a client certificate: ${noCert}`);
  const untrusted = await failure(value(makeScaler(md, { auth: { ...keda, ...clientTls }, trust: noCustomTrust })));
  t.match(untrusted, `rabbitmq ${https}/api/queues/%2F/orders: TLS: the upstream's certificate is not trusted`);
});

t.test('unsafeSsl: an untrusted broker is reached, with one warning', async (t) => {
  const before = logLines.length;
  const md = { host: amqps, queueName: 'orders', unsafeSsl: 'true' };
  await value(makeScaler(md, { auth: keda, trust: noCustomTrust }));
  await value(makeScaler(md, { auth: keda, trust: noCustomTrust }));
  const warnings = logLines.slice(before).filter((l) => l.level === 40 && l.msg.includes('unsafeSsl'));
  t.equal(warnings.length, 1, 'warned once for this broker');
  t.match(warnings[0]?.msg, `rabbitmq amqps://localhost:${rabbit.amqpsPort}/%2F: unsafeSsl is true, the upstream's certificate is NOT verified`);
  t.match(configFailure(() => makeScaler({ ...md, unsafeSsl: 'maybe' })), /unsafeSsl "maybe" is not a boolean/);
});

t.test('a missing queue closes its AMQP channel, not the checks of others on the connection', async (t) => {
  await rabbit.purge('/', 'orders');
  await rabbit.publish('/', 'orders', 1);
  const missing = makeScaler({ host: amqp, queueName: 'no-such-queue' }, { auth: keda });
  const present = makeScaler({ host: amqp, queueName: 'orders' }, { auth: keda });
  const msg = await failure(value(missing));
  t.equal(msg, `rabbitmq ${amqp}/%2F: no queue "no-such-queue" in vhost "/" (404 NOT_FOUND): check queueName, and vhostName or the vhost in host's path`);
  t.equal(await value(present), 1, 'the same connection still serves');
  const together = await Promise.allSettled([value(missing), ...Array.from({ length: 6 }, () => value(present)), value(missing)]);
  t.same(
    together.map((r) => (r.status === 'fulfilled' ? r.value : 'failed')),
    ['failed', 1, 1, 1, 1, 1, 1, 'failed'],
    'checks running alongside a failing one are not disturbed',
  );
  t.equal(await failure(value(missing)), msg, 'and the missing queue fails the same way each time');
  await rabbit.addQueue('/', 'no-such-queue');
  t.equal(await value(missing), 0, 'until it exists');
  await rabbit.deleteQueue('/', 'no-such-queue');

  const httpMissing = await failure(value(makeScaler({ host: http, queueName: 'no-such-queue' }, { auth: keda })));
  t.equal(
    httpMissing,
    `rabbitmq ${http}/api/queues/%2F/no-such-queue: the upstream answered HTTP 404: {"error":"Object Not Found","reason":"Not Found"} (no queue "no-such-queue" in vhost "/": check queueName, and vhostName or the vhost in host's path)`,
  );
});

t.test('logins, vhosts, and things that are not the broker', async (t) => {
  const badLogin = await failure(value(makeScaler({ host: amqp, queueName: 'orders' }, { auth: { username: USER, password: `${SECRETS.password}-wrong` } })));
  t.match(badLogin, `rabbitmq ${amqp}/%2F: the broker refused the login (ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN`);
  t.match(badLogin, /check the username and password/);
  const guest = await failure(value(makeScaler({ host: amqp, queueName: 'orders' })));
  t.match(guest, /refused the login/, 'no credentials: guest/guest, as amqp091-go (KEDA\'s client), which this broker does not have');
  const noVhost = await failure(value(makeScaler({ host: `${amqp}/no-such-vhost`, queueName: 'orders' }, { auth: keda })));
  t.equal(noVhost, `rabbitmq ${amqp}/no-such-vhost: the broker refused to open vhost "no-such-vhost": it does not exist, or user "keda" has no access to it`);
  const httpLogin = await failure(value(makeScaler({ host: http, queueName: 'orders' }, { auth: { username: USER, password: `${SECRETS.password}-wrong` } })));
  t.match(httpLogin, `rabbitmq ${http}/api/queues/%2F/orders: the upstream answered HTTP 401`);
  t.match(httpLogin, /check the username and password/);

  const plainToTls = await failure(value(makeScaler({ host: `amqp://127.0.0.1:${rabbit.amqpsPort}`, queueName: 'orders' }, { auth: keda })));
  t.match(plainToTls, new RegExp(`^rabbitmq amqp://127\\.0\\.0\\.1:${rabbit.amqpsPort}/%2F: `));
  t.match(plainToTls, /the server closed the connection.*: is host's port the broker's AMQP port\? \(5672; the TLS port, 5671, needs amqps:\/\/\)$/, `amqp:// to the TLS port: ${plainToTls}`);
  const amqpToHttp = await failure(value(makeScaler({ host: `amqp://127.0.0.1:${rabbit.httpPort}`, queueName: 'orders' }, { auth: keda })));
  t.match(amqpToHttp, new RegExp(`^rabbitmq amqp://127\\.0\\.0\\.1:${rabbit.httpPort}/%2F: the server closed the connection.*is host's port the broker's AMQP port\\?`), `AMQP to the management port: ${amqpToHttp}`);
  const httpToAmqp = await failure(value(makeScaler({ host: `http://127.0.0.1:${rabbit.amqpPort}`, queueName: 'orders' }, { auth: keda })));
  t.match(httpToAmqp, new RegExp(`^rabbitmq http://127\\.0\\.0\\.1:${rabbit.amqpPort}/api/queues/%2F/orders: `), `HTTP to the AMQP port: ${httpToAmqp}`);

  const port = await freePort();
  t.match(await failure(value(makeScaler({ host: `amqp://127.0.0.1:${port}`, queueName: 'orders' }))), `rabbitmq amqp://127.0.0.1:${port}/%2F: connection refused`);
  t.match(await failure(value(makeScaler({ host: `http://127.0.0.1:${port}`, queueName: 'orders' }))), `rabbitmq http://127.0.0.1:${port}/api/queues/%2F/orders: connection refused`);

  // A server that accepts and never answers: the call is bounded, and can be aborted.
  const sockets = new Set<Socket>();
  const silent = createNetServer((s) => void sockets.add(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => silent.close(() => r()));
  });
  const silentPort = (silent.address() as AddressInfo).port;
  const slow = makeScaler({ host: `amqp://127.0.0.1:${silentPort}`, queueName: 'orders' }, { timeoutMs: 300 });
  t.equal(await failure(value(slow)), `rabbitmq amqp://127.0.0.1:${silentPort}/%2F: no answer within 300 ms`);
  const httpSlow = makeScaler({ host: `http://127.0.0.1:${silentPort}`, queueName: 'orders', timeout: '250' }, { timeoutMs: 60_000 });
  t.equal(await failure(value(httpSlow)), `rabbitmq http://127.0.0.1:${silentPort}/api/queues/%2F/orders: no answer within 250 ms`, 'the timeout metadata, for http');
  const goForm = makeScaler({ host: `http://127.0.0.1:${silentPort}`, queueName: 'orders', timeout: '0.2s' }, { timeoutMs: 60_000 });
  t.equal(await failure(value(goForm)), `rabbitmq http://127.0.0.1:${silentPort}/api/queues/%2F/orders: no answer within 200 ms`, 'in Go\'s duration form too');
  const ac = new AbortController();
  const pending = value(makeScaler({ host: `amqp://127.0.0.1:${silentPort}/v`, queueName: 'orders' }), ac.signal);
  setTimeout(() => ac.abort(), 50);
  t.equal(await failure(pending), `rabbitmq amqp://127.0.0.1:${silentPort}/v: request aborted`);
});

t.test('connection sharing: one AMQP connection per identity, one HTTP keep-alive pool', async (t) => {
  const sharer: AuthParams = { username: 'sharer', password: SECRETS.sharePassword };
  const queues = ['orders', 'inflight', 'durable', 'rates', 'other'];
  const scalers = Array.from({ length: 20 }, (_, i) => makeScaler({ host: amqp, queueName: queues[i % queues.length]! }, { auth: sharer }));
  const values = await Promise.all(scalers.map((s) => value(s)));
  t.equal(values.length, 20, 'twenty scalers, five queues, read at once');
  for (let i = 0; i < 3; i++) await Promise.all(scalers.map((s) => value(s)));
  const others = makeScaler({ host: `${amqp}/team-a`, queueName: 'jobs' }, { auth: sharer });
  await value(others);
  const mine = async () => (await rabbit.connections()).filter((c) => c.user === 'sharer');
  // The broker lists connections from its statistics: wait for them, then make sure no more come.
  await eventually('the connections to be listed', async () => ((await mine()).length >= 2 ? true : undefined), 15_000);
  await sleep(1500);
  const listed = await mine();
  t.equal(listed.filter((c) => c.vhost === '/').length, 1, 'one connection for the twenty scalers of one identity');
  t.equal(listed.filter((c) => c.vhost === 'team-a').length, 1, 'another vhost is another connection');
  t.same([...new Set(listed.map((c) => c.clientName))], ['keda-ts rabbitmq scaler'], 'named in the broker\'s connection list');

  // HTTP: through a counting proxy in front of the management API.
  let accepted = 0;
  const proxied = new Set<Socket>();
  const proxy = createNetServer((client) => {
    accepted++;
    const upstream = createConnection({ host: '127.0.0.1', port: rabbit.httpPort });
    proxied.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of proxied) s.destroy();
    return new Promise<void>((r) => proxy.close(() => r()));
  });
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const httpScalers = Array.from({ length: 10 }, (_, i) => makeScaler({ host: proxyUrl, queueName: queues[i % queues.length]! }, { auth: sharer }));
  for (let round = 0; round < 3; round++) for (const s of httpScalers) await value(s);
  // One pool for all: a request sent just as the previous answer ends may open a second connection.
  t.ok(accepted >= 1 && accepted <= 2, `ten HTTP scalers, thirty requests one after another: ${accepted} keep-alive connection(s), not one pool each`);
});

t.test('the broker goes away and comes back: clear failures, then values, without rebuilding', async (t) => {
  await rabbit.purge('/', 'durable');
  await rabbit.publish('/', 'durable', 2);
  const overAmqp = makeScaler({ host: amqp, queueName: 'durable' }, { auth: keda });
  const overHttp = makeScaler({ host: http, queueName: 'durable' }, { auth: keda });
  t.equal(await value(overAmqp), 2);
  t.equal(await readsEventually(overHttp, 2), 2);
  // The engine polling a trigger whose host (with its password) is in the TriggerAuthentication.
  const poll = await pollTrigger(t, {
    type: 'rabbitmq',
    metadata: { queueName: 'durable', mode: 'QueueLength', value: '1' },
    auth: { host: withCreds(amqp) },
    trust,
    log,
  });
  await poll.until((r) => r.value === 2);

  await rabbit.daemon.stop();
  const amqpDown = await failure(value(overAmqp));
  t.match(amqpDown, `rabbitmq ${amqp}/%2F: connection refused`, amqpDown);
  t.match(await failure(value(overHttp)), `rabbitmq ${http}/api/queues/%2F/durable: connection refused`);
  // A poll that ran while the broker was shutting down may fail with the shutdown's own message.
  const down = await poll.until((r) => r.failures > 0 && r.error?.includes('connection refused') === true);
  messages.push(down.error ?? '');
  t.match(down.error, `rabbitmq ${amqp}/%2F: connection refused`, 'the trigger\'s health says why');

  await rabbit.daemon.start();
  t.equal(await readsEventually(overAmqp, 2), 2, 'the same scaler reconnects at its next check; the persistent messages are still there');
  t.equal(await readsEventually(overHttp, 2), 2);
  const up = await poll.until((r) => r.failures === 0 && r.value === 2 && r.error === undefined);
  t.equal(up.active, true);
  t.equal(await poll.query(), '2', 'the metric served again');
});

t.test('admission: bad metadata refused with KEDA\'s parameter names', async (t) => {
  const scalers = { trust, timeoutMs: 3000, log };
  const so = (metadata: Record<string, string>, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'consumer', namespace: 'default' },
    spec: { scaleTargetRef: { name: 'consumer' }, triggers: [{ type: 'rabbitmq', metadata, ...extra }] },
  });
  const authRef = { authenticationRef: { name: 'rabbitmq-conn' } };
  t.same(validateScaledObject(so({ queueName: 'orders', mode: 'QueueLength', value: '10' }, authRef), { list: () => [] }, scalers).allowed, true, 'host in the authentication: not known here, not an error');
  t.same(validateScaledObject(so({ queueName: 'orders', protocol: 'http', useRegex: 'true' }, authRef), { list: () => [] }, scalers).allowed, true);
  const cases: [Record<string, string>, RegExp][] = [
    [{ host: amqp }, /spec\.triggers\[0\] \(rabbitmq\): no queueName given in metadata/],
    [{ host: amqp, queueName: 'q', useRegex: 'true' }, /useRegex needs protocol http \(the management API\); host is amqp/],
    [{ host: amqp, queueName: 'q', excludeUnacknowledged: 'true' }, /excludeUnacknowledged needs protocol http/],
    [{ host: amqp, queueName: 'q', mode: 'MessageRate', value: '5' }, /mode MessageRate needs protocol http/],
    [{ queueName: 'q', protocol: 'amqp', mode: 'MessageRate', value: '5' }, /mode MessageRate needs protocol http/],
    [{ host: http, queueName: 'q', mode: 'DeliverGetRate', value: '5' }, /mode "DeliverGetRate" is not supported \(one of: QueueLength, MessageRate\)/],
    [{ host: http, queueName: 'q', queueLength: '5', value: '3' }, /queueLength is deprecated and cannot be combined with mode or value/],
    [{ host: http, queueName: 'q', mode: 'QueueLength' }, /mode QueueLength needs a value/],
    [{ host: http, queueName: 'q', value: '4' }, /value needs a mode/],
    [{ host: 'ftp://broker', queueName: 'q' }, /host: the scheme "ftp" is not amqp, amqps, http or https/],
    [{ host: amqp, queueName: 'q', protocol: 'http' }, /protocol http needs an http:\/\/ or https:\/\/ host, not amqp:\/\//],
    [{ host: amqp, queueName: 'q', protocol: 'stomp' }, /protocol "stomp" is not supported \(one of: auto, amqp, http\)/],
    [{ host: amqp, queueName: 'q', timeout: '1000' }, /timeout applies to protocol http only/],
    [{ host: http, queueName: 'q', useRegex: 'true', operation: 'median' }, /operation "median" is not supported \(one of: sum, avg, max\)/],
  ];
  for (const [metadata, re] of cases) {
    const v = validateScaledObject(so(metadata, authRef), { list: () => [] }, scalers);
    t.equal(v.allowed, false, JSON.stringify(metadata));
    t.match(v.message, re, JSON.stringify(metadata));
    messages.push(v.message ?? '');
  }
});

t.test('validateOnly: the metadata is checked, absent auth parameters are not an error, nothing is read', async (t) => {
  const vo = (md: Record<string, string>, auth: AuthParams = {}) => makeScaler(md, { validateOnly: 'with an authenticationRef', auth });
  const s = vo({ queueName: 'orders', mode: 'QueueLength', value: '3' });
  t.equal(s.metricName, 's0-rabbitmq-orders');
  t.equal(s.targetValue, 3);
  t.match(await failure(value(s)), /^rabbitmq: this scaler was built to validate the trigger only/);
  t.doesNotThrow(() => vo({ host: amqps, queueName: 'orders' }), 'tls, username and password are in the authentication');
  t.match(configFailure(() => makeScaler({ queueName: 'orders' }, { validateOnly: true })), /^rabbitmq: no host given in metadata, the trigger authentication or hostFromEnv$/, 'without an authenticationRef or hostFromEnv, host can come from nowhere');
  const before = (await rabbit.connections()).length;
  vo({ host: withCreds(amqp), queueName: 'orders' });
  await sleep(700);
  t.equal((await rabbit.connections()).length, before, 'no connection made');
  t.match(configFailure(() => vo({ host: amqp, queueName: 'orders' }, { tls: 'enable', cert: clientCert.certPem, key: otherClient.keyPem })), /tls enable: the key does not match the certificate/, 'what is given is still checked');
  t.match(configFailure(() => vo({ host: `${amqps}/?auth_mechanism=gssapi`, queueName: 'orders' })), /auth_mechanism "gssapi" is not supported/, 'host too');
  t.match(configFailure(() => vo({ host: `${http}/#x`, queueName: 'orders' })), /the management API address has no query or fragment/);
  const warned = logLines.filter((l) => l.msg.includes('unsafeSsl') && l.msg.includes('validate-only.test')).length;
  vo({ host: 'amqps://validate-only.test', queueName: 'q', unsafeSsl: 'true' });
  t.equal(logLines.filter((l) => l.msg.includes('unsafeSsl') && l.msg.includes('validate-only.test')).length, warned, 'no unsafeSsl warning for a validation');
});

t.test('configuration errors', async (t) => {
  const ok = { host: 'amqp://rabbitmq.test:5672/', queueName: 'orders' };
  const cases: [Record<string, string>, AuthParams, RegExp][] = [
    [{ queueName: 'orders' }, {}, /^rabbitmq: no host given in metadata, the trigger authentication or hostFromEnv$/],
    [{ ...ok, host: 'not a url' }, {}, /^rabbitmq: host is not a valid URL \(amqp:\/\/, amqps:\/\/, http:\/\/ or https:\/\/\)$/],
    [{ ...ok, host: `amqp://u:${SECRETS.password}@ bad host` }, {}, /^rabbitmq: host is not a valid URL/],
    [{ ...ok, queueName: ' ' }, {}, /^rabbitmq: no queueName given in metadata$/],
    [{ ...ok, value: 'ten', mode: 'QueueLength' }, {}, /value "ten" is not a number/],
    [{ ...ok, activationValue: '1x' }, {}, /activationValue "1x" is not a number/],
    [{ ...ok, host: 'http://rabbitmq.test:15672/', useRegex: 'true', pageSize: '0' }, {}, /pageSize 0 must be a whole number, 1 or greater/],
    [{ ...ok, host: 'http://rabbitmq.test:15672/', pageSize: '2.5' }, {}, /pageSize 2.5 must be a whole number/],
    [{ ...ok, host: 'http://rabbitmq.test:15672/?x=1' }, {}, /host: the management API address has no query or fragment/],
    [{ ...ok, host: 'http://rabbitmq.test:15672/', timeout: '-5' }, {}, /timeout "-5" is not a duration: milliseconds \(2500\) or Go's form \(2\.5s\)/],
    [{ ...ok, host: 'http://rabbitmq.test:15672/', timeout: '1.5' }, {}, /timeout "1.5" is not a duration/],
    [ok, { username: 'u' }, /username and password must be given together/],
    [ok, { password: SECRETS.password }, /username and password must be given together/],
    [ok, { cert: clientCert.certPem }, /cert and key must be given together/],
    [ok, { tls: 'yes' }, /tls "yes" is not supported \(one of: enable, disable\)/],
    [ok, { tls: 'enable' }, /tls enable needs an amqps:\/\/ or https:\/\/ host; with amqp:\/\/ nothing would be encrypted/],
    [{ ...ok, host: 'amqps://rabbitmq.test' }, { tls: 'enable', ca: 'not a ca' }, /tls enable: auth parameter "ca": no PEM CERTIFICATE/],
    [{ ...ok, host: 'amqps://rabbitmq.test' }, { tls: 'enable', cert: clientCert.certPem, key: encryptedClientKey }, /"key" is encrypted and no keyPassword is given/],
    [{ ...ok, host: 'amqps://rabbitmq.test' }, { tls: 'enable', cert: clientCert.certPem, key: encryptedClientKey, keyPassword: 'wrong' }, /cannot be read with the given keyPassword/],
    [{ ...ok, host: 'amqp://rabbitmq.test/?auth_mechanism=kerberos' }, {}, /host: auth_mechanism "kerberos" is not supported \(plain or external\)/],
    [{ ...ok, host: 'amqp://rabbitmq.test/?auth_mechanism=external' }, {}, /auth_mechanism external needs amqps:\/\//],
    [{ ...ok, host: 'amqps://rabbitmq.test/?certfile=/etc/cert.pem' }, {}, /certfile is not read; give ca, cert and key in the trigger authentication, with tls enable/],
  ];
  for (const [md, auth, re] of cases) t.match(configFailure(() => makeScaler(md, { auth })), re, JSON.stringify(md));
  t.notMatch(configFailure(() => makeScaler({ ...ok, host: `amqp://u:${SECRETS.password}@ bad host` })), /u:|bad host/, 'host is never quoted');
  t.doesNotThrow(() => makeScaler({ host: 'amqps://rabbitmq.test', queueName: 'orders' }, { auth: { ca: 'garbage', cert: 'garbage', key: 'garbage' } }), 'without tls enable, ca/cert/key are not read (KEDA)');
  t.doesNotThrow(() => makeScaler({ host: 'http://rabbitmq.test:15672/', queueName: 'orders', timeout: '2500', pageSize: '500', useRegex: 'true', operation: 'max', excludeUnacknowledged: 'true' }));
  t.doesNotThrow(() => makeScaler({ ...ok, timeout: '0' }), 'timeout 0 is no timeout given (KEDA), so AMQP takes it');
  t.equal(scalerFactories.rabbitmq, createRabbitmqScaler);
});

t.test('no secret in any message or log line', async (t) => {
  expectNoSecrets(t, SECRETS, logLines, { atLeast: 40, alsoNot: { 'nor the basic credentials encoded': Buffer.from(`${USER}:${SECRETS.password}`).toString('base64') } });
});
