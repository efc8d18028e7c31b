// KEDA's postgresql scaler against a real PostgreSQL (Debian's, run as the postgres system user)
// on 127.0.0.1: passwords checked by the server (scram-sha-256), TLS whose CA is known only through
// a --ca-dir folder, every libpq sslmode (the query itself says whether its connection is
// encrypted, from pg_stat_ssl), client certificates required by pg_hba.conf
// (clientcert=verify-full), the server going away and coming back, one pool shared by many
// triggers, every failure with its message, and never a secret in a message or a log line.
import t from 'tap';
import { createPrivateKey } from 'node:crypto';
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from 'node:net';
import { createCA, issueCertificate } from '../../../src/certs/x509.js';
import { scalerFactories } from '../../../src/operator/scalers/index.js';
import { createPostgresqlScaler } from '../../../src/operator/scalers/postgresql.js';
import type { Scaler } from '../../../src/operator/scalers/scaler.js';
import type { AuthParams } from '../../../src/operator/scaledobjects/types.js';
import { validateScaledObject } from '../../../src/operator/webhook/validate.js';
import { eventually } from '../../helpers/loop.js';
import { caDirTrusts, capturingLogger, scalerTestKit } from '../../helpers/scalers.js';
import { pollTrigger } from '../../helpers/trigger-health.js';
import { startPostgres } from '../../helpers/postgres.js';

const { log, lines: logLines } = capturingLogger();

const root = t.testdir();
const SECRETS = {
  password: 'pw-Sup3rSecretPostgres',
  tlsPassword: 'pw-Sup3rSecretPgTls',
  certPassword: 'pw-Sup3rSecretPgCert',
  sharePassword: 'pw-Sup3rSecretPgShare',
  keyPassword: 'kp-Sup3rSecretPgKey',
};

// --- PKI: the server's CA exists only in the --ca-dir folder -----------------------------------
const serverCa = await createCA({ commonName: 'postgres CA (custom)' });
const clientCa = await createCA({ commonName: 'postgres client CA' });
const otherCa = await createCA({ commonName: 'a CA nobody uses' });
// The server's certificate names `localhost` only: verify-full to 127.0.0.1 is a host name mismatch.
const serverCert = await issueCertificate({ certPem: serverCa.certPem, keyPem: serverCa.keyPem }, { commonName: 'postgres', dnsNames: ['localhost'], extendedUsages: ['serverAuth'] });
const clientIssue = (ca: typeof clientCa, cn: string) => issueCertificate({ certPem: ca.certPem, keyPem: ca.keyPem }, { commonName: cn, extendedUsages: ['clientAuth'] });
const clientCert = await clientIssue(clientCa, 'keda_cert');
const wrongCnCert = await clientIssue(clientCa, 'someone_else');
const untrustedClientCert = await clientIssue(otherCa, 'keda_cert');
const encryptedClientKey = createPrivateKey(clientCert.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: SECRETS.keyPassword }) as string;

const { trust, noCustomTrust } = await caDirTrusts(t, root, log, 'postgres-ca.crt', serverCa.certPem);

// --- the real thing ---------------------------------------------------------------------------
const server = await startPostgres(t, {
  tls: { cert: serverCert.certPem, key: serverCert.keyPem, clientCa: clientCa.certPem },
  hba: [
    'hostssl all keda_tls 127.0.0.1/32 scram-sha-256',
    'hostnossl all keda_tls 127.0.0.1/32 reject',
    'hostssl all keda_cert 127.0.0.1/32 scram-sha-256 clientcert=verify-full',
    'hostnossl all keda_cert 127.0.0.1/32 reject',
  ],
});
const PORT = String(server.port);
for (const [user, password] of [
  ['keda', SECRETS.password],
  ['keda_tls', SECRETS.tlsPassword],
  ['keda_cert', SECRETS.certPassword],
  ['keda_share', SECRETS.sharePassword],
  ['keda_nopw', null],
] as const) {
  await server.sql(`CREATE ROLE ${user} LOGIN ${password ? `PASSWORD '${password}'` : ''}`);
}
await server.sql('CREATE DATABASE queues');
await server.sql("CREATE TABLE jobs (id serial PRIMARY KEY, state text NOT NULL, weight numeric)", [], 'queues');
await server.sql('CREATE TABLE secret_jobs (id int)', [], 'queues');
await server.sql('GRANT SELECT ON jobs TO keda, keda_tls, keda_cert, keda_share', [], 'queues');
const setWaiting = async (n: number) => {
  await server.sql("DELETE FROM jobs WHERE state = 'waiting'", [], 'queues');
  if (n > 0) await server.sql("INSERT INTO jobs (state, weight) SELECT 'waiting', 1.5 FROM generate_series(1, $1)", [n], 'queues');
};
await setWaiting(3);

// --- helpers ----------------------------------------------------------------------------------
const { messages, makeScaler, failure, configFailure, value, expectNoSecrets } = scalerTestKit({ type: 'postgresql', trust, timeoutMs: 10_000, log, teardown: (fn) => t.teardown(fn) });

const WAITING = "SELECT count(*) FROM jobs WHERE state = 'waiting'";
/** 1 when the query's own connection is encrypted, 0 when not. */
const ENCRYPTED = 'SELECT CASE WHEN ssl THEN 1 ELSE 0 END FROM pg_stat_ssl WHERE pid = pg_backend_pid()';
const PREFIX = `postgresql 127.0.0.1:${PORT}: `;

/** KEDA's separate parameters, in metadata; the password from the authentication. */
const params = (query: string, extra: Record<string, string> = {}) => ({ query, targetQueryValue: '5', host: '127.0.0.1', port: PORT, userName: 'keda', dbName: 'queues', sslmode: 'disable', ...extra });
const withPassword: AuthParams = { password: SECRETS.password };

// --- tests ------------------------------------------------------------------------------------

t.test('the value, its changes, the target and KEDA\'s metric name', async (t) => {
  const s = makeScaler(params(WAITING), { auth: withPassword });
  t.equal(await value(s), 3);
  await setWaiting(11);
  t.equal(await value(s), 11, 'a change in the table reaches the scaler');
  await setWaiting(0);
  t.equal(await value(s), 0, 'and zero is a value like any other');
  await setWaiting(3);
  t.equal(s.metricName, 's0-postgresql', 'KEDA\'s metric name, whatever the database');
  t.equal(makeScaler(params(WAITING), { auth: withPassword, index: 3 }).metricName, 's3-postgresql');
  t.equal(s.targetValue, 5);
  t.equal(makeScaler(params(WAITING, { targetQueryValue: '2.5' }), { auth: withPassword }).targetValue, 2.5, 'a float target, as in KEDA');

  const of = (query: string) => value(makeScaler(params(query), { auth: withPassword }));
  t.equal(await of("SELECT sum(weight) FROM jobs WHERE state = 'waiting'"), 4.5, 'numeric');
  t.equal(await of('SELECT 2.75::float8'), 2.75, 'double precision');
  t.equal(await of('SELECT 1.5::real'), 1.5, 'real');
  t.equal(await of('SELECT 7::smallint'), 7, 'smallint');
  t.equal(await of('SELECT 9007199254740993::bigint'), 9007199254740992, 'bigint beyond 2^53: the nearest float, as KEDA\'s float64');
  t.equal(await of('SELECT -4'), -4, 'negative');
  t.equal(await of('SELECT id FROM generate_series(8, 10) AS id ORDER BY id DESC'), 10, 'the first row; later rows ignored (pgx QueryRow)');
});

t.test('activation: strictly above activationTargetQueryValue', async (t) => {
  const s = makeScaler(params(WAITING, { activationTargetQueryValue: '3' }), { auth: withPassword });
  const v = await value(s);
  t.equal(v, 3);
  t.notOk(s.isActive(v), 'equal to the activation value: not active');
  t.ok(s.isActive(3.5));
  const d = makeScaler(params(WAITING), { auth: withPassword });
  t.notOk(d.isActive(0), 'default activation 0');
  t.ok(d.isActive(await value(d)));
  t.ok(makeScaler(params(WAITING, { activationTargetQueryValue: '-1.5' }), { auth: withPassword }).isActive(0), 'a negative, float activation value');
});

t.test('answers that are not one number, and queries that fail', async (t) => {
  const of = (query: string) => failure(value(makeScaler(params(query), { auth: withPassword })));
  t.equal(await of('SELECT NULL::int'), `${PREFIX}the query returned NULL, not a number: use COALESCE(<expression>, 0) where it can be NULL (query: SELECT NULL::int)`);
  t.equal(await of("SELECT count(*) FROM jobs WHERE false GROUP BY state"), `${PREFIX}the query returned no rows, expected one number (query: SELECT count(*) FROM jobs WHERE false GROUP BY state)`);
  t.equal(await of('SELECT 1, 2'), `${PREFIX}the query returned 2 columns, expected 1 (query: SELECT 1, 2)`, 'as KEDA (pgx scans one column into one float)');
  t.equal(await of("SELECT '12'::text"), `${PREFIX}the query returned a text column, not a number: cast it, e.g. (<expression>)::numeric (query: SELECT '12'::text)`);
  t.match(await of('SELECT true'), /the query returned a boolean column, not a number/);
  t.match(await of('SELECT now()'), /the query returned a timestamp with time zone column/);
  t.match(await of("SELECT 'NaN'::float8"), /the query returned NaN, not a finite number/);
  t.match(await of("SELECT 'Infinity'::numeric"), /the query returned Infinity, not a finite number/);
  t.match(await of('SELECT FROM jobs'), /the statement returns no columns, expected one number/);
  t.equal(await of('SELEC 1'), `${PREFIX}the query failed: syntax error at or near "SELEC" (SQLSTATE 42601) (query: SELEC 1)`);
  t.match(await of('SELECT count(*) FROM no_such_table'), /the query failed: relation "no_such_table" does not exist \(SQLSTATE 42P01\)/);
  t.match(await of('SELECT count(*) FROM secret_jobs'), /the query failed: permission denied for table secret_jobs \(SQLSTATE 42501\)/);
  t.match(await of('SELECT 1; SELECT 2'), /the query failed: cannot insert multiple commands into a prepared statement \(SQLSTATE 42601\)/, 'one statement, as pgx sends it');
  const long = `SELECT ${'1 + '.repeat(100)}1 FROM no_such_table`;
  t.match(await of(long), /\(query: SELECT 1 \+ 1 \+ .{150,}…\)$/, 'a long query is shortened in the message');
  const s = makeScaler(params(WAITING), { auth: withPassword });
  await failure(value(makeScaler(params('SELECT 1/0'), { auth: withPassword })));
  t.equal(await value(s), 3, 'a failed statement leaves the pool usable');
});

t.test('connection strings: keyword=value and URL, as libpq and pgx read them', async (t) => {
  const md = { query: WAITING, targetQueryValue: '5' };
  const kv = `host=127.0.0.1 port=${PORT} user=keda password='${SECRETS.password}' dbname=queues sslmode=disable`;
  t.equal(await value(makeScaler(md, { auth: { connection: kv } })), 3, 'keyword=value');
  t.equal(await value(makeScaler({ ...md, host: 'ignored.invalid', port: '1', sslmode: 'verify-full' }, { auth: { connection: kv, password: 'ignored' } })), 3, 'connection wins: host, port, sslmode, password not read (as in KEDA)');
  const url = `postgresql://keda:${encodeURIComponent(SECRETS.password)}@127.0.0.1:${PORT}/queues?sslmode=disable`;
  t.equal(await value(makeScaler(md, { auth: { connection: url } })), 3, 'URL');
  t.equal(await value(makeScaler(md, { auth: { connection: url.replace('postgresql://', 'postgres://') } })), 3, 'postgres:// too');
  // KEDA quotes a value with spaces as '...' with \' inside; a setting that is not libpq's is the server's.
  const settings = `host = 127.0.0.1 port=${PORT} user=keda password=${SECRETS.password} dbname=queues sslmode=disable application_name='keda \\'test\\' app' work_mem=3MB pool_max_conns=4`;
  t.equal(await value(makeScaler({ ...md, query: "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid() AND application_name = 'keda ''test'' app'" }, { auth: { connection: settings } })), 1, 'application_name, quoted');
  t.equal(await value(makeScaler({ ...md, query: "SELECT pg_size_bytes(current_setting('work_mem'))" }, { auth: { connection: settings } })), 3 * 1024 * 1024, 'a server setting (pgx sends it as a run-time parameter)');
  const bad = await failure(value(makeScaler(md, { auth: { connection: `${kv} no_such_setting=1` } })));
  t.match(bad, `${PREFIX}the server refused the connection: unrecognized configuration parameter "no_such_setting" (SQLSTATE 42704)`);
  t.equal(await value(makeScaler({ ...md, query: ENCRYPTED }, { auth: { connection: kv.replace(' sslmode=disable', '') } })), 1, 'no sslmode: libpq\'s prefer, and the server has TLS');
});

t.test('sslmode, as libpq: what each does with a server that has TLS', async (t) => {
  // keda's pg_hba.conf rule is `host`: with or without TLS.
  const mode = (sslmode: string, auth: AuthParams = withPassword, tr = trust, host = '127.0.0.1') => makeScaler(params(ENCRYPTED, { sslmode, host }), { auth, trust: tr });
  t.equal(await value(mode('disable')), 0, 'disable: no TLS');
  t.equal(await value(mode('allow')), 0, 'allow: without TLS first, and the server takes it');
  t.equal(await value(mode('prefer', withPassword, noCustomTrust)), 1, 'prefer: TLS, the certificate not verified');
  t.equal(await value(mode('require', withPassword, noCustomTrust)), 1, 'require: TLS, the certificate not verified');
  t.equal(await value(mode('verify-ca')), 1, 'verify-ca: the chain verified (the CA from --ca-dir), not the host name');
  t.equal(await value(mode('verify-full', withPassword, trust, 'localhost')), 1, 'verify-full: chain and host name');
  const mismatch = await failure(value(mode('verify-full')));
  t.match(mismatch, 'postgresql 127.0.0.1:');
  t.match(mismatch, /^postgresql 127\.0\.0\.1:\d+: TLS: the server's certificate does not name this host \(.*IP: 127\.0\.0\.1 is not in the cert's list.*\): connect to a name it has, or use sslmode verify-ca \(the chain only\)$/, `verify-full, the certificate names localhost only: ${mismatch}`);

  const warnings = logLines.filter((l) => l.level === 40 && /does not verify the server's certificate/.test(l.msg));
  t.ok(warnings.some((w) => w.msg === `${PREFIX}sslmode require does not verify the server's certificate (use verify-full, or give the auth parameter ca)`), 'require is said not to verify');
  const before = logLines.length;
  mode('require', withPassword, noCustomTrust);
  t.equal(logLines.slice(before).filter((l) => /does not verify/.test(l.msg)).length, 0, 'once per server and sslmode');

  // A CA nobody gave us.
  for (const m of ['verify-ca', 'verify-full']) {
    const msg = await failure(value(mode(m, withPassword, noCustomTrust, 'localhost')));
    t.match(msg, `postgresql localhost:${PORT}: TLS: the upstream's certificate is not trusted: `, m);
    t.match(msg, /put its CA in a --ca-dir folder or the trigger's ca/);
  }
  // The auth parameter ca, without --ca-dir: trusted; and with require it verifies the chain (libpq's root certificate rule).
  t.equal(await value(mode('verify-full', { ...withPassword, ca: serverCa.certPem }, noCustomTrust, 'localhost')), 1, 'verify-full with the auth parameter ca');
  t.equal(await value(mode('require', { ...withPassword, ca: serverCa.certPem }, noCustomTrust)), 1, 'require with ca: verified chain');
  const wrongCa = await failure(value(mode('require', { ...withPassword, ca: otherCa.certPem }, noCustomTrust)));
  t.match(wrongCa, `${PREFIX}TLS: the upstream's certificate is not trusted`, 'require with a ca that did not issue the certificate: refused');
  t.match(await failure(value(mode('prefer', { ...withPassword, ca: otherCa.certPem }, noCustomTrust))), /not trusted/, 'prefer with ca: verified, no quiet fallback');
});

t.test('a user the server wants over TLS only', async (t) => {
  const tls = (sslmode: string) => makeScaler(params(ENCRYPTED, { sslmode, userName: 'keda_tls' }), { auth: { password: SECRETS.tlsPassword } });
  const refused = await failure(value(tls('disable')));
  t.match(refused, `${PREFIX}the server refused the connection: pg_hba.conf rejects connection for host "127.0.0.1", user "keda_tls", database "queues", no encryption (SQLSTATE 28000): the server wants TLS for this connection (sslmode require, verify-ca or verify-full)`);
  t.equal(await value(tls('allow')), 1, 'allow: refused without TLS, so with TLS');
  t.equal(await value(tls('prefer')), 1);
  t.equal(await value(tls('verify-ca')), 1);
});

t.test('passwords, checked by the server', async (t) => {
  const wrong = await failure(value(makeScaler(params(WAITING), { auth: { password: `${SECRETS.password}-wrong` } })));
  t.equal(wrong, `${PREFIX}the server refused the connection: password authentication failed for user "keda" (SQLSTATE 28P01): check the user name and password (userName and password, or connection)`);
  const none = await failure(value(makeScaler(params(WAITING))));
  t.equal(none, `${PREFIX}the server asks for a password and none is given (password, or in connection)`);
  const noUser = await failure(value(makeScaler(params(WAITING, { userName: 'nobody' }), { auth: withPassword })));
  t.match(noUser, /password authentication failed for user "nobody" \(SQLSTATE 28P01\)/);
  const noDb = await failure(value(makeScaler(params(WAITING, { dbName: 'nodb' }), { auth: withPassword })));
  t.match(noDb, `${PREFIX}the server refused the connection: database "nodb" does not exist (SQLSTATE 3D000): check dbName`);
  t.match(await failure(value(makeScaler(params(WAITING, { userName: 'keda_nopw' }), { auth: withPassword }))), /password authentication failed for user "keda_nopw"/);
  t.equal(await value(makeScaler({ ...params(WAITING), userName: '', host: '', port: '', dbName: '', sslmode: '' }, { auth: { ...withPassword, host: '127.0.0.1', port: PORT, userName: 'keda', dbName: 'queues', sslmode: 'disable' } })), 3, 'host, port, userName, dbName and sslmode from the authentication');
  t.equal(await value(makeScaler(params(WAITING, { host: 'nowhere.invalid' }), { auth: { ...withPassword, host: '127.0.0.1' } })), 3, 'the authentication first, then metadata (as KEDA)');
});

t.test('client certificates, required by pg_hba.conf (clientcert=verify-full)', async (t) => {
  const md = params(ENCRYPTED, { userName: 'keda_cert', sslmode: 'verify-full', host: 'localhost' });
  const auth = { password: SECRETS.certPassword, cert: clientCert.certPem, key: clientCert.keyPem };
  t.equal(await value(makeScaler(md, { auth })), 1, 'certificate and password');
  t.equal(await value(makeScaler(md, { auth: { ...auth, key: encryptedClientKey, keyPassword: SECRETS.keyPassword } })), 1, 'an encrypted key with keyPassword');
  t.equal(await value(makeScaler({ ...md, sslmode: 'require', host: '127.0.0.1' }, { auth, trust: noCustomTrust })), 1, 'sent with require too');

  const noCert = await failure(value(makeScaler(md, { auth: { password: SECRETS.certPassword } })));
  t.match(noCert, `postgresql localhost:${PORT}: the server refused the connection: `);
  t.match(noCert, /certificate.*\(SQLSTATE 28000\): the server wants a client certificate \(the auth parameters cert and key\)/, noCert);
  const wrongCn = await failure(value(makeScaler(md, { auth: { ...auth, cert: wrongCnCert.certPem, key: wrongCnCert.keyPem } })));
  // PostgreSQL tells the client no more than that authentication failed (its log says why).
  t.equal(wrongCn, `postgresql localhost:${PORT}: the server refused the connection: password authentication failed for user "keda_cert" (SQLSTATE 28P01): check the user name and password (userName and password, or connection); with clientcert=verify-full in pg_hba.conf, also that the client certificate's CN is the user name`);
  const untrusted = await failure(value(makeScaler(md, { auth: { ...auth, cert: untrustedClientCert.certPem, key: untrustedClientCert.keyPem } })));
  t.match(untrusted, `postgresql localhost:${PORT}: `);
  t.match(untrusted, /unknown ca|closed the connection.*ssl_ca_file/i, `a certificate from a CA the server does not trust: ${untrusted}`);

  const cfg = (a: AuthParams, m: Record<string, string> = md) => configFailure(() => makeScaler(m, { auth: a }));
  t.equal(cfg({ ...auth, key: wrongCnCert.keyPem }), 'postgresql: client certificate: the key does not match the certificate');
  t.match(cfg({ ...auth, cert: 'garbage' }), /^postgresql: client certificate: auth parameter "cert": no PEM CERTIFICATE/);
  t.match(cfg({ ...auth, key: encryptedClientKey }), /"key" is encrypted and no keyPassword is given/);
  t.match(cfg({ ...auth, key: encryptedClientKey, keyPassword: `${SECRETS.keyPassword}-wrong` }), /cannot be read with the given keyPassword/);
  t.equal(cfg({ cert: clientCert.certPem }), 'postgresql: cert is given without key');
  t.equal(cfg({ key: clientCert.keyPem }), 'postgresql: key is given without cert');
  t.equal(cfg(auth, { ...md, sslmode: 'disable' }), 'postgresql: cert and key are for TLS, and sslmode is disable');
  t.equal(cfg({ ca: serverCa.certPem }, { ...md, sslmode: 'disable' }), 'postgresql: ca is for TLS, and sslmode is disable');
  t.match(cfg({ ca: 'not a ca' }), /^postgresql: auth parameter "ca": no PEM CERTIFICATE/);
});

t.test('a server without TLS: prefer and allow go without, require and the verify modes refuse', async (t) => {
  // The reload is asynchronous: wait until a new session sees it.
  const sslSetting = async (want: string) => {
    await server.sql('SELECT pg_reload_conf()');
    await eventually(`ssl ${want}`, async () => (await server.sql<{ ssl: string }>('SHOW ssl'))[0]!.ssl === want || undefined, 10_000);
  };
  await server.sql('ALTER SYSTEM SET ssl = off');
  await sslSetting('off');
  t.teardown(async () => {
    await server.sql('ALTER SYSTEM RESET ssl');
    await sslSetting('on');
  });
  // Another database than the tests above: new pools, new connections.
  const mode = (sslmode: string) => makeScaler(params(ENCRYPTED, { sslmode, dbName: 'postgres' }), { auth: withPassword, trust: noCustomTrust });
  t.equal(await value(mode('prefer')), 0, 'prefer: without TLS');
  t.equal(await value(mode('allow')), 0);
  t.equal(await value(mode('disable')), 0);
  for (const m of ['require', 'verify-ca', 'verify-full']) {
    t.equal(await failure(value(mode(m))), `${PREFIX}the server does not support TLS, which sslmode ${m} requires (with sslmode prefer or disable it is used without)`);
  }
});

t.test('timeouts and aborts', async (t) => {
  // 1 s: a deadline well below the query's 5 s, and room for a connection on a busy machine.
  const slow = makeScaler(params('SELECT 1 FROM pg_sleep(5)'), { auth: withPassword, timeoutMs: 1000 });
  const started = Date.now();
  t.equal(await failure(value(slow)), `${PREFIX}no answer within 1000 ms (query: SELECT 1 FROM pg_sleep(5))`);
  t.ok(Date.now() - started < 4500, 'the scaler timeout bounds the call, not the query');
  const st = makeScaler(params("SELECT setting::numeric FROM pg_settings WHERE name = 'statement_timeout'"), { auth: withPassword, timeoutMs: 1234 });
  t.equal(await value(st), 1234, 'and the server\'s statement_timeout');
  const ac = new AbortController();
  const pending = value(makeScaler(params('SELECT 1 FROM pg_sleep(5)'), { auth: withPassword }), ac.signal);
  setTimeout(() => ac.abort(), 100);
  t.equal(await failure(pending), `${PREFIX}the query was aborted`);
  const aborted = new AbortController();
  aborted.abort();
  t.equal(await failure(value(makeScaler(params(WAITING), { auth: withPassword }), aborted.signal)), `${PREFIX}the query was aborted`, 'already aborted: not even a connection');
  t.equal(await value(makeScaler(params(WAITING), { auth: withPassword, timeoutMs: 1000 })), 3, 'the same pool works on after its connection was dropped');

  // A connection the server ends in the middle of a query (an administrator, a failover).
  const victim = makeScaler(params('SELECT 1 FROM pg_sleep(3)'), { auth: withPassword });
  const running = failure(value(victim));
  await eventually('the query to run', async () => (await server.sql("SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE query = 'SELECT 1 FROM pg_sleep(3)'")).length > 0 || undefined, 5000);
  t.equal(await running, `${PREFIX}the server ended the connection: terminating connection due to administrator command (SQLSTATE 57P01)`);

  // A server that accepts connections and never answers.
  const sockets: Socket[] = [];
  const silent = createServer((socket) => void sockets.push(socket));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => silent.close(() => r())));
  const silentPort = String((silent.address() as AddressInfo).port);
  const quiet = makeScaler(params(WAITING, { port: silentPort, sslmode: 'require' }), { auth: withPassword, timeoutMs: 300 });
  t.equal(await failure(value(quiet)), `postgresql 127.0.0.1:${silentPort}: no connection within 300 ms (the server does not answer)`);
  const kv = `host=127.0.0.1 port=${silentPort} user=keda dbname=queues sslmode=disable connect_timeout=1`;
  t.equal(await failure(value(makeScaler({ query: WAITING, targetQueryValue: '1' }, { auth: { connection: kv }, timeoutMs: 5000 }))), `postgresql 127.0.0.1:${silentPort}: no connection within 2000 ms (the server does not answer; connect_timeout)`, 'the connection string\'s connect_timeout (at least 2 s, as libpq)');
  for (const socket of sockets) socket.destroy();
  await eventually('the abandoned queries to end', async () => (await server.sql<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE '%pg_sleep(5)%' AND pid <> pg_backend_pid()"))[0]!.n === '0' || undefined, 10_000);
});

t.test('one pool per upstream: many triggers, at most two connections', async (t) => {
  const count = async () => Number((await server.sql<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'keda_share'"))[0]!.n);
  t.equal(await count(), 0);
  const md = params(WAITING, { userName: 'keda_share' });
  const scalers: Scaler[] = Array.from({ length: 20 }, (_, i) => makeScaler(md, { auth: { password: SECRETS.sharePassword }, index: i }));
  for (let round = 0; round < 3; round++) {
    const values = await Promise.all(scalers.map((s) => value(s)));
    t.same(new Set(values), new Set([3]), `round ${round}: every trigger read the value`);
  }
  const n = await count();
  t.ok(n >= 1 && n <= 2, `20 triggers, ${n} connection(s) on the server`);
  // A trigger built again (the engine rebuilds a failing one) reuses the pool: no new connection.
  scalers[0]!.close();
  scalers.push(makeScaler(md, { auth: { password: SECRETS.sharePassword } }));
  await value(scalers.at(-1)!);
  t.equal(await count(), n, 'a rebuilt trigger reuses the pool');
  // Another database is another upstream.
  scalers.push(makeScaler({ ...md, dbName: 'postgres', query: 'SELECT 1' }, { auth: { password: SECRETS.sharePassword } }));
  await value(scalers.at(-1)!);
  t.equal(await count(), n + 1, 'another database: its own pool');
  // Once its last trigger is gone (and a short linger for rebuilds), a pool closes its connections.
  for (const s of scalers) s.close();
  await eventually('the pools to close', async () => (await count()) === 0 || undefined, 20_000);
  t.pass('no connection left once every trigger is closed');
});

t.test('the server goes away and comes back: the scaler recovers without being rebuilt', async (t) => {
  const s = makeScaler(params(WAITING), { auth: withPassword, timeoutMs: 3000 });
  t.equal(await value(s), 3);
  const polled = await pollTrigger(t, { type: 'postgresql', metadata: { ...params(WAITING), targetQueryValue: '2' }, auth: withPassword, trust, log, timeoutMs: 3000 });
  await polled.until((r) => r.value === 3);
  t.equal(await polled.query(), '3');

  await server.stop();
  // The pool's idle connection may not have seen the server's goodbye yet: the first query can
  // still be sent on it and end with the shutdown's message; the next one finds no server.
  const first = await failure(value(s));
  t.match(first.slice(PREFIX.length), /^(connection refused|the server ended the connection: terminating connection due to administrator command|the server closed the connection)/, `the first query after the stop: ${first}`);
  const down = await failure(value(s));
  t.match(down, `${PREFIX}connection refused`, `while it is down: ${down}`);
  // A poll that ran while the server was shutting down fails with the shutdown's message; the
  // ones after it find no server.
  const report = await polled.until((r) => r.failures > 0 && r.error?.includes('connection refused') === true);
  t.match(report.error, `${PREFIX}connection refused`, 'the trigger\'s health says why');

  await server.start();
  t.equal(await value(s), 3, 'the same scaler reads again');
  const back = await polled.until((r) => r.failures === 0 && r.value === 3);
  t.equal(back.error, undefined, 'the trigger is healthy again');
  t.equal(await polled.query(), '3');
});

t.test('the server\'s goodbye in the same read as an answer: the value stands, the connection is dropped', async (t) => {
  // A proxy that, once armed, delivers a shutdown's FATAL right behind the next ReadyForQuery, in
  // one write: the client has no query running when it reads the goodbye. A real server shows this
  // only by chance, when it stops at the moment an answer leaves.
  const READY = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);
  const fields = 'SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0';
  const goodbye = Buffer.concat([Buffer.from([0x45]), Buffer.alloc(4), Buffer.from(fields, 'latin1')]);
  goodbye.writeUInt32BE(goodbye.length - 1, 1);
  let armed = false;
  const open = new Set<Socket>();
  let connections = 0;
  const proxy = createServer((client) => {
    connections++;
    open.add(client);
    client.on('close', () => open.delete(client));
    const upstream = connectTcp(server.port, '127.0.0.1');
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (armed && chunk.subarray(-READY.length).equals(READY)) {
        armed = false;
        client.end(Buffer.concat([chunk, goodbye]));
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    for (const s of [client, upstream]) s.on('error', () => undefined);
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    proxy.close(() => r());
    for (const socket of open) socket.destroy();
  }));
  const proxyPort = String((proxy.address() as AddressInfo).port);

  const s = makeScaler(params(WAITING, { port: proxyPort }), { auth: withPassword });
  t.equal(await value(s), 3);
  armed = true;
  t.equal(await value(s), 3, 'the answer read with the goodbye is the value; the goodbye is not thrown');
  t.equal(armed, false, 'the goodbye was delivered');
  t.equal(await value(s), 3, 'the next query gets a new connection');
  t.equal(connections, 2, 'the closed connection was not reused');
});

t.test('admission: the webhook refuses bad metadata with KEDA\'s parameter names', async (t) => {
  const scalers = { trust, timeoutMs: 3000, log };
  const so = (metadata: Record<string, string>, authenticationRef = true) => ({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'worker', namespace: 'default' },
    spec: { scaleTargetRef: { name: 'worker' }, triggers: [{ type: 'postgresql', metadata, ...(authenticationRef ? { authenticationRef: { name: 'pg' } } : {}) }] },
  });
  const view = { list: () => [] };
  const good = { query: WAITING, targetQueryValue: '5' };
  t.same(validateScaledObject(so(good), view, scalers), { allowed: true, warnings: [] }, 'connection, or host and the rest, may all be in the authentication');
  t.same(validateScaledObject(so(params(WAITING), false), view, scalers), { allowed: true, warnings: [] }, 'the separate parameters in metadata');
  const cases: [Record<string, string>, RegExp][] = [
    [{ targetQueryValue: '5' }, /spec\.triggers\[0\] \(postgresql\): no query given in metadata/],
    [{ query: WAITING }, /no targetQueryValue given in metadata/],
    [{ ...good, targetQueryValue: 'five' }, /targetQueryValue "five" is not a number/],
    [{ ...good, targetQueryValue: '0' }, /targetQueryValue must not be 0/],
    [{ ...good, activationTargetQueryValue: 'x' }, /activationTargetQueryValue "x" is not a number/],
    [{ ...good, sslmode: 'sometimes' }, /sslmode "sometimes" is not supported \(one of: disable, allow, prefer, require, verify-ca, verify-full\)/],
    [{ ...good, port: '70000' }, /port "70000" is not a port number/],
    [{ ...good, host: '/var/run/postgresql' }, /host: a Unix-domain socket is not supported/],
  ];
  for (const [md, re] of cases) {
    const v = validateScaledObject(so(md), view, scalers);
    t.equal(v.allowed, false, JSON.stringify(md));
    t.match(v.message, re);
    if (v.message) messages.push(v.message);
  }
  t.equal(scalerFactories.postgresql, createPostgresqlScaler);
});

t.test('validateOnly: never connects; absent auth parameters are not an error', async (t) => {
  const s = makeScaler({ query: WAITING, targetQueryValue: '5' }, { validateOnly: true });
  t.equal(s.metricName, 's0-postgresql');
  t.equal(s.targetValue, 5);
  t.match(await failure(value(s)), /built to validate the trigger only/);
  t.doesNotThrow(() => makeScaler({ query: WAITING, targetQueryValue: '5', host: 'db.example', sslmode: 'verify-full' }, { validateOnly: true }), 'a part of the separate parameters');
  t.match(configFailure(() => makeScaler({ query: WAITING, targetQueryValue: '5' }, { validateOnly: true, auth: { connection: 'host=db sslcert=/etc/client.crt user=u' } })), /sslcert names a file/, 'what is given is still checked');
});

t.test('configuration errors', async (t) => {
  const md = { query: WAITING, targetQueryValue: '5' };
  const cfg = (auth: AuthParams, m: Record<string, string> = md) => configFailure(() => makeScaler(m, { auth }));
  t.equal(cfg({}), 'postgresql: no connection given, and no host given (in the trigger authentication or metadata)');
  t.equal(cfg({ host: 'db' }), 'postgresql: no connection given, and no port given (in the trigger authentication or metadata)');
  t.equal(cfg({ host: 'db', port: '5432' }), 'postgresql: no connection given, and no userName given (in the trigger authentication or metadata)');
  t.equal(cfg({ host: 'db', port: '5432', userName: 'u' }), 'postgresql: no connection given, and no dbName given (in the trigger authentication or metadata)');
  t.equal(cfg({ host: 'db', port: '5432', userName: 'u', dbName: 'd' }), 'postgresql: no connection given, and no sslmode given (in the trigger authentication or metadata)', 'sslmode is required, as in KEDA');
  t.equal(cfg({ host: 'db', port: 'five', userName: 'u', dbName: 'd', sslmode: 'disable' }), 'postgresql: port "five" is not a port number (1-65535)');
  t.equal(cfg({ host: 'a,b', port: '5432', userName: 'u', dbName: 'd', sslmode: 'disable' }), 'postgresql: host: several hosts (failover) are not supported');
  const conn = (connection: string) => cfg({ connection });
  t.equal(conn(`host=db user=u password=${SECRETS.password} sslcert=/etc/c.crt`), 'postgresql: connection: sslcert names a file on the operator\'s disk; use the auth parameter cert instead');
  t.equal(conn('host=db user=u sslkey=/k'), 'postgresql: connection: sslkey names a file on the operator\'s disk; use the auth parameter key instead');
  t.equal(conn('host=db user=u sslrootcert=/ca.crt'), 'postgresql: connection: sslrootcert names a file on the operator\'s disk; use the auth parameter ca, or a --ca-dir folder instead');
  t.equal(conn('host=db user=u sslrootcert=system sslmode=require'), 'postgresql: connection: sslrootcert=system requires sslmode verify-full, not require (as in libpq)');
  t.doesNotThrow(() => makeScaler(md, { auth: { connection: 'host=db user=u sslrootcert=system' } }), 'sslrootcert=system: the system roots (and --ca-dir), verify-full');
  t.equal(conn('host=db user=u sslmode=maybe'), 'postgresql: connection: sslmode "maybe" is not supported (one of: disable, allow, prefer, require, verify-ca, verify-full)');
  t.equal(conn(`host=db user=u password ${SECRETS.password}`), 'postgresql: connection: "password" is not followed by "=" (the format is key=value ..., or a postgresql:// URL)');
  t.equal(conn(`host=db user=u password='${SECRETS.password}`), 'postgresql: connection: the quoted value of password is not closed');
  t.equal(conn('user=u dbname=d'), 'postgresql: connection: no host given (a Unix-domain socket is not supported)');
  t.equal(conn('host=db dbname=d'), 'postgresql: connection: no user given');
  t.equal(conn('host=/var/run/postgresql user=u'), 'postgresql: connection: host: a Unix-domain socket is not supported');
  t.equal(conn('postgresql://u@db1:5432,db2:5432/d'), 'postgresql: connection: several hosts (failover) are not supported');
  t.equal(conn('host=db port=0 user=u'), 'postgresql: connection: port "0" is not a port number (1-65535)');
  t.equal(conn('host=db user=u target_session_attrs=read-write'), 'postgresql: connection: target_session_attrs "read-write" is not supported (only any)');
  t.equal(conn('host=db user=u hostaddr=10.0.0.1'), 'postgresql: connection: hostaddr is not supported');
  t.equal(conn('host=db user=u connect_timeout=soon'), 'postgresql: connection: connect_timeout is not a whole number of seconds');
  t.equal(conn(`postgresql://u:${SECRETS.password}%zz@db/d`), 'postgresql: connection: the URL\'s password has a bad %-escape');
  t.equal(conn('postgresql://u@db/d?sslmode'), 'postgresql: connection: the URL parameter "sslmode" has no "="');
  t.equal(conn('host=db user=u client_encoding=LATIN1'), 'postgresql: connection: client_encoding must be UTF8');
  t.doesNotThrow(() => makeScaler(md, { auth: { connection: 'postgresql://u@[::1]:5433/d?ssl=true&connect_timeout=1&keepalives=1&pool_max_conns=10' } }), 'IPv6, ssl=true, ignored client-side keywords');
  t.equal(cfg({ connection: 'host=db user=u' }, { ...md, targetQueryValue: '0' }), 'postgresql: targetQueryValue must not be 0 (KEDA refuses it too)');
});

t.test('no secret in any message or log line', async (t) => {
  expectNoSecrets(t, SECRETS, logLines, { atLeast: 60 });
});
