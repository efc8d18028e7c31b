// KEDA's nats-jetstream scaler against real NATS servers (Debian's nats-server 2.9, see
// ../../helpers/nats.ts): a plain-HTTP monitoring endpoint on a server without accounts (`$G`); an
// HTTPS one whose CA is known only through a --ca-dir folder, on a server with accounts that
// requires client certificates on its client port (its monitoring port still asks for none); and
// a three-server JetStream cluster on 127.0.0.2-4, where the consumer's leader has to be found and
// followed. Streams, consumers, messages, deliveries and acks are made with the helper's own
// NATS client; every failure's message is checked, and no secret appears in one or in a log line.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { createCA, issueCertificate } from '../../../src/certs/x509.js';
import { scalerFactories } from '../../../src/operator/scalers/index.js';
import { createNatsJetstreamScaler } from '../../../src/operator/scalers/nats-jetstream.js';
import { validateScaledObject } from '../../../src/operator/webhook/validate.js';
import { eventually } from '../../helpers/loop.js';
import { startNats, startNatsCluster, type NatsCluster, type NatsConnection, type NatsServer } from '../../helpers/nats.js';
import { caDirTrusts, capturingLogger, scalerTestKit } from '../../helpers/scalers.js';
import { pollTrigger } from '../../helpers/trigger-health.js';

const { log, lines: logLines } = capturingLogger();

const root = t.testdir();
const SECRETS = {
  // The NATS user of the TLS server's account: the scaler never gets it, and it must not leak from anything.
  natsPassword: 'np-Sup3rSecretNatsUser',
  // Credentials written into natsServerMonitoringEndpoint (refused, never quoted).
  endpointPassword: 'ep-Sup3rSecretInEndpoint',
};

// --- PKI: the HTTPS server's CA exists only in the --ca-dir folder -----------------------------
const serverCa = await createCA({ commonName: 'nats CA (custom)' });
const clientCa = await createCA({ commonName: 'nats client CA' });
const serverCert = await issueCertificate(
  { certPem: serverCa.certPem, keyPem: serverCa.keyPem },
  { commonName: 'nats', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedUsages: ['serverAuth'] },
);
const clientCert = await issueCertificate({ certPem: clientCa.certPem, keyPem: clientCa.keyPem }, { commonName: 'nats-client', extendedUsages: ['clientAuth'] });

const { trust, noCustomTrust } = await caDirTrusts(t, root, log, 'nats-ca.crt', serverCa.certPem);

// --- the real things, started side by side -------------------------------------------------------
const starting = await Promise.allSettled([
  startNats(t),
  startNats(t, {
    tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: serverCa.certPem, verifyClients: { ca: clientCa.certPem, client: { cert: clientCert.certPem, key: clientCert.keyPem } } },
    accounts: { TEAM: { user: 'team', password: SECRETS.natsPassword } },
  }),
  startNatsCluster(t),
]);
for (const s of starting) if (s.status === 'rejected') throw s.reason;
const [plain, secure, cluster] = starting.map((s) => (s as PromiseFulfilledResult<unknown>).value) as [NatsServer, NatsServer, NatsCluster];
const nc = await plain.connect();
const snc = await secure.connect();

// Every error message any test saw (`messages`) is checked at the end for secrets.
const { messages, makeScaler, failure, configFailure, value, readsEventually, expectNoSecrets } = scalerTestKit({ type: 'nats-jetstream', trust, timeoutMs: 5000, log, teardown: (fn) => t.teardown(fn) });

const onPlain = (extra: Record<string, string> = {}) => ({ natsServerMonitoringEndpoint: plain.monitor, account: '$G', stream: 'ORDERS', consumer: 'worker', ...extra });
const onSecure = (extra: Record<string, string> = {}) => ({ natsServerMonitoringEndpoint: secure.monitor, useHttps: 'true', account: 'TEAM', stream: 'PAYMENTS', consumer: 'payer', ...extra });


/** Connections from this process to 127.0.0.x:`port` that are open now (/proc/net/tcp). */
function connectionsTo(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 3 && f[2]!.endsWith(`:${hexPort}`) && f[3] === '01').length;
}

/** The /jsz requests a server has answered so far. */
async function jszCount(server: NatsServer): Promise<number> {
  const varz = await server.monitoring<{ http_req_stats?: Record<string, number> }>('/varz');
  return varz.http_req_stats?.['/jsz'] ?? 0;
}

await nc.createStream({ name: 'ORDERS', subjects: ['orders.>'] });
await nc.createConsumer('ORDERS', 'worker');
await snc.createStream({ name: 'PAYMENTS', subjects: ['payments.>'] });
await snc.createConsumer('PAYMENTS', 'payer');
await snc.jsPublishMany('payments.new', 4);

// --- tests ------------------------------------------------------------------------------------

t.test('the lag is num_pending + num_ack_pending, and follows deliveries and acks', async (t) => {
  const s = makeScaler(onPlain());
  t.equal(await value(s), 0, 'an empty stream');
  await nc.jsPublishMany('orders.new', 5);
  t.equal(await readsEventually(s, 5), 5, 'five messages, none delivered');

  const delivered = await nc.fetch('ORDERS', 'worker', 2);
  t.equal(delivered.length, 2);
  const info = await nc.consumerInfo('ORDERS', 'worker');
  t.same([info.num_pending, info.num_ack_pending], [3, 2], 'NATS counts 3 pending and 2 delivered, not acked');
  t.equal(await value(s), 5, 'delivered but not acked is still lag (KEDA adds num_ack_pending)');
  for (const m of delivered) await m.ack();
  t.equal(await readsEventually(s, 3), 3, 'acked messages are no longer lag');

  await nc.jsPublishMany('orders.new', 4);
  t.equal(await readsEventually(s, 7), 7, 'new messages');
  const all = await nc.fetch('ORDERS', 'worker', 7);
  t.equal(all.length, 7);
  for (const m of all) await m.ack();
  t.equal(await readsEventually(s, 0), 0, 'everything consumed');
  await nc.jsPublishMany('orders.new', 2);
  t.equal(await readsEventually(s, 2), 2);

  t.equal(s.metricName, 's0-nats-jetstream-ORDERS', 'KEDA\'s metric name: s<index>-nats-jetstream-<stream>');
  t.equal(makeScaler(onPlain(), { index: 4 }).metricName, 's4-nats-jetstream-ORDERS');
  t.equal(s.targetValue, 10, 'lagThreshold defaults to 10');
});

t.test('lagThreshold and activationLagThreshold', async (t) => {
  const s = makeScaler(onPlain({ lagThreshold: '4', activationLagThreshold: '2' }));
  t.equal(s.targetValue, 4);
  const v = await value(s);
  t.equal(v, 2);
  t.notOk(s.isActive(v), 'a lag equal to the activation threshold is not active (KEDA: strictly above)');
  t.ok(s.isActive(3));
  const d = makeScaler(onPlain());
  t.notOk(d.isActive(0), 'default activationLagThreshold 0');
  t.ok(d.isActive(await value(d)), 'the real lag 2 is above it');
  t.ok(makeScaler(onPlain({ activationLagThreshold: '-1' })).isActive(0), 'a negative activation threshold (KEDA reads any int64)');
});

t.test('a stream without that consumer: the stream\'s last sequence, as KEDA reports it, warned once', async (t) => {
  const jsz = await plain.monitoring<{ account_details: { stream_detail: { name: string; state: { last_seq: number } }[] }[] }>('/jsz?acc=%24G&consumers=true&config=true');
  const lastSeq = jsz.account_details[0]!.stream_detail.find((s) => s.name === 'ORDERS')!.state.last_seq;
  t.equal(lastSeq, 11);
  const before = logLines.length;
  const s = makeScaler(onPlain({ consumer: 'nobody' }));
  t.equal(await value(s), 11);
  t.equal(await value(s), 11);
  const warnings = logLines.slice(before).filter((l) => l.level === 40);
  t.equal(warnings.length, 1, 'one warning for this scaler');
  t.equal(warnings[0]?.msg, `nats-jetstream http://${plain.monitor}: consumer "nobody" not found in stream "ORDERS": the lag is the stream's last sequence (11), as KEDA reports it`);

  // A consumer that goes away and comes back: the same rule, then its lag again.
  await nc.createConsumer('ORDERS', 'transient', { deliver_policy: 'new' });
  const tr = makeScaler(onPlain({ consumer: 'transient' }));
  t.equal(await value(tr), 0, 'a consumer of new messages only: nothing pending');
  await nc.deleteConsumer('ORDERS', 'transient');
  t.equal(await value(tr), 11, 'deleted: the last sequence');
  await nc.createConsumer('ORDERS', 'transient', { deliver_policy: 'new' });
  t.equal(await value(tr), 0, 'and back');
});

t.test('an account or a stream that is not there', async (t) => {
  const noAccount = await failure(value(makeScaler(onPlain({ account: 'SALES' }))));
  t.equal(noAccount, `nats-jetstream http://${plain.monitor}: account "SALES" not found in the JetStream report (accounts with JetStream there: "$G"): is JetStream enabled for it?`);
  const noStream = await failure(value(makeScaler(onPlain({ stream: 'INVOICES' }))));
  t.equal(noStream, `nats-jetstream http://${plain.monitor}: stream "INVOICES" not found in account "$G" (its streams: "ORDERS")`);
  // A stream that goes away is an error at the next poll, not its last known lag (KEDA keeps it).
  await nc.createStream({ name: 'SHORTLIVED', subjects: ['short.>'] });
  await nc.createConsumer('SHORTLIVED', 'w');
  await nc.jsPublishMany('short.x', 3);
  const s = makeScaler(onPlain({ stream: 'SHORTLIVED', consumer: 'w' }));
  t.equal(await value(s), 3);
  await nc.deleteStream('SHORTLIVED');
  t.match(await failure(value(s)), `nats-jetstream http://${plain.monitor}: stream "SHORTLIVED" not found in account "$G"`);
});

t.test('HTTPS: the server\'s CA known only through the --ca-dir folder; accounts by name or id', async (t) => {
  const s = makeScaler(onSecure());
  t.equal(await value(s), 4, 'read over HTTPS, the certificate verified against --ca-dir');
  t.equal(s.metricName, 's0-nats-jetstream-PAYMENTS');
  t.equal(await value(makeScaler(onSecure({ account: '', accountID: 'TEAM' }))), 4, 'accountID alone (KEDA asks acc=<id>)');
  t.equal(await value(makeScaler(onSecure({ account: 'not-this-one', accountID: 'TEAM' }))), 4, 'either the id or the name matches, as in KEDA');
  // nats-server requires client certificates on this server's client port (tls verify), and still
  // serves its monitoring port without one: there is no client certificate mode to configure.
  const varz = await secure.monitoring<{ tls_verify?: boolean }>('/varz');
  t.equal(varz.tls_verify, true, 'the server verifies client certificates on its client port');
  const delivered = await snc.fetch('PAYMENTS', 'payer', 3);
  await delivered[0]!.ack();
  t.equal(await readsEventually(s, 3), 3, 'one acked');
});

t.test('the endpoint and the account from a TriggerAuthentication (KEDA: authParams first)', async (t) => {
  const md = { stream: 'PAYMENTS', consumer: 'payer', useHttps: 'true' };
  t.equal(await value(makeScaler(md, { auth: { natsServerMonitoringEndpoint: secure.monitor, account: 'TEAM' } })), 3);
  t.equal(
    await value(makeScaler({ ...md, natsServerMonitoringEndpoint: '127.0.0.1:1', account: 'nope' }, { auth: { natsServerMonitoringEndpoint: secure.monitor, account: 'TEAM' } })),
    3,
    'the authentication\'s values win over metadata',
  );
});

t.test('the auth parameter ca: trusted without --ca-dir', async (t) => {
  t.equal(await value(makeScaler(onSecure(), { auth: { ca: serverCa.certPem }, trust: noCustomTrust })), 3);
  t.match(configFailure(() => makeScaler(onSecure(), { auth: { ca: 'not a certificate' } })), /^nats-jetstream: auth parameter "ca": no PEM CERTIFICATE block found$/);
});

t.test('a CA nobody gave us: refused, saying what to do', async (t) => {
  const msg = await failure(value(makeScaler(onSecure(), { trust: noCustomTrust })));
  t.match(msg, `nats-jetstream https://${secure.monitor}: TLS: the upstream's certificate is not trusted: `);
  t.match(msg, /put its CA in a --ca-dir folder or the trigger's ca$/);
  t.match(await failure(value(makeScaler(onSecure(), { auth: { ca: clientCa.certPem }, trust: noCustomTrust }))), /certificate is not trusted/, 'the wrong CA as ca');
});

t.test('wrong scheme, wrong port, not NATS', async (t) => {
  const httpToHttps = await failure(value(makeScaler(onSecure({ useHttps: 'false' }))));
  t.match(httpToHttps, `nats-jetstream http://${secure.monitor}: the upstream answered HTTP 400: Client sent an HTTP request to an HTTPS server. (the endpoint is HTTPS: set useHttps "true")`);
  const httpsToHttp = await failure(value(makeScaler(onPlain({ useHttps: 'true' }))));
  t.match(httpsToHttp, `nats-jetstream https://${plain.monitor}: TLS handshake failed: `);
  t.match(httpsToHttp, /\(is the endpoint plain HTTP\? useHttps is true\)$/);
  const clientPort = await failure(value(makeScaler(onPlain({ natsServerMonitoringEndpoint: `127.0.0.1:${plain.clientPort}` }))));
  t.match(clientPort, `nats-jetstream http://127.0.0.1:${plain.clientPort}: `);
  t.match(clientPort, /\(is natsServerMonitoringEndpoint the monitoring port, not the client port\?\)$/, clientPort);

  // Something that is not a NATS monitoring endpoint.
  const fake = async (status: number, body: string): Promise<number> => {
    const srv = createHttpServer((_req, res) => res.writeHead(status, { 'content-type': 'text/plain' }).end(body));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
    return (srv.address() as AddressInfo).port;
  };
  const otherPorts = {
    html: await fake(200, '<html>hello</html>'),
    json: await fake(200, '{"value": 3}'),
    missing: await fake(404, '<html>hello</html>'),
    // What nats-server 2.9 answers on /jsz without JetStream.
    noJetStream: await fake(200, '{"server_id": "NDN3PUU7", "disabled": true, "config": {"max_memory": 0}, "streams": 0}'),
  };
  const at = (port: number) => failure(value(makeScaler(onPlain({ natsServerMonitoringEndpoint: `127.0.0.1:${port}` }))));
  t.equal(await at(otherPorts.html), `nats-jetstream http://127.0.0.1:${otherPorts.html}: the answer is not JSON (it starts "<html>hello</html>"): is natsServerMonitoringEndpoint a NATS monitoring endpoint?`);
  t.equal(await at(otherPorts.json), `nats-jetstream http://127.0.0.1:${otherPorts.json}: the answer is not a NATS monitoring document (no server_id): is natsServerMonitoringEndpoint a NATS monitoring endpoint?`);
  t.equal(await at(otherPorts.noJetStream), `nats-jetstream http://127.0.0.1:${otherPorts.noJetStream}: JetStream is not enabled on this server (no jetstream block in its configuration)`);
  t.equal(await at(otherPorts.missing), `nats-jetstream http://127.0.0.1:${otherPorts.missing}: the upstream answered HTTP 404: <html>hello</html> (is natsServerMonitoringEndpoint a NATS monitoring endpoint?)`);
});

t.test('a silent endpoint: bounded by the timeout and by the abort signal', async (t) => {
  const held: Socket[] = [];
  const silent = createNetServer((sock) => void held.push(sock));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of held) s.destroy();
        silent.close(() => r());
      }),
  );
  const endpoint = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const started = Date.now();
  t.equal(await failure(value(makeScaler(onPlain({ natsServerMonitoringEndpoint: endpoint }), { timeoutMs: 300 }))), `nats-jetstream http://${endpoint}: no answer within 300 ms`);
  t.ok(Date.now() - started < 3000, 'promptly');
  const ac = new AbortController();
  const pending = value(makeScaler(onPlain({ natsServerMonitoringEndpoint: endpoint })), ac.signal);
  setTimeout(() => ac.abort(), 50);
  t.equal(await failure(pending), `nats-jetstream http://${endpoint}: request aborted`);
});

t.test('N scalers on one server share one connection', async (t) => {
  const scalers = Array.from({ length: 20 }, (_, i) => makeScaler(onPlain(), { index: i }));
  for (let round = 0; round < 2; round++) for (const s of scalers) t.equal(await value(s), 2);
  // One pool for every scaler on this endpoint: a keep-alive connection, sometimes a second one
  // opened while the first is being handed back to the pool; never one per scaler.
  const open = connectionsTo(plain.monitorPort);
  t.ok(open >= 1 && open <= 2, `${open} connection(s) to the monitoring port for 20 scalers`);
});

t.test('the server goes away and comes back: the scaler and the trigger\'s health recover', async (t) => {
  const s = makeScaler(onPlain());
  t.equal(await value(s), 2);
  // The trigger polled every second by the real engine, its endpoint and account in a TriggerAuthentication.
  const polled = await pollTrigger(t, {
    type: 'nats-jetstream',
    metadata: { stream: 'ORDERS', consumer: 'worker', lagThreshold: '1' },
    auth: { natsServerMonitoringEndpoint: plain.monitor, account: '$G' },
    trust,
    log,
  });
  await polled.until((r) => r.value === 2 && r.failures === 0);
  t.equal(await polled.query(), '2', 'the metric served to the HPA');

  await plain.daemon.stop();
  const down = await failure(value(s));
  t.match(down, `nats-jetstream http://${plain.monitor}: `);
  t.match(down, /connection refused|closed the connection|ECONNRESET|socket/i, down);
  const unhealthy = await polled.until((r) => r.failures > 0 && r.error !== undefined);
  t.match(unhealthy.error, `nats-jetstream http://${plain.monitor}: `, `the trigger's error: ${unhealthy.error}`);
  messages.push(unhealthy.error!);

  await plain.daemon.start();
  t.equal(await readsEventually(s, 2), 2, 'the same scaler reads again: JetStream kept the stream and the consumer');
  const healthy = await polled.until((r) => r.failures === 0 && r.error === undefined && r.value === 2);
  t.equal(healthy.active, true);
  t.equal(await polled.query(), '2');
  // The helper's client connection died with the server: a new one for the tests after this.
  const again = await plain.connect();
  await again.jsPublish('orders.new', 'after the restart');
  t.equal(await readsEventually(s, 3), 3, 'and follows changes after it');
});

t.test('a cluster: the consumer\'s leader is found and followed', async (t) => {
  const [n1] = cluster.servers as [NatsServer, NatsServer, NatsServer];
  const cc: NatsConnection = await n1.connect();
  // An R1 stream lives on one server only: asked anywhere else, it is not in the /jsz answer.
  await cc.createStream({ name: 'SOLO', subjects: ['solo.>'], num_replicas: 1 });
  await cc.createConsumer('SOLO', 'w');
  await cc.jsPublishMany('solo.x', 3);
  const soloHome = cluster.byName((await cc.jsApi<{ cluster: { leader: string } }>('STREAM.INFO.SOLO')).cluster.leader);
  const elsewhere = cluster.servers.find((s) => s !== soloHome)!;
  const solo = makeScaler({ natsServerMonitoringEndpoint: elsewhere.monitor, account: '$G', stream: 'SOLO', consumer: 'w' });
  t.equal(await value(solo), 3, `asked ${elsewhere.name}, read on ${soloHome.name}`);
  const homeBefore = await jszCount(soloHome);
  const elsewhereBefore = await jszCount(elsewhere);
  for (let i = 0; i < 3; i++) t.equal(await value(solo), 3);
  t.equal((await jszCount(soloHome)) - homeBefore, 3, 'each later poll asks the leader directly');
  t.equal((await jszCount(elsewhere)) - elsewhereBefore, 0, 'and not the configured endpoint');

  // An R3 stream: every server has it, only the consumer's leader has its current numbers.
  await cc.createStream({ name: 'TRIO', subjects: ['trio.>'], num_replicas: 3 });
  await cc.createConsumer('TRIO', 'w');
  await cc.jsPublishMany('trio.x', 6);
  // While a consumer elects its leader, its info requests may go unanswered: '' then.
  let asker = cc;
  const leaderName = () =>
    asker.jsApi<{ cluster?: { leader?: string } }>('CONSUMER.INFO.TRIO.w', {}, 1000).then(
      (i) => i.cluster?.leader ?? '',
      () => '',
    );
  const leader = cluster.byName(await leaderName());
  const follower = cluster.servers.find((s) => s !== leader)!;
  const trio = makeScaler({ natsServerMonitoringEndpoint: follower.monitor, account: '$G', stream: 'TRIO', consumer: 'w' });
  t.equal(await readsEventually(trio, 6), 6);
  const delivered = await cc.fetch('TRIO', 'w', 4);
  for (const m of delivered.slice(0, 2)) await m.ack();
  t.equal(await readsEventually(trio, 4), 4, 'two acked, two delivered and pending an ack');
  const before = await jszCount(leader);
  await value(trio);
  t.equal((await jszCount(leader)) - before, 1, `polls go to the leader ${leader.name}`);

  // The leader steps down: the scaler notices at its next poll and follows the new one.
  await cc.jsApi('CONSUMER.LEADER.STEPDOWN.TRIO.w');
  const newLeader = cluster.byName(await eventually('a new consumer leader', async () => {
    const name = await leaderName();
    return name !== '' && name !== leader.name ? name : undefined;
  }));
  t.equal(await readsEventually(trio, 4), 4, 'the same lag from the new leader');
  const newBefore = await jszCount(newLeader);
  await value(trio);
  t.equal((await jszCount(newLeader)) - newBefore, 1, `polls go to the new leader ${newLeader.name}`);

  // The leader's server goes away: forgotten in the same poll, the survivors are searched (the
  // dead server skipped), and the next elected leader is followed.
  const configured = follower === newLeader ? leader : follower;
  const trio2 = makeScaler({ natsServerMonitoringEndpoint: configured.monitor, account: '$G', stream: 'TRIO', consumer: 'w' });
  t.equal(await value(trio2), 4);
  await newLeader.daemon.stop();
  // The helper's connection may have been to that server.
  asker = await configured.connect();
  // Right away, either the survivors have elected a new leader, or the search names the dead one.
  const right = await value(trio2).catch((err: Error) => {
    messages.push(err.message);
    return err.message;
  });
  if (typeof right === 'string') {
    t.match(right, `nats-jetstream http://${configured.monitor}: `);
    t.match(right, new RegExp(`(the leader of consumer "w" \\(${newLeader.name}\\) was not found among the cluster's servers|consumer "w" has no leader at the moment \\(an election\\?\\)); asked: `), right);
    t.notMatch(right, new RegExp(`asked: .*${newLeader.monitor.replace(/\./g, '\\.')} \\(`), 'the stopped server is not among those that answered');
  } else {
    // A leader elected at once: for a moment after an election its numbers may still be settling
    // (NATS's own view, read as it is): only that it is that server's is checked below.
    t.pass(`a new leader was elected at once (it says ${right})`);
  }
  t.equal(await readsEventually(trio2, 4, 30_000), 4, 'read from the leader elected among the two left');
  const third = cluster.byName(await eventually('the third leader', async () => {
    const name = await leaderName();
    return name !== '' && name !== newLeader.name ? name : undefined;
  }));
  const thirdBefore = await jszCount(third);
  t.equal(await value(trio2), 4);
  t.equal((await jszCount(third)) - thirdBefore, 1, `polls go to the third leader ${third.name}`);
  t.ok(
    logLines.some((l) => l.level === 20 && l.msg === `nats-jetstream http://${configured.monitor}: following the consumer's leader ${third.name} at ${third.monitorUrl}`),
    'the change of leader is logged at debug level',
  );
  const unreachable = await failure(value(makeScaler({ natsServerMonitoringEndpoint: newLeader.monitor, account: '$G', stream: 'TRIO', consumer: 'w' })));
  t.match(unreachable, `nats-jetstream http://${newLeader.monitor}: connection refused`);
  await newLeader.daemon.start();
  t.equal(await readsEventually(trio2, 4), 4, 'still read after the server is back');

  // The only server holding an R1 stream goes away: the others do not have it.
  await soloHome.daemon.stop();
  const soloGone = await failure(value(makeScaler({ natsServerMonitoringEndpoint: elsewhere.monitor, account: '$G', stream: 'SOLO', consumer: 'w' })));
  t.match(soloGone, `nats-jetstream http://${elsewhere.monitor}: `);
  t.match(
    soloGone,
    /stream "SOLO" not found in account "\$G" in the cluster on the 2 of its 3 servers that answered \(its streams: "TRIO"\)|consumer "w" of stream "SOLO" not found on the cluster's servers that answered; asked: .*; not answering: /,
    soloGone,
  );
});

t.test('a cluster whose consumer has no reachable leader: what the search says (canned /varz and /jsz)', async (t) => {
  // What a real cluster shows only for a moment (a leader just lost, an election under way),
  // served by three small HTTP servers standing in for the monitoring endpoints of n1, n2, n3.
  const hosts = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const state = { leader: 'n9', broken: '' };
  const serve = (name: string, i: number) =>
    createHttpServer((req, res) => {
      if (name === state.broken) return void res.writeHead(500).end('internal error');
      const body = req.url?.startsWith('/varz')
        ? { server_id: `ID${i}`, server_name: name, connect_urls: hosts.map((h) => `${h}:4222`) }
        : {
            server_id: `ID${i}`,
            meta_cluster: { cluster_size: 3 },
            account_details: [
              { name: '$G', id: '$G', stream_detail: [{ name: 'S', state: { last_seq: 9 }, consumer_detail: [{ name: 'w', num_pending: 1, num_ack_pending: 1, cluster: { leader: state.leader } }] }] },
            ],
          };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  // One after the other: the first picks the port, the others take the same one on their address.
  let port = 0;
  const servers: ReturnType<typeof createHttpServer>[] = [];
  for (const [i, host] of hosts.entries()) {
    const srv = serve(`n${i + 1}`, i);
    await new Promise<void>((r) => srv.listen(port, host, r));
    port = (srv.address() as AddressInfo).port;
    servers.push(srv);
  }
  t.teardown(() => Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r())))));
  const md = { natsServerMonitoringEndpoint: `127.0.0.2:${port}`, account: '$G', stream: 'S', consumer: 'w' };
  const asked = hosts.map((h, i) => `${h}:${port} (n${i + 1})`).join(', ');
  t.equal(
    await failure(value(makeScaler(md))),
    `nats-jetstream http://127.0.0.2:${port}: the leader of consumer "w" (n9) was not found among the cluster's servers; asked: ${asked}`,
  );
  state.leader = '';
  t.equal(await failure(value(makeScaler(md))), `nats-jetstream http://127.0.0.2:${port}: consumer "w" has no leader at the moment (an election?); asked: ${asked}`);
  state.leader = 'n3';
  state.broken = 'n2';
  const s = makeScaler(md);
  t.equal(await value(s), 2, 'n2 answers HTTP 500 and is skipped; n3 is the leader');
  state.leader = 'n2';
  const msg = await failure(value(s));
  t.equal(
    msg,
    `nats-jetstream http://127.0.0.2:${port}: the leader of consumer "w" (n2) was not found among the cluster's servers; asked: 127.0.0.2:${port} (n1), 127.0.0.4:${port} (n3); not answering: 127.0.0.3:${port}: the upstream answered HTTP 500: internal error`,
  );
  state.broken = '';
  t.equal(await value(s), 2, 'and found once it answers');
});

t.test('admission: bad metadata refused with KEDA\'s parameter names', async (t) => {
  const so = (metadata: Record<string, string>, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'orders', namespace: 'default' },
    spec: { scaleTargetRef: { name: 'worker' }, triggers: [{ type: 'nats-jetstream', metadata, ...extra }] },
  });
  const checks = { trust, timeoutMs: 3000, log };
  const verdict = (metadata: Record<string, string>, extra: Record<string, unknown> = {}) => validateScaledObject(so(metadata, extra), { list: () => [] }, checks);
  t.same(verdict(onPlain()), { allowed: true, warnings: [] });
  const refused: [Record<string, string>, string][] = [
    [{ ...onPlain(), stream: '' }, 'no stream given in metadata'],
    [{ ...onPlain(), consumer: '' }, 'no consumer given in metadata'],
    [{ ...onPlain(), natsServerMonitoringEndpoint: '' }, 'no natsServerMonitoringEndpoint given'],
    [{ ...onPlain(), account: '' }, 'no account or accountID given'],
    [{ ...onPlain(), lagThreshold: 'ten' }, 'lagThreshold "ten" is not a number'],
    [{ ...onPlain(), lagThreshold: '2.5' }, 'lagThreshold 2.5 is not a whole number'],
    [{ ...onPlain(), lagThreshold: '0' }, 'lagThreshold 0 must be above 0'],
    [{ ...onPlain(), activationLagThreshold: '0.5' }, 'activationLagThreshold 0.5 is not a whole number'],
    [{ ...onPlain(), useHttps: 'yes' }, 'useHttps "yes" is not a boolean'],
    [{ ...onPlain(), natsServerMonitoringEndpoint: 'http://nats:8222' }, 'natsServerMonitoringEndpoint "http://nats:8222" is not host:port (give no scheme'],
  ];
  for (const [md, want] of refused) {
    const v = verdict(md);
    t.equal(v.allowed, false, want);
    t.match(v.message, `ScaledObject default/orders: spec.triggers[0] (nats-jetstream): ${want}`);
  }
  // With an authenticationRef, the endpoint and the account may be in its Secret: not required here.
  t.same(verdict({ stream: 'ORDERS', consumer: 'worker' }, { authenticationRef: { name: 'nats' } }), { allowed: true, warnings: [] });
  const stillChecked = verdict({ stream: 'ORDERS', consumer: 'worker', lagThreshold: '1.5' }, { authenticationRef: { name: 'nats' } });
  t.match(stillChecked.message, /lagThreshold 1\.5 is not a whole number/, 'the metadata given is still checked');
  const vo = makeScaler(onPlain({ lagThreshold: '3' }), { validateOnly: true });
  t.equal(vo.metricName, 's0-nats-jetstream-ORDERS');
  t.equal(vo.targetValue, 3);
  t.match(await failure(value(vo)), /built to validate the trigger only, not to query$/, 'and it never queries');
  t.match(configFailure(() => makeScaler({ stream: 'ORDERS', consumer: 'worker' }, { validateOnly: true })), /no natsServerMonitoringEndpoint given/, 'without an authenticationRef, metadata is the only place');
});

t.test('configuration errors', async (t) => {
  const cases: [Record<string, string>, string][] = [
    [{ ...onPlain(), natsServerMonitoringEndpoint: '' }, 'nats-jetstream: no natsServerMonitoringEndpoint given in the trigger authentication or metadata'],
    [{ ...onPlain(), account: ' ' }, 'nats-jetstream: no account or accountID given in the trigger authentication or metadata (`$G` is the account of a server without accounts)'],
    [{ ...onPlain(), stream: '' }, 'nats-jetstream: no stream given in metadata'],
    [{ ...onPlain(), lagThreshold: '-5' }, 'nats-jetstream: lagThreshold -5 must be above 0 (it is the HPA\'s target)'],
    [{ ...onPlain(), activationLagThreshold: 'NaN' }, 'nats-jetstream: activationLagThreshold "NaN" is not a number'],
    [{ ...onPlain(), natsServerMonitoringEndpoint: 'nats:8222/jsz' }, 'nats-jetstream: natsServerMonitoringEndpoint "nats:8222/jsz" is not host:port, e.g. nats.nats.svc.cluster.local:8222'],
    [{ ...onPlain(), natsServerMonitoringEndpoint: 'nats:99999' }, 'nats-jetstream: natsServerMonitoringEndpoint "nats:99999" is not host:port, e.g. nats.nats.svc.cluster.local:8222'],
    [{ ...onPlain(), natsServerMonitoringEndpoint: `keda:${SECRETS.endpointPassword}@nats:8222` }, 'nats-jetstream: natsServerMonitoringEndpoint is not host:port, e.g. nats.nats.svc.cluster.local:8222'],
  ];
  for (const [md, want] of cases) t.equal(configFailure(() => makeScaler(md)), want, JSON.stringify(md));
  t.doesNotThrow(() => makeScaler({ ...onPlain(), natsServerMonitoringEndpoint: 'nats.nats.svc.cluster.local' }), 'a host without a port (80/443)');
  t.doesNotThrow(() => makeScaler({ ...onPlain(), natsServerMonitoringEndpoint: '[::1]:8222' }), 'an IPv6 address');
  t.doesNotThrow(() => makeScaler({ ...onPlain(), lagThreshold: '+7', activationLagThreshold: '-3' }), 'signs, as Go\'s ParseInt reads them');
  t.equal(scalerFactories['nats-jetstream'], createNatsJetstreamScaler);
});

t.test('no secret in any message or log line', async (t) => {
  expectNoSecrets(t, SECRETS, logLines, { atLeast: 20 });
});
