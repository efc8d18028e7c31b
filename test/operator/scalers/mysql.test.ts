// KEDA's mysql scaler against a real MariaDB (Debian's mariadb-server) on 127.0.0.1: host/port
// metadata and Go DSN connection strings, users with a password, REQUIRE SSL and REQUIRE X509,
// TLS whose CA is known only through a --ca-dir folder (or the auth parameter ca), the server
// going away and coming back (also as the metrics engine sees it), one pool shared by many
// triggers, every failure with its message, and never a secret in a message or a log line.
import t from 'tap';
import { createPrivateKey } from 'node:crypto';
import { createCA, issueCertificate } from '../../../src/certs/x509.js';
import { scalerFactories } from '../../../src/operator/scalers/index.js';
import { MYSQL_PARAMETERS, createMysqlScaler } from '../../../src/operator/scalers/mysql.js';
import type { AuthParams } from '../../../src/operator/scaledobjects/types.js';
import { validateScaledObject } from '../../../src/operator/webhook/validate.js';
import { freePort } from '../../helpers/daemon.js';
import { startMariaDb } from '../../helpers/mariadb.js';
import { caDirTrusts, capturingLogger, scalerTestKit } from '../../helpers/scalers.js';
import { pollTrigger } from '../../helpers/trigger-health.js';

const { log, lines: logLines } = capturingLogger();

const root = t.testdir();
const SECRETS = {
  password: 'pw-Sup3rSecretMysqlPlain',
  sslPassword: 'pw-Sup3rSecretMysqlSsl',
  x509Password: 'pw-Sup3rSecretMysqlX509',
  sharePassword: 'pw-Sup3rSecretMysqlShare',
  keyPassword: 'kp-Sup3rSecretMysqlKey',
};

// --- PKI: the server's CA exists only in the --ca-dir folder -----------------------------------
// The server certificate names localhost only (no IP address): a connection to 127.0.0.1 with
// TLS shows the host name being checked.
const serverCa = await createCA({ commonName: 'mariadb CA (custom)' });
const clientCa = await createCA({ commonName: 'mariadb client CA' });
const serverCert = await issueCertificate({ certPem: serverCa.certPem, keyPem: serverCa.keyPem }, { commonName: 'localhost', dnsNames: ['localhost'], extendedUsages: ['serverAuth'] });
const clientCert = await issueCertificate({ certPem: clientCa.certPem, keyPem: clientCa.keyPem }, { commonName: 'keda_x509', extendedUsages: ['clientAuth'] });
const otherClient = await issueCertificate({ certPem: serverCa.certPem, keyPem: serverCa.keyPem }, { commonName: 'not-from-the-client-ca', extendedUsages: ['clientAuth'] });
const encryptedClientKey = createPrivateKey(clientCert.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: SECRETS.keyPassword }) as string;

const { trust, noCustomTrust } = await caDirTrusts(t, root, log, 'mariadb-ca.crt', serverCa.certPem);

// --- the real thing: one server, TLS offered (not required), client certificates verified -----
const db = await startMariaDb(t, { tls: { cert: serverCert.certPem, key: serverCert.keyPem, clientCa: clientCa.certPem } });
await db.createUser('keda', SECRETS.password, 'stats');
await db.createUser('keda_ssl', SECRETS.sslPassword, 'stats', 'SSL');
await db.createUser('keda_x509', SECRETS.x509Password, 'stats', 'X509');
await db.createUser('keda_share', SECRETS.sharePassword, 'stats');
await db.sql('CREATE TABLE stats.jobs (id INT AUTO_INCREMENT PRIMARY KEY, state VARCHAR(16) NOT NULL, weight DECIMAL(6,2) NOT NULL DEFAULT 1)');
await db.sql("INSERT INTO stats.jobs (state) VALUES ('queued'), ('queued'), ('queued'), ('running')");

const { messages, makeScaler, failure, configFailure, value, expectNoSecrets } = scalerTestKit({ type: 'mysql', trust, timeoutMs: 10_000, log, teardown: (fn) => t.teardown(fn) });

const QUEUED = "SELECT COUNT(*) FROM jobs WHERE state = 'queued'";
const plain = (extra: Record<string, string> = {}) => ({ host: '127.0.0.1', port: String(db.port), username: 'keda', dbName: 'stats', query: QUEUED, queryValue: '5', ...extra });
const plainAuth: AuthParams = { password: SECRETS.password };
/** TLS needs the name in the certificate. */
const overTls = (user: string, extra: Record<string, string> = {}) => plain({ host: 'localhost', username: user, tls: 'true', ...extra });
const at = `mysql 127.0.0.1:${db.port}: `;
const atTls = `mysql localhost:${db.port}: `;

// --- tests ------------------------------------------------------------------------------------

t.test('the value, and its changes; the metric name and target', async (t) => {
  const s = makeScaler(plain(), { auth: plainAuth });
  t.equal(await value(s), 3);
  await db.sql("INSERT INTO stats.jobs (state) VALUES ('queued'), ('queued')");
  t.equal(await value(s), 5, 'a new row is counted at the next read');
  await db.sql("DELETE FROM stats.jobs WHERE state = 'queued'");
  t.equal(await value(s), 0, 'and zero is a value like any other');
  await db.sql("INSERT INTO stats.jobs (state, weight) VALUES ('queued', 1.25), ('queued', 1), ('queued', 2)");
  t.equal(await value(s), 3);
  t.equal(s.metricName, 's0-mysql-stats', 'KEDA\'s metric name: mysql-<dbName>');
  t.equal(makeScaler(plain(), { auth: plainAuth, index: 4 }).metricName, 's4-mysql-stats');
  t.equal(s.targetValue, 5);
  t.equal(makeScaler(plain({ queryValue: '2.5' }), { auth: plainAuth }).targetValue, 2.5, 'queryValue may be a float');
  t.equal(await value(makeScaler(plain({ query: "SELECT SUM(weight) FROM jobs WHERE state = 'queued'" }), { auth: plainAuth })), 4.25, 'a DECIMAL (sent as text)');
  t.equal(await value(makeScaler(plain({ query: 'SELECT 1e3 / 8' }), { auth: plainAuth })), 125, 'a DOUBLE');
  t.equal(await value(makeScaler(plain({ query: "SELECT '-7.5'" }), { auth: plainAuth })), -7.5, 'numeric text, as Go scans it');
  t.equal(await value(makeScaler(plain({ query: 'SELECT id FROM jobs ORDER BY id DESC' }), { auth: plainAuth })) > 4, true, 'several rows: the first one (KEDA\'s QueryRow)');
  t.equal(await value(makeScaler(plain({ dbName: '', query: "SELECT COUNT(*) FROM stats.jobs WHERE state = 'running'" }), { auth: plainAuth })), 1, 'no default database');
});

t.test('activation: strictly above activationQueryValue', async (t) => {
  const s = makeScaler(plain({ activationQueryValue: '3' }), { auth: plainAuth });
  const v = await value(s);
  t.equal(v, 3);
  t.notOk(s.isActive(v), 'equal is not active (KEDA: strictly above)');
  t.ok(s.isActive(3.5));
  const d = makeScaler(plain(), { auth: plainAuth });
  t.notOk(d.isActive(0), 'default 0');
  t.ok(d.isActive(await value(d)));
  t.ok(makeScaler(plain({ activationQueryValue: '-1' }), { auth: plainAuth }).isActive(0));
});

t.test('connectionString: a Go DSN, parsed as go-sql-driver parses it', async (t) => {
  const dsn = `keda:${SECRETS.password}@tcp(127.0.0.1:${db.port})/stats`;
  const s = makeScaler({ query: QUEUED, queryValue: '2', host: 'ignored.invalid', dbName: 'ignored' }, { auth: { connectionString: dsn } });
  t.equal(await value(s), 3, 'host, dbName in metadata are not read with a connectionString (as KEDA)');
  t.equal(s.metricName, 's0-mysql-stats');
  const withParams = makeScaler({ query: QUEUED, queryValue: '2' }, { auth: { connectionString: `keda_ssl:${SECRETS.sslPassword}@tcp(localhost:${db.port})/stats?tls=true&timeout=5s&parseTime=true` } });
  t.equal(await value(withParams), 3, 'tls=true in the DSN');
  t.equal(withParams.metricName, 's0-mysql-stats?tls=true&timeout=5s&parseTime=true', 'KEDA: everything after the last "/", parameters included');
  t.equal(await value(makeScaler({ query: QUEUED, queryValue: '2' }, { auth: { connectionString: `keda:${SECRETS.password}@unix(${db.socket})/stats` } })), 3, 'a Unix socket');
  const odd = 'p@ss:w0rd/with:odd@chars';
  await db.sql("CREATE USER 'odd'@'%' IDENTIFIED BY ?", [odd]);
  await db.sql("GRANT SELECT ON stats.* TO 'odd'@'%'");
  t.equal(await value(makeScaler({ query: QUEUED, queryValue: '2' }, { auth: { connectionString: `odd:${odd}@tcp(127.0.0.1:${db.port})/stats` } })), 3, 'a password with @, : and / (the last @ before the last / ends it)');
  const wrong = await failure(value(makeScaler({ query: QUEUED, queryValue: '2' }, { auth: { connectionString: `keda:${SECRETS.password}-wrong@tcp(127.0.0.1:${db.port})/stats` } })));
  t.match(wrong, `${at}access denied: Access denied for user 'keda'@`);
  t.notMatch(wrong, SECRETS.password);
});

t.test('auth: username and password', async (t) => {
  const wrong = await failure(value(makeScaler(plain(), { auth: { password: `${SECRETS.password}-wrong` } })));
  t.match(wrong, `${at}access denied: Access denied for user 'keda'@'127.0.0.1' (using password: YES) (ER_ACCESS_DENIED_ERROR) (check the username and password; a user created REQUIRE SSL or REQUIRE X509 is refused this way without TLS (see tls))`);
  const none = await failure(value(makeScaler(plain())));
  t.match(none, /access denied: .*using password: NO/, 'no password given');
  const noDb = await failure(value(makeScaler(plain({ dbName: 'nope' }), { auth: plainAuth })));
  t.match(noDb, `${at}cannot connect: Access denied for user 'keda'@'%' to database 'nope' (ER_DBACCESS_DENIED_ERROR)`);
  t.equal(await value(makeScaler({ ...plain({ username: '' }), query: QUEUED }, { auth: { ...plainAuth, username: 'keda', host: 'ignored' } })), 3, 'username from the trigger authentication; host from metadata first');
});

t.test('TLS, with the server\'s CA known only through the --ca-dir folder; a REQUIRE SSL user', async (t) => {
  const sslAuth = { password: SECRETS.sslPassword };
  t.equal(await value(makeScaler(overTls('keda_ssl'), { auth: sslAuth })), 3);
  const noTls = await failure(value(makeScaler(plain({ username: 'keda_ssl' }), { auth: sslAuth })));
  t.match(noTls, `${at}access denied: Access denied for user 'keda_ssl'@'127.0.0.1'`);
  t.match(noTls, /a user created REQUIRE SSL or REQUIRE X509 is refused this way without TLS \(see tls\)/, 'and says why that may be');
  t.equal(await value(makeScaler(overTls('keda'), { auth: plainAuth })), 3, 'a user without REQUIRE over TLS too');
  const [over] = await db.sql("SELECT VARIABLE_VALUE AS v FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version'");
  t.ok(over, 'the server speaks TLS');
});

t.test('the auth parameter ca: trusted for this server without --ca-dir', async (t) => {
  t.equal(await value(makeScaler(overTls('keda_ssl'), { auth: { password: SECRETS.sslPassword, ca: serverCa.certPem }, trust: noCustomTrust })), 3);
  t.match(configFailure(() => makeScaler(overTls('keda_ssl'), { auth: { password: SECRETS.sslPassword, ca: 'not a ca' } })), /^mysql: tls: auth parameter "ca": no PEM CERTIFICATE/);
});

t.test('a CA nobody gave us, a certificate for another name: refused, saying what to do', async (t) => {
  const untrusted = await failure(value(makeScaler(overTls('keda_ssl'), { auth: { password: SECRETS.sslPassword }, trust: noCustomTrust })));
  t.match(untrusted, `${atTls}TLS: the upstream's certificate is not trusted: `);
  t.match(untrusted, /put its CA in a --ca-dir folder or the trigger's ca$/);
  const byIp = await failure(value(makeScaler(overTls('keda_ssl', { host: '127.0.0.1' }), { auth: { password: SECRETS.sslPassword } })));
  t.match(byIp, `${at}TLS: the upstream's certificate is not for this host: `);
  t.match(byIp, /connect by a name \(or IP address\) its certificate lists$/);
  t.match(byIp, /127\.0\.0\.1 is not in the cert's list.*ERR_TLS_CERT_ALTNAME_INVALID/, `the host name is checked: ${byIp}`);
});

t.test('tls skip-verify: reached without trust, with one warning', async (t) => {
  const before = logLines.length;
  const md = overTls('keda_ssl', { tls: 'skip-verify' });
  t.equal(await value(makeScaler(md, { auth: { password: SECRETS.sslPassword }, trust: noCustomTrust })), 3);
  t.equal(await value(makeScaler(md, { auth: { password: SECRETS.sslPassword }, trust: noCustomTrust })), 3);
  const warnings = logLines.slice(before).filter((l) => l.level === 40 && l.msg.includes('skip-verify'));
  t.equal(warnings.length, 1, 'warned once for this server');
  t.equal(warnings[0]?.msg, `mysql localhost:${db.port}: tls is skip-verify, the server's certificate is NOT verified`);
});

t.test('client certificates: a REQUIRE X509 user', async (t) => {
  const md = overTls('keda_x509');
  const auth = { password: SECRETS.x509Password, cert: clientCert.certPem, key: clientCert.keyPem };
  t.equal(await value(makeScaler(md, { auth })), 3);
  t.equal(await value(makeScaler(md, { auth: { ...auth, key: encryptedClientKey, keyPassword: SECRETS.keyPassword } })), 3, 'an encrypted key with keyPassword');
  const noCert = await failure(value(makeScaler(md, { auth: { password: SECRETS.x509Password } })));
  t.match(noCert, `${atTls}access denied: Access denied for user 'keda_x509'@'127.0.0.1'`);
  t.match(noCert, /a user created REQUIRE X509 is refused this way without a client certificate \(auth parameters cert and key\)/);
  const untrustedCert = await failure(value(makeScaler(md, { auth: { ...auth, cert: otherClient.certPem, key: otherClient.keyPem } })));
  // TLS 1.3: the server checks the client certificate after the handshake, and says so with an alert.
  t.match(untrustedCert, new RegExp(`^${atTls}TLS handshake failed: tlsv1 alert unknown ca \\(ERR_SSL_TLSV1_ALERT_UNKNOWN_CA\\): the server refused the client certificate \\(does its ssl_ca hold the CA that issued the auth parameter cert\\?\\)$`), untrustedCert);

  t.match(configFailure(() => makeScaler(md, { auth: { ...auth, key: otherClient.keyPem } })), /^mysql: tls: the key does not match the certificate$/);
  t.match(configFailure(() => makeScaler(md, { auth: { ...auth, key: encryptedClientKey } })), /"key" is encrypted and no keyPassword is given/);
  t.match(configFailure(() => makeScaler(md, { auth: { ...auth, key: encryptedClientKey, keyPassword: 'nope-wrong' } })), /cannot be read with the given keyPassword/);
  t.match(configFailure(() => makeScaler(md, { auth: { cert: clientCert.certPem } })), /^mysql: cert is given without its key$/);
  t.match(configFailure(() => makeScaler(md, { auth: { key: clientCert.keyPem } })), /^mysql: key is given without its cert$/);
  t.match(configFailure(() => makeScaler(plain(), { auth })), /^mysql: cert and key are given but TLS is off: set tls=true in the connectionString, or tls: "true" in metadata$/);
  t.match(configFailure(() => makeScaler(plain(), { auth: { ca: serverCa.certPem } })), /^mysql: ca is given but TLS is off/);
});

t.test('tls true against a server that offers no TLS', async (t) => {
  // The first packet of a MySQL server without TLS (no CLIENT_SSL among its capabilities).
  const { createServer } = await import('node:net');
  const greeting = Buffer.concat([
    Buffer.from([10]),
    Buffer.from('5.5.5-10.11.0-MariaDB-no-tls\0'),
    Buffer.from([1, 0, 0, 0]),
    Buffer.from('abcdefgh'),
    Buffer.from([0]),
    Buffer.from([0x0f, 0xa2]), // long password, found rows, long flag, with db, protocol 41, transactions, secure connection
    Buffer.from([0x21, 0x02, 0x00]),
    Buffer.from([0x08, 0x00]), // plugin auth
    Buffer.from([21]),
    Buffer.alloc(10),
    Buffer.from('ijklmnopqrst\0'),
    Buffer.from('mysql_native_password\0'),
  ]);
  const header = Buffer.from([greeting.length & 0xff, (greeting.length >> 8) & 0xff, 0, 0]);
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(Buffer.concat([header, greeting]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  t.equal(
    await failure(value(makeScaler(plain({ host: 'localhost', port: String(port), tls: 'true' }), { auth: plainAuth }))),
    `mysql localhost:${port}: the server does not offer TLS, and tls is true: enable TLS on the server (ssl_cert, ssl_key), or set tls=false`,
  );
});

t.test('answers that are not one number', async (t) => {
  const q = (query: string) => failure(value(makeScaler(plain({ query }), { auth: plainAuth })));
  t.equal(await q('SELECT NULL'), `${at}the query returned NULL, not a number: use COALESCE(..., 0) (query: SELECT NULL)`);
  t.equal(await q("SELECT id FROM jobs WHERE state = 'nothing'"), `${at}the query returned no rows, expected one: aggregate (COUNT, SUM, COALESCE) so that it always returns one (query: SELECT id FROM jobs WHERE state = 'nothing')`);
  t.equal(await q("SELECT 'many'"), `${at}the query returned "many", not a number (query: SELECT 'many')`);
  t.equal(await q('SELECT 1, 2'), `${at}the query returned 2 columns, expected 1 (query: SELECT 1, 2)`, 'as Go\'s Scan into one value');
  t.equal(await q('SELECT DATE(\'2024-05-01\')'), `${at}the query returned "2024-05-01", not a number (query: SELECT DATE('2024-05-01'))`);
  t.equal(await q('DO 1'), `${at}the query returned no result set: is it a SELECT? (query: DO 1)`);
  t.match(await q('SELEC 1'), `${at}the query failed: You have an error in your SQL syntax;`);
  t.match(await q('SELEC 1'), /\(ER_PARSE_ERROR\) \(query: SELEC 1\)$/);
  t.equal(await q('SELECT COUNT(*) FROM missing'), `${at}the query failed: Table 'stats.missing' doesn't exist (ER_NO_SUCH_TABLE) (query: SELECT COUNT(*) FROM missing)`);
  t.match(await q('SELECT COUNT(*) FROM mysql.user'), /the query failed: SELECT command denied to user 'keda'@'127\.0\.0\.1' for table .*user.* \(ER_TABLEACCESS_DENIED_ERROR\)/);
});

t.test('every call bounded: the timeout and the AbortSignal; the pool stays usable', async (t) => {
  const slow = makeScaler(plain({ query: 'SELECT SLEEP(5)' }), { auth: plainAuth, timeoutMs: 400 });
  const started = Date.now();
  t.equal(await failure(value(slow)), `${at}no answer within 400 ms (query: SELECT SLEEP(5))`);
  t.ok(Date.now() - started < 2000, 'not waiting for the query');
  const ac = new AbortController();
  const pending = value(makeScaler(plain({ query: 'SELECT SLEEP(5)' }), { auth: plainAuth }), ac.signal);
  setTimeout(() => ac.abort(), 100);
  t.equal(await failure(pending), `${at}request aborted`);
  const aborted = new AbortController();
  aborted.abort();
  t.equal(await failure(value(makeScaler(plain(), { auth: plainAuth }), aborted.signal)), `${at}request aborted`, 'already aborted: not even connected');
  t.equal(await value(makeScaler(plain(), { auth: plainAuth })), 3, 'the same pool answers again: the cut-short connections were closed, not reused');

  // Nothing listening: refused at once. A port that accepts and never answers: the timeout.
  const closed = await freePort();
  t.match(await failure(value(makeScaler(plain({ port: String(closed) }), { auth: plainAuth }))), new RegExp(`^mysql 127\\.0\\.0\\.1:${closed}: connection refused`));
  const { createServer } = await import('node:net');
  const silent = createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => silent.close(() => r())));
  const silentPort = (silent.address() as { port: number }).port;
  const hanging = makeScaler(plain({ port: String(silentPort) }), { auth: plainAuth, timeoutMs: 300 });
  t.equal(await failure(value(hanging)), `mysql 127.0.0.1:${silentPort}: no answer within 300 ms (while connecting)`);
});

t.test('many triggers on one server share one pool', async (t) => {
  const md = plain({ username: 'keda_share' });
  const auth = { password: SECRETS.sharePassword };
  const scalers = Array.from({ length: 20 }, (_, i) => makeScaler({ ...md, query: `SELECT ${i}` }, { auth, index: i }));
  for (const [i, s] of scalers.entries()) t.equal(await value(s), i);
  t.equal(await db.connections('keda_share'), 1, '20 triggers read one after another: one connection');
  const all = await Promise.all(scalers.map((s) => value(s)));
  t.same(all, scalers.map((_, i) => i));
  const during = await db.connections('keda_share');
  t.ok(during >= 1 && during <= 2, `20 triggers at once: at most the pool's 2 connections (${during})`);
  // Another password is another identity: its own pool.
  await db.sql("CREATE USER 'keda_share2'@'%' IDENTIFIED BY ?", [SECRETS.sharePassword]);
  await db.sql("GRANT SELECT ON stats.* TO 'keda_share2'@'%'");
  await value(makeScaler(plain({ username: 'keda_share2' }), { auth }));
  t.equal(await db.connections('keda_share2'), 1);
  t.ok((await db.connections('keda_share')) <= 2, 'and the first pool is unchanged');
});

t.test('the server goes away and comes back: the scaler and the trigger\'s health recover without a rebuild', async (t) => {
  const s = makeScaler(plain(), { auth: plainAuth, timeoutMs: 3000 });
  t.equal(await value(s), 3);
  const polled = await pollTrigger(t, { type: 'mysql', metadata: plain(), auth: plainAuth, trust, log, timeoutMs: 3000 });
  await polled.until((r) => r.value === 3 && r.failures === 0);

  await db.daemon.stop();
  const down = await failure(value(s));
  t.match(down, new RegExp(`^${at}(connection refused|the server closed the connection)`), `while down: ${down}`);
  // A poll that ran while the server was shutting down may fail with the shutdown's own message.
  const gone = new RegExp(`${at}(connection refused|the server closed the connection)`);
  const downReport = await polled.until((r) => r.failures > 0 && gone.test(r.error ?? ''));
  t.match(downReport.error, gone, 'the trigger\'s health says why');
  messages.push(downReport.error ?? '');

  await db.daemon.start();
  t.equal(await value(s), 3, 'the same scaler reads again');
  const up = await polled.until((r) => r.failures === 0 && r.value === 3);
  t.equal(up.error, undefined, 'the trigger is healthy again');
  t.equal(await polled.query(), '3', 'and its metric is served');
});

t.test('validateOnly: the metadata is checked, nothing else, and nothing is dialled', async (t) => {
  const vo = (md: Record<string, string>, auth: AuthParams = {}) => makeScaler(md, { validateOnly: true, auth });
  const s = vo({ query: QUEUED, queryValue: '5', dbName: 'stats' });
  t.equal(s.metricName, 's0-mysql-stats');
  t.equal(s.targetValue, 5);
  t.match(await failure(value(s)), /^mysql: this scaler was built to validate the trigger only, not to query$/, 'no host (the connectionString may be in a Secret), and never a query');
  t.doesNotThrow(() => vo(overTls('keda_x509')), 'tls without its material');
  t.match(configFailure(() => vo({ query: QUEUED })), /^mysql: no queryValue given in metadata$/);
  t.match(configFailure(() => vo({ ...plain(), tls: 'preferred' })), /tls preferred/);
  t.match(configFailure(() => vo(plain(), { ca: 'nope' })), /^mysql: tls: auth parameter "ca": no PEM CERTIFICATE block found$/, 'what is given is still checked');
  const before = logLines.length;
  vo(overTls('keda_ssl', { tls: 'skip-verify', host: 'validate-only.test' }));
  t.equal(logLines.slice(before).filter((l) => l.msg.includes('validate-only.test')).length, 0, 'no skip-verify warning for a validation');
});

t.test('admission refuses bad metadata with KEDA\'s parameter names', async (t) => {
  const scalers = { trust, timeoutMs: 3000, log };
  const so = (metadata: Record<string, string>) => ({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'orders', namespace: 'default' },
    spec: { scaleTargetRef: { name: 'worker' }, triggers: [{ type: 'mysql', metadata, authenticationRef: { name: 'mysql-auth' } }] },
  });
  t.same(validateScaledObject(so({ query: QUEUED, queryValue: '5' }), { list: () => [] }, scalers), { allowed: true, warnings: [] }, 'the connection in a TriggerAuthentication: accepted');
  const cases: [Record<string, string>, RegExp][] = [
    [{ queryValue: '5' }, /spec\.triggers\[0\] \(mysql\): no query given in metadata/],
    [{ query: QUEUED }, /spec\.triggers\[0\] \(mysql\): no queryValue given in metadata/],
    [{ query: QUEUED, queryValue: 'ten' }, /queryValue "ten" is not a number/],
    [{ query: QUEUED, queryValue: '5', activationQueryValue: 'x' }, /activationQueryValue "x" is not a number/],
    [{ query: QUEUED, queryValue: '5', port: 'http' }, /port "http" is not a number/],
    [{ query: QUEUED, queryValue: '5', port: '70000' }, /port 70000 is not a TCP port \(1 to 65535\)/],
    [{ query: QUEUED, queryValue: '5', tls: 'sometimes' }, /tls "sometimes" is not supported \(true, false or skip-verify/],
  ];
  for (const [md, re] of cases) {
    const v = validateScaledObject(so(md), { list: () => [] }, scalers);
    t.equal(v.allowed, false, JSON.stringify(md));
    t.match(v.message, re);
  }
});

t.test('configuration errors, connection strings included', async (t) => {
  const ok = { query: QUEUED, queryValue: '5' };
  const cs = (connectionString: string, md: Record<string, string> = ok) => configFailure(() => makeScaler(md, { auth: { connectionString } }));
  t.equal(configFailure(() => makeScaler(ok)), 'mysql: no connectionString given in the trigger authentication, nor a host in metadata');
  t.equal(configFailure(() => makeScaler({ ...plain(), query: ' ' })), 'mysql: no query given in metadata');
  t.equal(configFailure(() => makeScaler(plain({ port: '0' }))), 'mysql: port 0 is not a TCP port (1 to 65535)');
  t.equal(configFailure(() => makeScaler(plain({ tls: 'preferred' }))), 'mysql: tls preferred (TLS only if the server offers it, unverified) is not supported: use true (verified; the CA through --ca-dir or ca) or skip-verify');
  t.equal(cs(`keda:${SECRETS.password}@tcp(127.0.0.1:3306)`), 'mysql: connectionString is not a Go MySQL DSN: there is no "/" before the database name (the form is user:password@tcp(host:3306)/dbname)');
  t.equal(cs(`keda:${SECRETS.password}@tcp(127.0.0.1:3306/stats`), 'mysql: connectionString: the address must be in parentheses right before the "/", as in tcp(host:3306)/dbname');
  t.equal(cs('keda@unix()/stats'), 'mysql: connectionString: unix needs the socket\'s path, as in unix(/run/mysqld/mysqld.sock)/dbname');
  t.equal(cs('keda@cloudsql(project:region:instance)/stats'), 'mysql: connectionString: the protocol "cloudsql" is not supported (tcp or unix)');
  t.equal(cs('keda@tcp(127.0.0.1:99999)/stats'), 'mysql: connectionString: the port "99999" is not a TCP port (1 to 65535)');
  t.equal(cs('keda@tcp(127.0.0.1)/stats?sql_mode=ANSI'), 'mysql: connectionString parameter "sql_mode": session variables set through the DSN are not supported (set it in the query, or on the user)');
  t.equal(cs('keda@tcp(127.0.0.1)/stats?timeout=soon'), 'mysql: connectionString parameter timeout "soon" is not a positive Go duration (e.g. 5s, 500ms)');
  t.equal(cs('keda@tcp(127.0.0.1)/stats?tls=custom'), 'mysql: connectionString parameter tls "custom" is not supported (true, false or skip-verify; named TLS configurations do not exist here)');
  t.equal(cs('keda@tcp(127.0.0.1)/stats?tls=false', { ...ok, tls: 'true' }), 'mysql: tls is true in metadata and false in the connectionString: give it once');
  t.doesNotThrow(() => makeScaler(ok, { auth: { connectionString: '/stats?tls=1&timeout=1m30s&charset=utf8mb4&junk' } }), 'the defaults (127.0.0.1:3306), Go\'s spellings, known parameters and entries without =');
  t.doesNotThrow(() => makeScaler(ok, { auth: { connectionString: 'u:p@tcp([::1]:3307)/stats' } }), 'an IPv6 address');
  t.equal(makeScaler(ok, { auth: { connectionString: 'u:p@tcp([::1])/stats' } }).metricName, 's0-mysql-stats');
  t.equal(scalerFactories.mysql, createMysqlScaler);
  t.ok(MYSQL_PARAMETERS.every((p) => p.doc.length > 0), 'every parameter documented');
});

t.test('no secret in any message or log line', async (t) => {
  expectNoSecrets(t, SECRETS, logLines, { atLeast: 40 });
});
