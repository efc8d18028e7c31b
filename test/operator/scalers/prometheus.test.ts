// KEDA's prometheus scaler against a real Prometheus (Debian's /usr/bin/prometheus) on 127.0.0.1,
// scraping a target whose gauges the tests set: HTTPS whose CA is known only through a --ca-dir
// folder, basic auth and required client certificates done by Prometheus itself, bearer and custom
// header auth done by a reverse proxy in front of it (as kube-rbac-proxy deployments are), every
// failure with its message, and never a secret in a message or a log line.
import t from 'tap';
import { createPrivateKey } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCA, issueCertificate } from '../../../src/certs/x509.js';
import { scalerFactories } from '../../../src/operator/scalers/index.js';
import { createPrometheusScaler } from '../../../src/operator/scalers/prometheus.js';
import type { AuthParams } from '../../../src/operator/scaledobjects/types.js';
import { eventually } from '../../helpers/loop.js';
import { caDirTrusts, capturingLogger, scalerTestKit } from '../../helpers/scalers.js';
import { startAuthProxy, startMetricsTarget, startPrometheus, type PrometheusServer } from '../../helpers/prometheus.js';

const { log, lines: logLines } = capturingLogger();

const root = t.testdir();
const SECRETS = {
  token: 'tok-Sup3rSecretPromBearer',
  password: 'pw-Sup3rSecretPromBasic',
  customValue: 'cv-Sup3rSecretPromCustom',
  keyPassword: 'kp-Sup3rSecretPromKey',
};
// Prometheus keeps bcrypt hashes only. Made once, for SECRETS.password, with python3's crypt
// module (METHOD_BLOWFISH, cost 4: cheap to check on every request).
const PASSWORD_BCRYPT = '$2b$04$KrbIVNDqpzqMkycxm4W/kuleJsbAiHTcj2qEtrNV.L8z1YLyj2TZi';
const USER = 'keda';

// --- PKI: Prometheus' CA exists only in the --ca-dir folder ------------------------------------
const serverCa = await createCA({ commonName: 'prometheus CA (custom)' });
const clientCa = await createCA({ commonName: 'prometheus client CA' });
const issue = (ca: typeof serverCa, cn: string, usage: 'serverAuth' | 'clientAuth') =>
  issueCertificate({ certPem: ca.certPem, keyPem: ca.keyPem }, { commonName: cn, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedUsages: [usage] });
const serverCert = await issue(serverCa, 'prometheus', 'serverAuth');
const clientCert = await issue(clientCa, 'keda-scaler', 'clientAuth');
const otherClient = await issue(serverCa, 'not-from-the-client-ca', 'clientAuth');
const encryptedClientKey = createPrivateKey(clientCert.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: SECRETS.keyPassword }) as string;

const { trust, noCustomTrust } = await caDirTrusts(t, root, log, 'prometheus-ca.crt', serverCa.certPem);

// --- the real thing ---------------------------------------------------------------------------
const target = await startMetricsTarget(t);
target.set('queue_depth', 3);
target.set('jobs_waiting', 4, { queue: 'a' });
target.set('jobs_waiting', 6, { queue: 'b' });
target.set('tenant_load', 11, { namespace: 'team-a' });

// Two servers, started side by side: HTTPS + basic auth, and HTTPS requiring client certificates.
// allSettled: when one fails, the other has finished (and cleaned up) before the file gives up.
const starting = await Promise.allSettled([
  startPrometheus(t, {
    target,
    tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: serverCa.certPem },
    basicAuth: { username: USER, password: SECRETS.password, bcryptHash: PASSWORD_BCRYPT },
  }),
  startPrometheus(t, {
    target,
    tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: serverCa.certPem, clientCa: clientCa.certPem, client: { cert: clientCert.certPem, key: clientCert.keyPem } },
  }),
]);
const [prom, mtlsProm] = starting.map((r) => {
  if (r.status === 'rejected') throw r.reason;
  return r.value;
}) as [PrometheusServer, PrometheusServer];
const basic: AuthParams = { username: USER, password: SECRETS.password };

// Bearer tokens and custom headers: checked by proxies in front of the basic-auth Prometheus.
const bearerProxy = await startAuthProxy(t, {
  upstream: prom,
  cert: serverCert.certPem,
  key: serverCert.keyPem,
  authorize: (req) => req.headers.authorization === `Bearer ${SECRETS.token}`,
});
const customProxy = await startAuthProxy(t, {
  upstream: prom,
  cert: serverCert.certPem,
  key: serverCert.keyPem,
  authorize: (req) => req.headers['x-prometheus-key'] === SECRETS.customValue,
});

// --- helpers ----------------------------------------------------------------------------------

// Every error message any test saw (`messages`) is checked at the end for secrets.
const { messages, makeScaler, failure, configFailure, value, readsEventually, expectNoSecrets } = scalerTestKit({ type: 'prometheus', trust, timeoutMs: 10_000, log, teardown: (fn) => t.teardown(fn), settleMs: 30_000 });

/** Metadata for a query against the basic-auth Prometheus. */
const onProm = (query: string, extra: Record<string, string> = {}) => ({ serverAddress: prom.url, query, threshold: '5', authModes: 'basic', ...extra });


// --- tests ------------------------------------------------------------------------------------

t.test('HTTPS Prometheus trusted through the --ca-dir folder: the value, and its changes', async (t) => {
  const s = makeScaler(onProm('queue_depth'), { auth: basic });
  t.equal(await readsEventually(s, 3), 3);
  target.set('queue_depth', 17.25);
  t.equal(await readsEventually(s, 17.25), 17.25, 'a new value on the target reaches the scaler');
  target.set('queue_depth', 0);
  t.equal(await readsEventually(s, 0), 0, 'and zero is a value like any other');
  target.set('queue_depth', 3);
  t.equal(await readsEventually(s, 3), 3);
  t.equal(await value(makeScaler(onProm('sum(jobs_waiting)'), { auth: basic })), 10, 'an aggregation is one series');
  t.equal(await value(makeScaler(onProm('scalar(sum(jobs_waiting)) / 4'), { auth: basic })), 2.5, 'a scalar result');
  t.equal(await value(makeScaler(onProm('2.5e3'), { auth: basic })), 2500, 'a literal scalar');
  t.equal(s.metricName, 's0-prometheus', 'KEDA\'s metric name');
  t.equal(makeScaler(onProm('up'), { auth: basic, index: 3 }).metricName, 's3-prometheus');
  t.equal(s.targetValue, 5);
});

t.test('threshold and activation', async (t) => {
  const s = makeScaler(onProm('queue_depth', { threshold: '2.5', activationThreshold: '3' }), { auth: basic });
  t.equal(s.targetValue, 2.5);
  const v = await readsEventually(s, 3);
  t.notOk(s.isActive(v), 'the value equals the activation threshold: not active (KEDA: strictly above)');
  t.ok(s.isActive(3.01));
  const d = makeScaler(onProm('queue_depth'), { auth: basic });
  t.notOk(d.isActive(0), 'default activation threshold 0');
  t.ok(d.isActive(await value(d)), 'the real value 3 is above it');
  t.ok(makeScaler(onProm('queue_depth', { activationThreshold: '-1' }), { auth: basic }).isActive(0), 'a negative activation threshold');
});

t.test('auth: basic, checked by Prometheus itself', async (t) => {
  t.equal(await value(makeScaler(onProm('queue_depth'), { auth: basic })), 3);
  const wrong = await failure(value(makeScaler(onProm('queue_depth'), { auth: { username: USER, password: `${SECRETS.password}-wrong` } })));
  t.match(wrong, `prometheus ${prom.url}/api/v1/query: the upstream answered HTTP 401`);
  t.match(wrong, /check authModes and the trigger authentication/, 'and says where to look');
  const none = await failure(value(makeScaler(onProm('queue_depth', { authModes: '' }))));
  t.match(none, /HTTP 401.*the server wants credentials/, `without authModes: ${none}`);
  t.match(configFailure(() => makeScaler(onProm('queue_depth'), { auth: { password: SECRETS.password } })), /^prometheus: authModes basic: no username given/);
  // Credentials in serverAddress are basic auth too (Go's client does that), and never shown.
  const inUrl = makeScaler({ ...onProm('queue_depth', { authModes: '' }), serverAddress: prom.url.replace('https://', `https://${USER}:${SECRETS.password}@`) });
  t.equal(await value(inUrl), 3);
  const inUrlFailure = await failure(value(makeScaler({ ...onProm('sum(', { authModes: '' }), serverAddress: prom.url.replace('https://', `https://${USER}:${SECRETS.password}@`) })));
  t.match(inUrlFailure, `prometheus ${prom.url}/api/v1/query: the query failed`, 'the address shown has no credentials');
});

t.test('auth: bearer, through a proxy; namespace, customHeaders and queryParameters are sent', async (t) => {
  const md = {
    serverAddress: `${bearerProxy.url}/`,
    query: 'sum(tenant_load)',
    threshold: '1',
    authModes: 'bearer',
    namespace: 'team-a',
    customHeaders: 'X-Scope-OrgID=tenant-1, X-Extra = two words',
    queryParameters: 'dedup=true,partial_response=false',
  };
  t.equal(await value(makeScaler(md, { auth: { bearerToken: SECRETS.token } })), 11);
  const sent = bearerProxy.requests.at(-1)!;
  t.ok(sent.authorized);
  const url = new URL(sent.url, 'https://x');
  t.equal(url.pathname, '/api/v1/query', 'KEDA\'s path, the trailing slash of serverAddress not doubled');
  t.equal(url.searchParams.get('query'), 'sum(tenant_load)');
  t.match(url.searchParams.get('time'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'time: now, RFC 3339 as Go writes it');
  t.equal(url.searchParams.get('namespace'), 'team-a', 'the namespace parameter, for multi-tenant queriers');
  t.equal(url.searchParams.get('dedup'), 'true');
  t.equal(url.searchParams.get('partial_response'), 'false');
  t.equal(sent.headers['x-scope-orgid'], 'tenant-1', 'customHeaders');
  t.equal(sent.headers['x-extra'], 'two words');
  t.equal(sent.headers.authorization, `Bearer ${SECRETS.token}`);
  t.equal(sent.headers.accept, 'application/json');
  await value(makeScaler({ ...md, namespace: '', queryParameters: '' }, { auth: { bearerToken: SECRETS.token } }));
  t.notOk(new URL(bearerProxy.requests.at(-1)!.url, 'https://x').searchParams.has('namespace'), 'no namespace: no parameter');

  const wrong = await failure(value(makeScaler(md, { auth: { bearerToken: `${SECRETS.token}-wrong` } })));
  t.match(wrong, `prometheus ${bearerProxy.url}/api/v1/query: the upstream answered HTTP 401: Unauthorized (the server wants credentials`);
  t.notOk(bearerProxy.requests.at(-1)!.authorized, 'the proxy refused it');
  t.match(configFailure(() => makeScaler(md)), /^prometheus: authModes bearer: no bearerToken given/);
  t.match(configFailure(() => makeScaler(md, { auth: { bearerToken: '  ' } })), /no bearerToken given/, 'blank is missing');
});

t.test('auth: custom header, through a proxy', async (t) => {
  const md = { serverAddress: customProxy.url, query: 'queue_depth', threshold: '1', authModes: 'custom' };
  const auth = { customAuthHeader: 'X-Prometheus-Key', customAuthValue: SECRETS.customValue };
  t.equal(await value(makeScaler(md, { auth })), 3);
  t.equal(customProxy.requests.at(-1)?.headers['x-prometheus-key'], SECRETS.customValue);
  const wrong = await failure(value(makeScaler(md, { auth: { ...auth, customAuthValue: `${SECRETS.customValue}-wrong` } })));
  t.match(wrong, /HTTP 401/);
  t.match(configFailure(() => makeScaler(md, { auth: { customAuthValue: SECRETS.customValue } })), /authModes custom: no customAuthHeader given/);
  t.match(configFailure(() => makeScaler(md, { auth: { customAuthHeader: 'X-Prometheus-Key' } })), /authModes custom: no customAuthValue given/);
  t.match(configFailure(() => makeScaler(md, { auth: { ...auth, customAuthHeader: 'Bad Header' } })), /customAuthHeader "Bad Header" is not a valid header name/);
  t.match(configFailure(() => makeScaler({ ...md, authModes: 'custom,bearer' }, { auth: { ...auth, bearerToken: SECRETS.token } })), /custom and bearer cannot be combined/);
  t.match(configFailure(() => makeScaler({ ...md, authModes: 'basic, bearer' }, { auth: { ...basic, bearerToken: SECRETS.token } })), /basic and bearer cannot be combined/);
});

t.test('auth: tls client certificate, required by Prometheus', async (t) => {
  const md = { serverAddress: mtlsProm.url, query: 'queue_depth', threshold: '1', authModes: 'tls' };
  const s = makeScaler(md, { auth: { cert: clientCert.certPem, key: clientCert.keyPem, ca: serverCa.certPem }, trust: noCustomTrust });
  t.equal(await value(s), 3, 'the auth parameter ca is trusted even without --ca-dir');
  t.equal(await value(makeScaler(md, { auth: { cert: clientCert.certPem, key: encryptedClientKey, keyPassword: SECRETS.keyPassword } })), 3, 'an encrypted key with keyPassword');

  const noCert = await failure(value(makeScaler({ ...md, authModes: '' })));
  t.match(noCert, `prometheus ${mtlsProm.url}/api/v1/query: `);
  t.match(noCert, /closed the connection.*see authModes tls|certificate required/i, `without a client certificate: ${noCert}`);
  const wrongCa = await failure(value(makeScaler(md, { auth: { cert: otherClient.certPem, key: otherClient.keyPem } })));
  t.match(wrongCa, `prometheus ${mtlsProm.url}/api/v1/query: `, `a client certificate Prometheus does not trust: ${wrongCa}`);
  // TLS 1.3 servers refuse a client certificate after the handshake: usually the client only sees
  // the connection close, sometimes the alert itself.
  t.match(wrongCa, /closed the connection.*does it trust the CA that issued the auth parameter cert\?|TLS handshake failed: .*(unknown ca|bad certificate)/i);

  t.match(configFailure(() => makeScaler(md, { auth: { cert: clientCert.certPem, key: otherClient.keyPem } })), /authModes tls: the key does not match the certificate/);
  t.match(configFailure(() => makeScaler(md, { auth: { cert: 'garbage', key: clientCert.keyPem } })), /auth parameter "cert": no PEM CERTIFICATE/);
  t.match(configFailure(() => makeScaler(md, { auth: { cert: clientCert.certPem, key: encryptedClientKey } })), /"key" is encrypted and no keyPassword is given/);
  const badPassword = configFailure(() => makeScaler(md, { auth: { cert: clientCert.certPem, key: encryptedClientKey, keyPassword: `${SECRETS.keyPassword}-wrong` } }));
  t.match(badPassword, /cannot be read with the given keyPassword/);
  t.match(configFailure(() => makeScaler(md, { auth: { key: clientCert.keyPem } })), /authModes tls: no cert given/);
  t.match(configFailure(() => makeScaler(md, { auth: { cert: clientCert.certPem } })), /authModes tls: no key given/);
  t.match(configFailure(() => makeScaler(md, { auth: { cert: clientCert.certPem, key: clientCert.keyPem, ca: 'not a ca' } })), /auth parameter "ca": no PEM CERTIFICATE/);
});

t.test('the auth parameter ca alone adds trust, without authModes tls', async (t) => {
  const withCa = makeScaler(onProm('queue_depth'), { auth: { ...basic, ca: serverCa.certPem }, trust: noCustomTrust });
  t.equal(await value(withCa), 3);
});

t.test('a CA nobody gave us: a clear TLS error that says what to do', async (t) => {
  const msg = await failure(value(makeScaler(onProm('queue_depth'), { auth: basic, trust: noCustomTrust })));
  t.match(msg, `prometheus ${prom.url}/api/v1/query: TLS: the upstream's certificate is not trusted`);
  t.match(msg, /put its CA in a --ca-dir folder or the trigger's ca/);
  t.notMatch(msg, /--use-system-ca/, 'not Node\'s advice, which does not apply');
});

t.test('unsafeSsl: an untrusted Prometheus is reached, with one warning', async (t) => {
  const md = onProm('queue_depth', { unsafeSsl: 'true' });
  const before = logLines.length;
  t.equal(await value(makeScaler(md, { auth: basic, trust: noCustomTrust })), 3);
  t.equal(await value(makeScaler(md, { auth: basic, trust: noCustomTrust })), 3);
  const warnings = logLines.slice(before).filter((l) => l.level === 40 && l.msg.includes('unsafeSsl'));
  t.equal(warnings.length, 1, 'warned once for this server');
  t.match(warnings[0]?.msg, `prometheus ${prom.url}/api/v1/query: unsafeSsl is true, the upstream's certificate is NOT verified`);
  t.match(await failure(value(makeScaler({ ...md, unsafeSsl: 'false' }, { auth: basic, trust: noCustomTrust }))), /not trusted/);
  t.match(configFailure(() => makeScaler({ ...md, unsafeSsl: 'sometimes' })), /unsafeSsl "sometimes" is not a boolean/);
});

t.test('ignoreNullValues: an empty result is 0 by default, an error when false', async (t) => {
  t.equal(await value(makeScaler(onProm('no_such_metric'), { auth: basic })), 0, 'default true');
  t.equal(await value(makeScaler(onProm('no_such_metric', { ignoreNullValues: 'true' }), { auth: basic })), 0);
  const msg = await failure(value(makeScaler(onProm('no_such_metric', { ignoreNullValues: 'false' }), { auth: basic })));
  t.equal(msg, `prometheus ${prom.url}/api/v1/query: query returned no series, and ignoreNullValues is false: the target may be lost (query: no_such_metric)`);
  // A series that disappears from the target is marked stale by Prometheus: then it is empty too.
  target.set('going_away', 8);
  const s = makeScaler(onProm('going_away', { ignoreNullValues: 'false' }), { auth: basic });
  t.equal(await readsEventually(s, 8), 8);
  target.remove('going_away');
  const gone = await eventually('the series to go stale', async () => value(s).then(() => undefined, (err: Error) => err.message), 30_000);
  messages.push(gone);
  t.match(gone, /query returned no series/);
  t.match(configFailure(() => makeScaler(onProm('x', { ignoreNullValues: 'no' }))), /ignoreNullValues "no" is not a boolean/);
});

t.test('answers that are not one finite number', async (t) => {
  const multi = await failure(value(makeScaler(onProm('jobs_waiting'), { auth: basic })));
  t.equal(multi, `prometheus ${prom.url}/api/v1/query: query returned 2 series, expected 1: aggregate them, e.g. with sum() (query: jobs_waiting)`);
  target.set('weird', NaN);
  const nan = makeScaler(onProm('weird'), { auth: basic });
  const nanMsg = await eventually('NaN to be scraped', async () => value(nan).then(() => undefined, (err: Error) => (err.message.includes('NaN') ? err.message : undefined)), 30_000);
  messages.push(nanMsg);
  t.equal(nanMsg, `prometheus ${prom.url}/api/v1/query: the query returned NaN, not a finite number (query: weird)`);
  t.match(await failure(value(makeScaler(onProm('vector(1) / 0'), { auth: basic }))), /the query returned \+Inf, not a finite number/);
  t.match(await failure(value(makeScaler(onProm('-1 / 0'), { auth: basic }))), /the query returned -Inf, not a finite number/);
  t.match(await failure(value(makeScaler(onProm('queue_depth[1m]'), { auth: basic }))), /the query returned a matrix, expected an instant vector or a scalar \(query: queue_depth\[1m\]\)/);
  t.match(await failure(value(makeScaler(onProm('"text"'), { auth: basic }))), /the query returned a string, expected an instant vector or a scalar/);
});

t.test('PromQL errors are quoted from Prometheus', async (t) => {
  const syntax = await failure(value(makeScaler(onProm('sum(queue_depth'), { auth: basic })));
  t.match(syntax, `prometheus ${prom.url}/api/v1/query: the query failed (HTTP 400): bad_data: invalid parameter "query": `);
  t.match(syntax, /parse error: unclosed left parenthesis/);
  t.match(syntax, /\(query: sum\(queue_depth\)$/);
  // Valid PromQL that fails when evaluated: Prometheus says so with HTTP 422.
  const execution = await failure(value(makeScaler(onProm('jobs_waiting + on() jobs_waiting'), { auth: basic })));
  t.match(execution, `prometheus ${prom.url}/api/v1/query: the query failed (HTTP 422): execution: `);
  t.match(execution, /many-to-many|duplicate series/);
});

t.test('not Prometheus, unreachable, silent', async (t) => {
  // Connection refused: a port that was just freed.
  const gone = createHttpServer();
  await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
  const port = (gone.address() as AddressInfo).port;
  await new Promise<void>((r) => gone.close(() => r()));
  const refused = await failure(value(makeScaler({ serverAddress: `http://127.0.0.1:${port}`, query: 'up', threshold: '1' })));
  t.equal(refused.startsWith(`prometheus http://127.0.0.1:${port}/api/v1/query: connection refused`), true, refused);

  // Something that is not a Prometheus API.
  const other = createHttpServer((req, res) => {
    if (req.url?.startsWith('/html/')) res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>');
    else if (req.url?.startsWith('/json/')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"value": 3}');
    else if (req.url?.startsWith('/oops/')) res.writeHead(503).end('overloaded\n try later');
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => other.close(() => r())));
  const base = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  const at = (path: string) => failure(value(makeScaler({ serverAddress: `${base}${path}`, query: 'up', threshold: '1' })));
  t.match(await at('/html'), `prometheus ${base}/html/api/v1/query: the answer is not valid JSON (`);
  t.match(await at('/html'), /is serverAddress a Prometheus API\?/);
  t.equal(await at('/json'), `prometheus ${base}/json/api/v1/query: the answer is not a Prometheus query response (no "status": "success" with "data"): is serverAddress a Prometheus API?`);
  t.equal(await at('/oops'), `prometheus ${base}/oops/api/v1/query: the upstream answered HTTP 503: overloaded try later`);

  // A server that accepts and never answers: the metadata timeout bounds the call.
  const silent = createHttpsServer({ cert: serverCert.certPem, key: serverCert.keyPem }, () => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        silent.closeAllConnections();
        silent.close(() => r());
      }),
  );
  const silentUrl = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const s = makeScaler({ serverAddress: silentUrl, query: 'up', threshold: '1', timeout: '300' }, { timeoutMs: 60_000 });
  t.equal(await failure(value(s)), `prometheus ${silentUrl}/api/v1/query: no answer within 300 ms`, 'the timeout metadata, not the default');
  const ac = new AbortController();
  const pending = value(makeScaler({ serverAddress: silentUrl, query: 'up', threshold: '1' }), ac.signal);
  setTimeout(() => ac.abort(), 50);
  t.equal(await failure(pending), `prometheus ${silentUrl}/api/v1/query: request aborted`);
});

t.test('validateOnly: the metadata is checked, absent auth parameters are not an error', async (t) => {
  const vo = (md: Record<string, string>, auth: AuthParams = {}) => makeScaler(md, { validateOnly: true, auth });
  for (const authModes of ['bearer', 'basic', 'tls', 'custom', 'tls,bearer', 'tls, basic']) {
    t.doesNotThrow(() => vo({ ...onProm('up'), authModes }), `authModes ${authModes} without its parameters`);
  }
  const s = vo({ ...onProm('up'), authModes: 'bearer' });
  t.equal(s.metricName, 's0-prometheus');
  t.equal(s.targetValue, 5);
  t.match(await failure(value(s)), /built to validate the trigger only/, 'and it never queries');
  const cases: [Record<string, string>, RegExp][] = [
    [{ query: 'up', threshold: '1' }, /no serverAddress given/],
    [{ serverAddress: prom.url, threshold: '1' }, /no query given/],
    [{ serverAddress: prom.url, query: 'up' }, /no threshold given/],
    [onProm('up', { threshold: 'ten' }), /threshold "ten" is not a number/],
    [onProm('up', { authModes: 'oauth' }), /authModes: "oauth" is not supported/],
    [onProm('up', { authModes: 'basic,bearer' }), /cannot be combined/],
    [onProm('up', { customHeaders: 'novalue' }), /customHeaders: "novalue" is not key=value/],
  ];
  for (const [md, re] of cases) t.match(configFailure(() => vo(md)), re, JSON.stringify(md));
  // What is given is still checked.
  t.match(configFailure(() => vo({ ...onProm('up'), authModes: 'tls' }, { cert: clientCert.certPem, key: otherClient.keyPem })), /key does not match/);
  t.match(configFailure(() => vo(onProm('up'), { ca: 'nope' })), /^prometheus: auth parameter "ca": no PEM CERTIFICATE block found$/);
  const warned = logLines.filter((l) => l.msg.includes('unsafeSsl') && l.msg.includes('validate-only.test')).length;
  vo(onProm('up', { unsafeSsl: 'true', serverAddress: 'https://validate-only.test' }));
  t.equal(logLines.filter((l) => l.msg.includes('unsafeSsl') && l.msg.includes('validate-only.test')).length, warned, 'no unsafeSsl warning for a validation');
});

t.test('configuration errors', async (t) => {
  const ok = { serverAddress: 'https://prometheus.test:9090', query: 'up', threshold: '1' };
  const cases: [Record<string, string>, RegExp][] = [
    [{ query: 'up', threshold: '1' }, /^prometheus: no serverAddress given in metadata$/],
    [{ ...ok, serverAddress: 'not a url' }, /^prometheus: serverAddress is not a valid URL$/],
    [{ ...ok, serverAddress: 'ftp://prometheus.test' }, /serverAddress must be http or https, not ftp/],
    [{ ...ok, serverAddress: 'https://prometheus.test?x=1' }, /must not have a query or fragment/],
    [{ ...ok, query: ' ' }, /no query given/],
    [{ ...ok, threshold: '' }, /no threshold given/],
    [{ ...ok, threshold: '1x' }, /threshold "1x" is not a number/],
    [{ ...ok, activationThreshold: 'NaN' }, /activationThreshold "NaN" is not a number/],
    [{ ...ok, authModes: 'bearer,apiKey' }, /authModes: "apiKey" is not supported \(one of: bearer, basic, tls, custom\)/],
    [{ ...ok, customHeaders: 'a=1,b' }, /customHeaders: "b" is not key=value \(the format is k1=v1,k2=v2\)/],
    [{ ...ok, customHeaders: '=1' }, /customHeaders: "=1" has an empty key/],
    [{ ...ok, customHeaders: 'bad header=1' }, /"bad header" is not a valid header name/],
    [{ ...ok, queryParameters: 'a' }, /queryParameters: "a" is not key=value/],
    [{ ...ok, queryParameters: 'time=1' }, /queryParameters: "time" is set by the scaler itself/],
    [{ ...ok, queryParameters: 'namespace=x' }, /use the namespace metadata/],
    [{ ...ok, timeout: '0' }, /timeout "0" is not a positive whole number of milliseconds/],
    [{ ...ok, timeout: '1.5' }, /timeout "1.5" is not a positive whole number/],
  ];
  for (const [md, re] of cases) t.match(configFailure(() => makeScaler(md)), re, JSON.stringify(md));
  t.doesNotThrow(() => makeScaler({ ...ok, customHeaders: 'a=1,,b=x=y', queryParameters: 'k=', timeout: '2500', authModes: ' , ' }), 'empty entries, = in values, empty values');
  t.equal(scalerFactories.prometheus, createPrometheusScaler);
});

t.test('no secret in any message or log line', async (t) => {
  expectNoSecrets(t, SECRETS, logLines, { atLeast: 25, alsoNot: { 'nor the basic credentials encoded': Buffer.from(`${USER}:${SECRETS.password}`).toString('base64') } });
});
