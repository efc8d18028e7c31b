// KEDA's redis-streams scaler against real Redis servers (Debian's redis-server 7 on 127.0.0.1):
// a plain one with a requirepass and ACL users, and a TLS-only one that requires client
// certificates and whose CA is known only through a --ca-dir folder. Each of KEDA's three ways
// (XLEN, XPENDING, the consumer group's lag) and its rule, the values as consumers read and
// acknowledge, activation, the failures worded, the server going away and coming back, one
// connection shared with the redis scaler, admission, and never a secret in a message or log.
import t from 'tap';
import { createCA, issueCertificate } from '../../../src/certs/x509.js';
import { createScaler, scalerFactories } from '../../../src/operator/scalers/index.js';
import { createRedisStreamsScaler } from '../../../src/operator/scalers/redis-streams.js';
import type { AuthParams } from '../../../src/operator/scaledobjects/types.js';
import { validateScaledObject } from '../../../src/operator/webhook/validate.js';
import { startRedis } from '../../helpers/redis.js';
import { caDirTrusts, capturingLogger, scalerTestKit } from '../../helpers/scalers.js';
import { pollTrigger } from '../../helpers/trigger-health.js';

const { log, lines: logLines } = capturingLogger();

const root = t.testdir();
const SECRETS = {
  password: 'pw-Sup3rSecretStreamsDefault',
  aclPassword: 'pw-Sup3rSecretStreamsAcl',
  lenOnlyPassword: 'pw-Sup3rSecretStreamsLenOnly',
};

// --- PKI: the server's CA exists only in the --ca-dir folder ------------------------------------
const serverCa = await createCA({ commonName: 'redis streams CA (custom)' });
const clientCa = await createCA({ commonName: 'redis streams client CA' });
const serverCert = await issueCertificate(serverCa, { commonName: 'redis', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedUsages: ['serverAuth'] });
const clientCert = await issueCertificate(clientCa, { commonName: 'keda-scaler', extendedUsages: ['clientAuth'] });
const { trust, noCustomTrust } = await caDirTrusts(t, root, log, 'redis-ca.crt', serverCa.certPem);

// --- the real things ------------------------------------------------------------------------------
const [plain, mtlsRedis] = await Promise.all([
  startRedis(t, {
    requirepass: SECRETS.password,
    users: [
      { name: 'keda', password: SECRETS.aclPassword },
      { name: 'lenonly', password: SECRETS.lenOnlyPassword, rules: ['~*', '+ping', '+xlen'] },
    ],
  }),
  startRedis(t, { tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: serverCa.certPem, clientCa: clientCa.certPem, authClients: 'yes', client: { cert: clientCert.certPem, key: clientCert.keyPem } } }),
]);
const password: AuthParams = { password: SECRETS.password };
const add = (stream: string, n: number) =>
  plain.admin(async (c) => {
    for (let i = 0; i < n; i++) await c.xadd(stream, '*', 'job', String(i));
  });
/** A consumer of `group` reads `n` entries (they become pending) and acknowledges `ack` of them. */
const consume = (stream: string, group: string, n: number, ack = 0) =>
  plain.admin(async (c) => {
    const got = (await c.xreadgroup('GROUP', group, 'worker-1', 'COUNT', n, 'STREAMS', stream, '>')) as [string, [string, string[]][]][] | null;
    const ids = (got?.[0]?.[1] ?? []).map(([id]) => id);
    if (ack > 0) await c.xack(stream, group, ...ids.slice(0, ack));
    return ids;
  });

const { messages, makeScaler, failure, configFailure, value, expectNoSecrets } = scalerTestKit({ type: 'redis-streams', trust, timeoutMs: 5_000, log, teardown: (fn) => t.teardown(fn) });
const on = (md: Record<string, string>) => ({ address: plain.address, ...md });

t.test('no consumerGroup: the stream\'s length (XLEN), target streamLength', async (t) => {
  await add('orders', 3);
  const s = makeScaler(on({ stream: 'orders' }), { auth: password });
  t.equal(await value(s), 3);
  await add('orders', 4);
  t.equal(await value(s), 7, 'follows XADD');
  await plain.admin((c) => c.xtrim('orders', 'MAXLEN', 2));
  t.equal(await value(s), 2, 'and XTRIM');
  t.equal(s.targetValue, 5, 'streamLength defaults to 5');
  t.equal(makeScaler(on({ stream: 'orders', streamLength: '50', pendingEntriesCount: '9' }), { auth: password }).targetValue, 50, 'streamLength is the target; pendingEntriesCount has no say');
  t.equal(makeScaler(on({ stream: 'orders', lagCount: '7' }), { auth: password }).targetValue, 5, 'lagCount without consumerGroup: still the length (KEDA\'s rule)');
  t.equal(await value(makeScaler(on({ stream: 'no-such-stream' }), { auth: password })), 0, 'a missing stream is empty');
  t.equal(s.metricName, 's0-redis-streams-orders', 'KEDA\'s metric name');
  t.equal(makeScaler(on({ stream: 'tenant:a/orders.v2' }), { auth: password, index: 4 }).metricName, 's4-redis-streams-tenant-a-orders-v2', 'normalized as KEDA does');
  await plain.admin((c) => c.rpush('a-list', 'x'));
  t.equal(await failure(value(makeScaler(on({ stream: 'a-list' }), { auth: password }))), `redis-streams ${plain.address}: stream "a-list" is not a stream: WRONGTYPE Operation against a key holding the wrong kind of value`);
});

t.test('consumerGroup: its pending entries (XPENDING), target pendingEntriesCount', async (t) => {
  await add('payments', 6);
  await plain.admin((c) => c.xgroup('CREATE', 'payments', 'billing', '0'));
  const s = makeScaler(on({ stream: 'payments', consumerGroup: 'billing', pendingEntriesCount: '3' }), { auth: password });
  t.equal(s.targetValue, 3);
  t.equal(await value(s), 0, 'nothing delivered yet: nothing pending');
  await consume('payments', 'billing', 4);
  t.equal(await value(s), 4, 'delivered and not acknowledged');
  await consume('payments', 'billing', 2, 2);
  t.equal(await value(s), 4, 'the next two read and acknowledged at once: still 4');
  await plain.admin(async (c) => {
    const pending = (await c.xpending('payments', 'billing', '-', '+', 10)) as [string][];
    await c.xack('payments', 'billing', ...pending.slice(0, 3).map(([id]) => id));
  });
  t.equal(await value(s), 1, 'three acknowledged');
  t.equal(makeScaler(on({ stream: 'payments', consumerGroup: 'billing' }), { auth: password }).targetValue, 5, 'pendingEntriesCount defaults to 5');
  t.equal(makeScaler(on({ stream: 'payments', consumerGroup: 'billing', lagCount: '0', pendingEntriesCount: '8' }), { auth: password }).targetValue, 8, 'lagCount 0 is no lagCount (KEDA\'s rule)');

  const noGroup = await failure(value(makeScaler(on({ stream: 'payments', consumerGroup: 'nobody' }), { auth: password })));
  t.match(noGroup, `redis-streams ${plain.address}: no consumer group "nobody" on stream "payments", or no such stream: NOGROUP`);
  const noStream = await failure(value(makeScaler(on({ stream: 'nothing-here', consumerGroup: 'billing' }), { auth: password })));
  t.match(noStream, /no consumer group "billing" on stream "nothing-here", or no such stream: NOGROUP/, 'as in KEDA, an error, not 0');
});

t.test('consumerGroup and lagCount: the group\'s lag (XINFO GROUPS), KEDA\'s rules for what is not there yet', async (t) => {
  await plain.admin((c) => c.xgroup('CREATE', 'events', 'indexer', '$', 'MKSTREAM'));
  const s = makeScaler(on({ stream: 'events', consumerGroup: 'indexer', lagCount: '10', activationLagCount: '2' }), { auth: password });
  t.equal(s.targetValue, 10, 'lagCount is the target');
  t.equal(await value(s), 0, 'a new group on a new stream: no lag');
  await add('events', 5);
  t.equal(await value(s), 5, 'five added since');
  await consume('events', 'indexer', 3);
  t.equal(await value(s), 2, 'three delivered (pending is not lag)');
  t.notOk(s.isActive(2), 'at activationLagCount: not active');
  t.ok(s.isActive(3));

  t.equal(await value(makeScaler(on({ stream: 'events', consumerGroup: 'not-yet-created', lagCount: '10' }), { auth: password })), 5, 'a group not created yet: the whole stream is its lag (KEDA reads XLEN then)');
  t.equal(await value(makeScaler(on({ stream: 'not-yet', consumerGroup: 'indexer', lagCount: '10' }), { auth: password })), 0, 'no stream yet: 0');

  // Redis cannot tell a lag across entries deleted after the group's position.
  await add('gappy', 4);
  await plain.admin((c) => c.xgroup('CREATE', 'gappy', 'g', '0'));
  const ids = await consume('gappy', 'g', 1);
  const all = await plain.admin((c) => c.xrange('gappy', '-', '+'));
  await plain.admin((c) => c.xdel('gappy', all[2]![0]));
  t.equal(ids.length, 1);
  const unknown = await failure(value(makeScaler(on({ stream: 'gappy', consumerGroup: 'g', lagCount: '10' }), { auth: password })));
  t.match(unknown, `redis-streams ${plain.address}: Redis cannot tell the lag of consumer group "g" on stream "gappy" (XINFO GROUPS: lag nil`);
  t.match(unknown, /KEDA reads 0 here, which keeps a workload at zero: scale on pendingEntriesCount, or create the group with XGROUP CREATE \.\.\. ENTRIESREAD$/);
  await consume('gappy', 'g', 10);
  t.equal(await value(makeScaler(on({ stream: 'gappy', consumerGroup: 'g', lagCount: '10' }), { auth: password })), 0, 'read past the gap: the lag is known again');

  // Redis 7.0 cannot tell the lag of a group created at $ on a stream that had entries, until it
  // has read to the end (later versions can: then it is the count added since).
  await add('late', 2);
  await plain.admin((c) => c.xgroup('CREATE', 'late', 'g', '$'));
  await add('late', 3);
  const late = makeScaler(on({ stream: 'late', consumerGroup: 'g', lagCount: '10' }), { auth: password });
  const lateValue = await value(late).catch((err: Error) => err.message);
  if (typeof lateValue === 'number') t.equal(lateValue, 3, 'this Redis can tell');
  else t.match(lateValue, /Redis cannot tell the lag of consumer group "g" on stream "late"/, 'Redis 7.0 cannot: said so');
  messages.push(String(lateValue));
  await consume('late', 'g', 10);
  await add('late', 1);
  t.equal(await value(late), 1, 'once the group has read to the end, Redis knows its lag');

  await plain.admin((c) => c.set('a-string', 'x'));
  t.match(await failure(value(makeScaler(on({ stream: 'a-string', consumerGroup: 'g', lagCount: '1' }), { auth: password }))), /stream "a-string" is not a stream: WRONGTYPE/);
});

t.test('activationLagCount applies whichever way is read', async (t) => {
  const length = makeScaler(on({ stream: 'orders', activationLagCount: '2' }), { auth: password });
  t.equal(await value(length), 2);
  t.notOk(length.isActive(2), 'XLEN 2, activation 2: not active');
  t.ok(length.isActive(3));
  const pending = makeScaler(on({ stream: 'payments', consumerGroup: 'billing' }), { auth: password });
  t.notOk(pending.isActive(0), 'default 0');
  t.ok(pending.isActive(await value(pending)), 'one pending: active');
});

t.test('auth: password, ACL users, and what goes wrong', async (t) => {
  t.equal(await value(makeScaler(on({ stream: 'orders' }), { auth: { username: 'keda', password: SECRETS.aclPassword } })), 2);
  t.equal(await value(makeScaler(on({ stream: 'orders' }), { auth: { username: 'lenonly', password: SECRETS.lenOnlyPassword } })), 2, 'XLEN is all the length needs');
  const denied = await failure(value(makeScaler(on({ stream: 'payments', consumerGroup: 'billing' }), { auth: { username: 'lenonly', password: SECRETS.lenOnlyPassword } })));
  t.match(denied, `redis-streams ${plain.address}: the user may not do this: NOPERM this user has no permissions to run the 'xpending' command (the ACL user needs XPENDING on the stream's key)`);
  t.match(await failure(value(makeScaler(on({ stream: 'orders' })))), `redis-streams ${plain.address}: the server requires authentication: NOAUTH`);
  t.match(await failure(value(makeScaler(on({ stream: 'orders' }), { auth: { password: `${SECRETS.password}-wrong` } }))), `redis-streams ${plain.address}: authentication failed: WRONGPASS`);
});

t.test('TLS: client certificate required, the server\'s CA only in --ca-dir', async (t) => {
  await mtlsRedis.admin((c) => c.xadd('tls-stream', '*', 'a', '1'));
  const md = { address: mtlsRedis.address, stream: 'tls-stream' };
  const clientPair = { cert: clientCert.certPem, key: clientCert.keyPem };
  t.equal(await value(makeScaler({ ...md, enableTLS: 'true' }, { auth: clientPair })), 1, 'enableTLS');
  t.equal(await value(makeScaler(md, { auth: { tls: 'enable', ...clientPair } })), 1, 'tls: enable');
  t.equal(await value(makeScaler(md, { auth: { tls: 'enable', ...clientPair, ca: serverCa.certPem }, trust: noCustomTrust })), 1, 'the auth parameter ca, without --ca-dir');
  const untrusted = await failure(value(makeScaler(md, { auth: { tls: 'enable', ...clientPair }, trust: noCustomTrust })));
  t.match(untrusted, `redis-streams ${mtlsRedis.address}: TLS: the upstream's certificate is not trusted`);
  t.match(untrusted, /put its CA in a --ca-dir folder or the trigger's ca/);
  t.match(await failure(value(makeScaler(md, { auth: { tls: 'enable' } }))), /the server requires a client certificate|give cert and key in the trigger authentication/);
  t.match(configFailure(() => makeScaler({ ...md, enableTLS: 'true' }, { auth: { tls: 'enable' } })), /^redis-streams: TLS is set twice/);
});

t.test('the server goes away and comes back: the scaler, and the trigger\'s health', async (t) => {
  const server = await startRedis(t, { requirepass: SECRETS.password });
  await server.admin(async (c) => {
    for (let i = 0; i < 4; i++) await c.xadd('jobs', '*', 'n', String(i));
    await c.xgroup('CREATE', 'jobs', 'workers', '0');
  });
  const md = { address: server.address, stream: 'jobs', consumerGroup: 'workers', lagCount: '2' };
  const s = makeScaler(md, { auth: password });
  t.equal(await value(s), 4);
  const polled = await pollTrigger(t, { type: 'redis-streams', metadata: md, auth: { password: SECRETS.password }, trust, log });
  await polled.until((r) => r.value === 4);
  await server.stop();
  t.match(await failure(value(s)), new RegExp(`^redis-streams ${server.address}: (connection refused|the connection was)`));
  t.equal(await failure(value(s)), `redis-streams ${server.address}: connection refused (connect ECONNREFUSED ${server.address})`);
  const failing = await polled.until((r) => r.failures > 1);
  t.match(failing.error, `redis-streams ${server.address}: connection refused`);
  messages.push(failing.error ?? '');
  await server.start();
  t.equal(await value(s), 4, 'back, with its data, without rebuilding the scaler');
  const healed = await polled.until((r) => r.failures === 0 && r.value === 4);
  t.equal(healed.error, undefined);
  t.equal(await polled.query(), '4', 'the metric is served again');
});

t.test('one connection for every scaler reading the same server the same way, redis ones too', async (t) => {
  const auth = { username: 'keda', password: SECRETS.aclPassword };
  const streams = Array.from({ length: 10 }, (_, i) => makeScaler(on({ stream: i % 2 ? 'orders' : 'payments', ...(i % 2 ? {} : { consumerGroup: 'billing' }), databaseIndex: '0' }), { auth, index: i }));
  const lists = Array.from({ length: 10 }, (_, i) =>
    createScaler({ triggerIndex: i, trigger: { type: 'redis', metadata: { address: plain.address, listName: 'a-list' } }, auth, trust, timeoutMs: 5000, log }),
  );
  t.teardown(() => lists.forEach((l) => l.close()));
  const values = await Promise.all([...streams, ...lists].map((s) => value(s)));
  t.same(values, [...Array.from({ length: 10 }, (_, i) => (i % 2 ? 2 : 1)), ...Array.from({ length: 10 }, () => 1)]);
  const ours = (await plain.clientList()).filter((l) => / name=keda-ts /.test(l) && l.includes(' user=keda ') && l.includes(' db=0 '));
  t.equal(ours.length, 1, '10 redis-streams and 10 redis scalers: one connection on the server');
});

t.test('admission and configuration errors, with KEDA\'s parameter names', async (t) => {
  const scalers = { trust, timeoutMs: 3000, log };
  const so = (triggers: unknown[]) => ({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'w', namespace: 'default' }, spec: { scaleTargetRef: { name: 'w' }, triggers } });
  t.same(validateScaledObject(so([{ type: 'redis-streams', metadata: { address: 'redis:6379', stream: 's', consumerGroup: 'g', lagCount: '5' }, authenticationRef: { name: 'a' } }]), { list: () => [] }, scalers), { allowed: true, warnings: [] });
  const v = validateScaledObject(
    so([
      { type: 'redis-streams', metadata: { address: 'redis:6379' } },
      { type: 'redis-streams', metadata: { address: 'redis:6379', stream: 's', consumerGroup: 'g', lagCount: 'many' } },
      { type: 'redis-streams', metadata: { address: 'redis:6379', stream: 's', pendingEntriesCount: '1.5' } },
      { type: 'redis-streams', metadata: { host: 'redis', stream: 's' } },
    ]),
    { list: () => [] },
    scalers,
  );
  t.equal(v.allowed, false);
  t.match(v.message, /spec\.triggers\[0\] \(redis-streams\): no stream given in metadata/);
  t.match(v.message, /spec\.triggers\[1\] \(redis-streams\): lagCount "many" is not a number/);
  t.match(v.message, /spec\.triggers\[2\] \(redis-streams\): pendingEntriesCount "1\.5" is not a whole number/);
  t.match(v.message, /spec\.triggers\[3\] \(redis-streams\): host given without port/);

  const ok = { address: 'redis:6379', stream: 's' };
  const cases: [Record<string, string>, RegExp][] = [
    [{ stream: 's' }, /^redis-streams: no address given \(host:port\), nor host and port$/],
    [{ address: 'redis:6379' }, /^redis-streams: no stream given in metadata$/],
    [{ ...ok, streamLength: 'x' }, /^redis-streams: streamLength "x" is not a number$/],
    [{ ...ok, activationLagCount: '0.1' }, /^redis-streams: activationLagCount "0\.1" is not a whole number$/],
    [{ ...ok, databaseIndex: '-2' }, /^redis-streams: databaseIndex "-2" must be 0 or more$/],
    [{ ...ok, address: 'redis' }, /^redis-streams: address "redis" is not host:port/],
  ];
  for (const [md, re] of cases) t.match(configFailure(() => makeScaler(md)), re, JSON.stringify(md));
  const vo = makeScaler({ ...ok, consumerGroup: 'g', lagCount: '3' }, { validateOnly: true });
  t.equal(vo.targetValue, 3);
  t.equal(await failure(value(vo)), 'redis-streams redis:6379: this scaler was built to validate the trigger only, not to query');
  t.equal(scalerFactories['redis-streams'], createRedisStreamsScaler);
});

t.test('no secret in any message or log line', async (t) => {
  expectNoSecrets(t, SECRETS, logLines, { atLeast: 15 });
});
