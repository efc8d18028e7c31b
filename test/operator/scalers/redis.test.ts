// KEDA's redis scaler against real Redis servers (Debian's redis-server on 127.0.0.1): a plain one
// with a requirepass and ACL users, a TLS-only one whose CA is known only through a --ca-dir
// folder, and a TLS-only one that requires client certificates; the value of lists, sets, sorted
// sets and hashes as they change, every auth and TLS mode with its failures, a server going away
// and coming back (the scaler, and the trigger's health through the real metrics engine),
// connection sharing counted on the server, admission, and never a secret in a message or log.
import t from 'tap';
import { createPrivateKey } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { createCA, issueCertificate } from '../../../src/certs/x509.js';
import { scalerFactories } from '../../../src/operator/scalers/index.js';
import { createRedisScaler } from '../../../src/operator/scalers/redis.js';
import type { AuthParams } from '../../../src/operator/scaledobjects/types.js';
import { validateScaledObject } from '../../../src/operator/webhook/validate.js';
import { eventually } from '../../helpers/loop.js';
import { startRedis } from '../../helpers/redis.js';
import { caDirTrusts, capturingLogger, scalerTestKit } from '../../helpers/scalers.js';
import { pollTrigger } from '../../helpers/trigger-health.js';

const { log, lines: logLines } = capturingLogger();

const root = t.testdir();
const SECRETS = {
  password: 'pw-Sup3rSecretRedisDefault',
  aclPassword: 'pw-Sup3rSecretRedisAclUser',
  readerPassword: 'pw-Sup3rSecretRedisReader',
  keyPassword: 'kp-Sup3rSecretRedisKey',
};

// --- PKI: the servers' CA exists only in the --ca-dir folder -----------------------------------
const serverCa = await createCA({ commonName: 'redis CA (custom)' });
const clientCa = await createCA({ commonName: 'redis client CA' });
const issue = (ca: typeof serverCa, cn: string, usage: 'serverAuth' | 'clientAuth') =>
  issueCertificate({ certPem: ca.certPem, keyPem: ca.keyPem }, { commonName: cn, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedUsages: [usage] });
const serverCert = await issue(serverCa, 'redis', 'serverAuth');
const clientCert = await issue(clientCa, 'keda-scaler', 'clientAuth');
const otherClient = await issue(serverCa, 'not-from-the-client-ca', 'clientAuth');
const encryptedClientKey = createPrivateKey(clientCert.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: SECRETS.keyPassword }) as string;

const { trust, noCustomTrust } = await caDirTrusts(t, root, log, 'redis-ca.crt', serverCa.certPem);

// --- the real things: started side by side ------------------------------------------------------
const [plain, tlsRedis, mtlsRedis] = await Promise.all([
  startRedis(t, {
    requirepass: SECRETS.password,
    users: [
      { name: 'keda', password: SECRETS.aclPassword },
      // May read lengths but not run scripts.
      { name: 'reader', password: SECRETS.readerPassword, rules: ['~*', '+ping', '+llen', '+type'] },
    ],
    args: ['--databases', '4'],
  }),
  startRedis(t, { tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: serverCa.certPem, authClients: 'no' } }),
  startRedis(t, { tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: serverCa.certPem, clientCa: clientCa.certPem, authClients: 'yes', client: { cert: clientCert.certPem, key: clientCert.keyPem } } }),
]);
await plain.admin(async (c) => {
  await c.rpush('jobs', 'a', 'b', 'c');
  await c.sadd('a-set', 'x', 'y');
  await c.zadd('a-zset', 1, 'x', 2, 'y', 3, 'z', 4, 'w');
  await c.hset('a-hash', { f1: '1', f2: '2', f3: '3', f4: '4', f5: '5', f6: '6' });
  await c.set('a-string', 'hello');
  await c.xadd('a-stream', '*', 'k', 'v');
  await c.select(1);
  await c.rpush('jobs', 'a', 'b', 'c');
  await c.select(2);
  await c.rpush('jobs', ...Array.from({ length: 7 }, (_, i) => `db2-${i}`));
});
await tlsRedis.admin((c) => c.rpush('jobs', 'a', 'b'));
await mtlsRedis.admin((c) => c.rpush('jobs', 'a', 'b', 'c', 'd'));

const password: AuthParams = { password: SECRETS.password };

// --- helpers ------------------------------------------------------------------------------------

const { messages, makeScaler, failure, configFailure, value, expectNoSecrets } = scalerTestKit({ type: 'redis', trust, timeoutMs: 5_000, log, teardown: (fn) => t.teardown(fn) });

const onPlain = (listName: string, extra: Record<string, string> = {}) => ({ address: plain.address, listName, ...extra });
const onTls = (listName: string, extra: Record<string, string> = {}) => ({ address: tlsRedis.address, listName, enableTLS: 'true', ...extra });
const onMtls = (listName: string, extra: Record<string, string> = {}) => ({ address: mtlsRedis.address, listName, enableTLS: 'true', ...extra });
const clientPair: AuthParams = { cert: clientCert.certPem, key: clientCert.keyPem };

/** This file's scalers' connections on a server: CLIENT LIST lines named keda-ts, by user and database. */
const ourConnections = async (server: typeof plain, user: string, db: number) =>
  (await server.clientList()).filter((l) => / name=keda-ts /.test(l) && l.includes(` user=${user} `) && l.includes(` db=${db} `)).length;

// --- tests --------------------------------------------------------------------------------------

t.test('the length of a list, set, sorted set or hash, and its changes', async (t) => {
  const s = makeScaler(onPlain('jobs'), { auth: password });
  t.equal(await value(s), 3);
  await plain.admin((c) => c.rpush('jobs', 'd', 'e'));
  t.equal(await value(s), 5, 'a push reaches the scaler');
  await plain.admin((c) => c.lpop('jobs', 5));
  t.equal(await value(s), 0, 'an emptied list (Redis removes the key) is 0');
  await plain.admin((c) => c.rpush('jobs', 'a', 'b', 'c'));
  t.equal(await value(s), 3);
  t.equal(await value(makeScaler(onPlain('a-set'), { auth: password })), 2, 'a set: SCARD');
  t.equal(await value(makeScaler(onPlain('a-zset'), { auth: password })), 4, 'a sorted set: ZCARD');
  t.equal(await value(makeScaler(onPlain('a-hash'), { auth: password })), 6, 'a hash: HLEN');
  t.equal(await value(makeScaler(onPlain('no-such-key'), { auth: password })), 0, 'a missing key: 0, as KEDA (LLEN of nothing)');
  t.equal(await failure(value(makeScaler(onPlain('a-string'), { auth: password }))), `redis ${plain.address}: listName "a-string" holds a string, not a list, set, sorted set or hash`);
  t.match(await failure(value(makeScaler(onPlain('a-stream'), { auth: password }))), /listName "a-stream" holds a stream, not a list/);

  t.equal(s.metricName, 's0-redis-jobs', 'KEDA\'s metric name');
  t.equal(makeScaler(onPlain('queue/a.b:c'), { auth: password, index: 2 }).metricName, 's2-redis-queue-a-b-c', 'normalized as KEDA does');
  t.equal(s.targetValue, 5, 'listLength defaults to 5');
  t.equal(makeScaler(onPlain('jobs', { listLength: '12' }), { auth: password }).targetValue, 12);
});

t.test('activationListLength: active strictly above it', async (t) => {
  const s = makeScaler(onPlain('jobs', { activationListLength: '3' }), { auth: password });
  const v = await value(s);
  t.equal(v, 3);
  t.notOk(s.isActive(v), 'equal to the activation length: not active');
  t.ok(s.isActive(4));
  const d = makeScaler(onPlain('jobs'), { auth: password });
  t.notOk(d.isActive(0), 'default 0');
  t.ok(d.isActive(1));
});

t.test('auth: the default user\'s password, an ACL user, and what goes wrong', async (t) => {
  t.equal(await value(makeScaler(onPlain('jobs'), { auth: password })), 3, 'password from the trigger authentication');
  t.equal(await value(makeScaler(onPlain('jobs', { password: SECRETS.password }))), 3, 'password in the metadata: KEDA reads it there first');
  t.equal(await value(makeScaler(onPlain('jobs'), { auth: { username: 'keda', password: SECRETS.aclPassword } })), 3, 'an ACL user');
  t.equal(await value(makeScaler(onPlain('jobs', { username: 'keda' }), { auth: { password: SECRETS.aclPassword } })), 3, 'username in the metadata, password in the authentication');

  const none = await failure(value(makeScaler(onPlain('jobs'))));
  t.equal(none, `redis ${plain.address}: the server requires authentication: NOAUTH Authentication required. (give password, and username for an ACL user, in the trigger authentication)`);
  const wrong = await failure(value(makeScaler(onPlain('jobs'), { auth: { password: `${SECRETS.password}-wrong` } })));
  t.match(wrong, `redis ${plain.address}: authentication failed: WRONGPASS invalid username-password pair or user is disabled.`);
  t.match(wrong, /check username and password in the trigger authentication/);
  const wrongUser = await failure(value(makeScaler(onPlain('jobs'), { auth: { username: 'nobody', password: SECRETS.aclPassword } })));
  t.match(wrongUser, /authentication failed: WRONGPASS/);
  const noScripts = await failure(value(makeScaler(onPlain('jobs'), { auth: { username: 'reader', password: SECRETS.readerPassword } })));
  t.match(noScripts, `redis ${plain.address}: the user may not do this: NOPERM`);
  t.match(noScripts, /the ACL user needs eval, type, llen, scard, zcard and hlen on the key/);
});

t.test('databaseIndex: SELECTed on every connection; one the server does not have is an error', async (t) => {
  t.equal(await value(makeScaler(onPlain('jobs', { databaseIndex: '2' }), { auth: password })), 7);
  t.equal(await value(makeScaler(onPlain('jobs', { databaseIndex: '0' }), { auth: password })), 3);
  const missing = await failure(value(makeScaler(onPlain('jobs', { databaseIndex: '9' }), { auth: password })));
  t.equal(missing, `redis ${plain.address}: databaseIndex 9: ERR DB index is out of range (the server has fewer databases)`, 'not silently database 0');
});

t.test('address, or host and port', async (t) => {
  t.equal(await value(makeScaler({ host: '127.0.0.1', port: String(plain.port), listName: 'jobs' }, { auth: password })), 3);
  t.equal(await value(makeScaler({ listName: 'jobs' }, { auth: { ...password, address: plain.address } })), 3, 'address from the trigger authentication');
  t.equal(await value(makeScaler({ listName: 'jobs' }, { auth: { ...password, host: 'localhost', port: String(plain.port) } })), 3, 'host and port from the trigger authentication');
  t.equal(await value(makeScaler({ address: plain.address, host: 'nowhere.invalid', port: '1', listName: 'jobs' }, { auth: password })), 3, 'address wins over host and port, as in KEDA');
});

t.test('TLS: the server\'s CA known only through the --ca-dir folder', async (t) => {
  t.equal(await value(makeScaler(onTls('jobs'))), 2, 'enableTLS in the metadata');
  t.equal(await value(makeScaler({ address: tlsRedis.address, listName: 'jobs' }, { auth: { tls: 'enable' } })), 2, 'tls: enable in the trigger authentication (KEDA\'s other switch)');
  t.equal(await value(makeScaler({ host: 'localhost', port: String(tlsRedis.port), listName: 'jobs', enableTLS: 'true' })), 2, 'by host name: the name checked is the host');

  const untrusted = await failure(value(makeScaler(onTls('jobs'), { trust: noCustomTrust })));
  t.match(untrusted, `redis ${tlsRedis.address}: TLS: the upstream's certificate is not trusted`);
  t.match(untrusted, /put its CA in a --ca-dir folder or the trigger's ca/);
  t.notMatch(untrusted, /--use-system-ca/);
  t.equal(await value(makeScaler(onTls('jobs'), { trust: noCustomTrust, auth: { ca: serverCa.certPem } })), 2, 'the auth parameter ca is trusted without --ca-dir');

  const plainToTls = await failure(value(makeScaler({ address: tlsRedis.address, listName: 'jobs' })));
  t.match(plainToTls, `redis ${tlsRedis.address}: the server closed the connection`);
  t.match(plainToTls, /a TLS-only port does this to a plain connection: is enableTLS, or tls: enable, missing\?/, 'without TLS against a TLS port');
  // Redis reads a TLS hello at a plain port as the start of a command, and waits for its end.
  const tlsToPlain = await failure(value(makeScaler(onPlain('jobs', { enableTLS: 'true' }), { auth: password, timeoutMs: 1000 })));
  t.equal(tlsToPlain, `redis ${plain.address}: no answer within 1000 ms while connecting (is this port TLS? with enableTLS, give the server's tls-port)`, 'with TLS against a plain port');

  const tlsOff = await failure(value(makeScaler(onTls('jobs', { enableTLS: 'false' }), { auth: { ca: serverCa.certPem } })));
  t.match(tlsOff, /a TLS-only port does this to a plain connection/, 'enableTLS false is no TLS, whatever ca is given');
  const tlsDisabled = await failure(value(makeScaler({ address: tlsRedis.address, listName: 'jobs' }, { auth: { tls: 'disable', ca: serverCa.certPem } })));
  t.match(tlsDisabled, /a TLS-only port does this to a plain connection/, 'tls: disable is no TLS');
  t.match(configFailure(() => makeScaler(onTls('jobs'), { auth: { tls: 'enable' } })), /^redis: TLS is set twice: enableTLS in the metadata and tls in the trigger authentication/);
  t.match(configFailure(() => makeScaler(onTls('jobs', { enableTLS: 'false' }), { auth: { tls: 'enable' } })), /TLS is set twice/, 'even when they agree, as in KEDA');
  t.match(configFailure(() => makeScaler(onTls('jobs'), { auth: { tls: 'on' } })), /^redis: tls "on" is not supported \(one of: enable, disable\)$/);
  t.match(configFailure(() => makeScaler(onTls('jobs', { enableTLS: 'yes' }))), /^redis: enableTLS "yes" is not a boolean/);
  t.match(configFailure(() => makeScaler(onTls('jobs'), { auth: { ca: 'not a ca' } })), /^redis: TLS: auth parameter "ca": no PEM CERTIFICATE/);
});

t.test('unsafeSsl: an untrusted server is reached, with one warning', async (t) => {
  const before = logLines.length;
  t.equal(await value(makeScaler(onTls('jobs', { unsafeSsl: 'true' }), { trust: noCustomTrust })), 2);
  t.equal(await value(makeScaler(onTls('jobs', { unsafeSsl: 'true' }), { trust: noCustomTrust })), 2);
  const warnings = logLines.slice(before).filter((l) => l.level === 40 && l.msg.includes('unsafeSsl'));
  t.equal(warnings.length, 1, 'warned once for this server');
  t.equal(warnings[0]?.msg, `redis ${tlsRedis.address}: unsafeSsl is true, the upstream's certificate is NOT verified`);
  t.match(configFailure(() => makeScaler(onTls('jobs', { unsafeSsl: 'maybe' }))), /unsafeSsl "maybe" is not a boolean/);
});

t.test('TLS with a client certificate, required by the server', async (t) => {
  t.equal(await value(makeScaler(onMtls('jobs'), { auth: clientPair })), 4);
  t.equal(await value(makeScaler(onMtls('jobs'), { auth: { cert: clientCert.certPem, key: encryptedClientKey, keyPassword: SECRETS.keyPassword } })), 4, 'an encrypted key with keyPassword');
  t.equal(await value(makeScaler({ address: mtlsRedis.address, listName: 'jobs' }, { auth: { tls: 'enable', ...clientPair, ca: serverCa.certPem }, trust: noCustomTrust })), 4, 'KEDA\'s TriggerAuthentication: tls, cert, key and ca');

  const noCert = await failure(value(makeScaler(onMtls('jobs'))));
  t.match(noCert, `redis ${mtlsRedis.address}: `);
  t.match(noCert, /the server requires a client certificate: tlsv13 alert certificate required \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED\): give cert and key in the trigger authentication|closed the connection.*give cert and key in the trigger authentication/, `without a client certificate: ${noCert}`);
  const wrongCa = await failure(value(makeScaler(onMtls('jobs'), { auth: { cert: otherClient.certPem, key: otherClient.keyPem } })));
  t.match(wrongCa, `redis ${mtlsRedis.address}: `);
  // TLS 1.3: the server refuses the certificate after the handshake, with an alert (or by closing).
  t.match(wrongCa, /the server refused the client certificate: tlsv1 alert unknown ca \(ERR_SSL_TLSV1_ALERT_UNKNOWN_CA\): does it trust the CA that issued the auth parameter cert\?|closed the connection.*does it trust the CA that issued the auth parameter cert\?/, `a client certificate the server does not trust: ${wrongCa}`);

  t.match(configFailure(() => makeScaler(onMtls('jobs'), { auth: { cert: clientCert.certPem, key: otherClient.keyPem } })), /^redis: TLS: the key does not match the certificate$/);
  t.match(configFailure(() => makeScaler(onMtls('jobs'), { auth: { cert: clientCert.certPem } })), /^redis: TLS: auth parameter cert given without key$/);
  t.match(configFailure(() => makeScaler(onMtls('jobs'), { auth: { key: clientCert.keyPem } })), /^redis: TLS: auth parameter key given without cert$/);
  t.match(configFailure(() => makeScaler(onMtls('jobs'), { auth: { cert: clientCert.certPem, key: encryptedClientKey } })), /"key" is encrypted and no keyPassword is given/);
  t.match(configFailure(() => makeScaler(onMtls('jobs'), { auth: { cert: clientCert.certPem, key: encryptedClientKey, keyPassword: `${SECRETS.keyPassword}-wrong` } })), /cannot be read with the given keyPassword/);
  t.match(configFailure(() => makeScaler(onMtls('jobs'), { auth: { cert: 'garbage', key: clientCert.keyPem } })), /auth parameter "cert": no PEM CERTIFICATE/);
});

t.test('the server goes away and comes back: clear failures, then the same scaler reads again', async (t) => {
  const server = await startRedis(t, { requirepass: SECRETS.password });
  await server.admin((c) => c.rpush('jobs', 'a', 'b', 'c', 'd', 'e', 'f'));
  const s = makeScaler({ address: server.address, listName: 'jobs' }, { auth: password });
  t.equal(await value(s), 6);
  await server.stop();
  const down = await failure(value(s));
  t.match(down, new RegExp(`^redis ${server.address}: (connection refused|the connection was)`), `while it is down: ${down}`);
  const again = await failure(value(s));
  t.equal(again, `redis ${server.address}: connection refused (connect ECONNREFUSED ${server.address})`, 'and every call after, at once, without queueing');
  await server.start();
  t.equal(await value(s), 6, 'back, with its data: the same scaler reconnects');
  await server.admin((c) => c.rpush('jobs', 'g'));
  t.equal(await value(s), 7);

  // The trigger's health through the real metrics engine: failures counted while it is down,
  // and the metric served again once it is back, without a restart.
  const polled = await pollTrigger(t, { type: 'redis', metadata: { address: server.address, listName: 'jobs', listLength: '2' }, auth: { password: SECRETS.password }, trust, log });
  await polled.until((r) => r.value === 7);
  t.equal(await polled.query(), '7');
  await server.stop();
  const failing = await polled.until((r) => r.failures > 1);
  t.match(failing.error, `redis ${server.address}: connection refused`);
  messages.push(failing.error ?? '');
  await server.start();
  const healed = await polled.until((r) => r.failures === 0 && r.value === 7);
  t.equal(healed.error, undefined, 'the error is gone');
  t.equal(await polled.query(), '7', 'the metric is served again');
});

t.test('one connection per upstream, however many scalers', async (t) => {
  const auth = { username: 'keda', password: SECRETS.aclPassword };
  const scalers = Array.from({ length: 25 }, (_, i) => makeScaler(onPlain(i % 2 ? 'jobs' : `other-${i}`, { databaseIndex: '1' }), { auth, index: i }));
  const values = await Promise.all(scalers.map((s) => value(s)));
  t.equal(values.filter((v) => v === 3).length, 12);
  t.equal(await ourConnections(plain, 'keda', 1), 1, '25 scalers, one connection on the server');
  await value(makeScaler(onPlain('jobs', { databaseIndex: '3' }), { auth }));
  t.equal(await ourConnections(plain, 'keda', 3), 1, 'another database is another connection');
  t.equal(await ourConnections(plain, 'keda', 1), 1, 'and the first one is still the only one for database 1');
  for (const s of scalers) s.close();
  const rebuilt = makeScaler(onPlain('jobs', { databaseIndex: '1' }), { auth });
  t.equal(await value(rebuilt), 3, 'a scaler built again right after takes the lingering connection');
  t.equal(await ourConnections(plain, 'keda', 1), 1, 'no reconnect');
});

t.test('slow and silent servers: every call is bounded by the timeout and by its signal', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
    sock.resume(); // read, never answer
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        silent.close(() => r());
      }),
  );
  const address = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const s = makeScaler({ address, listName: 'jobs' }, { timeoutMs: 300 });
  const started = Date.now();
  t.equal(await failure(value(s)), `redis ${address}: no answer within 300 ms while connecting`, 'it accepts, and never answers the handshake');
  t.ok(Date.now() - started < 2000, 'promptly');
  t.equal(await failure(value(s)), `redis ${address}: no answer within 300 ms while connecting`, 'again: the silent connection was dropped, a new one tried');
  await eventually('the dropped connections to close', async () => (sockets.size === 0 ? true : undefined), 5000);
  t.pass('each timed-out connection was closed, none left open on the server');
  const ac = new AbortController();
  const pending = value(makeScaler({ address, listName: 'jobs' }, { timeoutMs: 60_000 }), ac.signal);
  setTimeout(() => ac.abort(), 50);
  t.equal(await failure(pending), `redis ${address}: request aborted`);
  const aborted = new AbortController();
  aborted.abort();
  t.equal(await failure(value(s, aborted.signal)), `redis ${address}: request aborted`, 'an already aborted signal: not even tried');
});

t.test('admission: bad metadata refused with KEDA\'s parameter names', async (t) => {
  const scalers = { trust, timeoutMs: 3000, log };
  const so = (triggers: unknown[]) => ({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'worker', namespace: 'default' },
    spec: { scaleTargetRef: { name: 'worker' }, triggers },
  });
  const ok = validateScaledObject(so([{ type: 'redis', metadata: { address: 'redis.default.svc:6379', listName: 'jobs', enableTLS: 'true' }, authenticationRef: { name: 'redis-auth' } }]), { list: () => [] }, scalers);
  t.same(ok, { allowed: true, warnings: [] }, 'credentials behind an authenticationRef are not the webhook\'s to check');
  const v = validateScaledObject(
    so([
      { type: 'redis', metadata: { address: 'redis.default.svc:6379' } },
      { type: 'redis', metadata: { listName: 'jobs' } },
      { type: 'redis', metadata: { address: 'redis.default.svc', listName: 'jobs' } },
      { type: 'redis', metadata: { address: 'redis:6379', listName: 'jobs', listLength: '2.5' } },
      { type: 'redis', metadata: { address: 'redis:6379', listName: 'jobs', databaseIndex: 'one' } },
      { type: 'redis', metadata: { address: 'redis:6379', listName: 'jobs', enableTLS: 'true' }, authenticationRef: { name: 'x' } },
    ]),
    { list: () => [] },
    scalers,
  );
  t.equal(v.allowed, false);
  t.match(v.message, /spec\.triggers\[0\] \(redis\): no listName given in metadata/);
  t.match(v.message, /spec\.triggers\[1\] \(redis\): no address given \(host:port\), nor host and port/);
  t.match(v.message, /spec\.triggers\[2\] \(redis\): address "redis\.default\.svc" is not host:port/);
  t.match(v.message, /spec\.triggers\[3\] \(redis\): listLength "2\.5" is not a whole number/);
  t.match(v.message, /spec\.triggers\[4\] \(redis\): databaseIndex "one" is not a number/);
  t.notMatch(v.message, /spec\.triggers\[5\]/, 'enableTLS with an authenticationRef is fine');
});

t.test('validateOnly: checked, never connected', async (t) => {
  const vo = (md: Record<string, string>, auth: AuthParams = {}) => makeScaler(md, { validateOnly: true, auth });
  const s = vo({ address: '127.0.0.1:1', listName: 'jobs', enableTLS: 'true', unsafeSsl: 'true' });
  t.equal(s.metricName, 's0-redis-jobs');
  t.equal(s.targetValue, 5);
  t.equal(await failure(value(s)), 'redis 127.0.0.1:1: this scaler was built to validate the trigger only, not to query');
  t.notOk(logLines.some((l) => l.msg.includes('127.0.0.1:1: unsafeSsl')), 'no unsafeSsl warning for a validation');
  t.match(configFailure(() => vo({ address: 'redis:6379', listName: 'jobs' }, { tls: 'enable', cert: clientCert.certPem, key: otherClient.keyPem })), /key does not match/, 'what is given is still checked');
});

t.test('configuration errors', async (t) => {
  const ok = { address: 'redis.default.svc:6379', listName: 'jobs' };
  const cases: [Record<string, string>, RegExp][] = [
    [{ listName: 'jobs' }, /^redis: no address given \(host:port\), nor host and port$/],
    [{ address: 'redis:6379' }, /^redis: no listName given in metadata$/],
    [{ ...ok, address: 'redis' }, /^redis: address "redis" is not host:port \(e\.g\. redis\.default\.svc:6379, \[::1\]:6379\)$/],
    [{ ...ok, address: 'redis:0' }, /^redis: address port "0" is not a port \(1 to 65535\)$/],
    [{ ...ok, address: 'redis:70000' }, /address port "70000" is not a port/],
    [{ ...ok, address: 'redis://redis:6379' }, /^redis: address "redis:\/\/redis:6379" is a URL: give host:port/],
    [{ ...ok, address: 'a:6379,b:6379' }, /lists several servers: this scaler reads one standalone Redis \(KEDA's redis-cluster and redis-sentinel types are not supported\)/],
    [{ listName: 'jobs', host: 'redis' }, /^redis: host given without port/],
    [{ listName: 'jobs', port: '6379' }, /^redis: port given without host/],
    [{ listName: 'jobs', host: 'redis', port: 'x' }, /^redis: port "x" is not a number$/],
    [{ listName: 'jobs', host: 'redis', port: '6379.5' }, /^redis: port "6379\.5" is not a port/],
    [{ listName: 'jobs', host: 'a b', port: '6379' }, /^redis: host "a b" is not a host name or IP address$/],
    [{ ...ok, listLength: 'five' }, /^redis: listLength "five" is not a number$/],
    [{ ...ok, listLength: '1.5' }, /^redis: listLength "1\.5" is not a whole number$/],
    [{ ...ok, activationListLength: '0.5' }, /^redis: activationListLength "0\.5" is not a whole number$/],
    [{ ...ok, databaseIndex: '-1' }, /^redis: databaseIndex "-1" must be 0 or more$/],
    [{ ...ok, databaseIndex: '1.5' }, /^redis: databaseIndex "1\.5" is not a whole number$/],
    [{ ...ok, enableTLS: 'sometimes' }, /^redis: enableTLS "sometimes" is not a boolean/],
  ];
  for (const [md, re] of cases) t.match(configFailure(() => makeScaler(md)), re, JSON.stringify(md));
  t.equal(makeScaler({ listName: 'jobs', host: '::1', port: '6379' }, { validateOnly: true }).metricName, 's0-redis-jobs', 'an IPv6 host');
  t.doesNotThrow(() => makeScaler({ ...ok, address: '[::1]:6379' }, { validateOnly: true }), 'an IPv6 address');
  t.equal(scalerFactories.redis, createRedisScaler);
});

t.test('no secret in any message or log line', async (t) => {
  expectNoSecrets(t, SECRETS, logLines, { atLeast: 40 });
});
