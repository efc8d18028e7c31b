// KEDA's metrics-api scaler against real upstreams on 127.0.0.1: HTTPS trusted through the
// --ca-dir folder (live), plain HTTP, every auth mode checked by the server, every failure with
// its message, and never a secret in a message.
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { createCA, issueCertificate } from '../../../src/certs/x509.js';
import { CustomCaTrust } from '../../../src/tls/custom-ca.js';
import { createScaler, scalerFactories } from '../../../src/operator/scalers/index.js';
import { ERROR_BODY_CHARS, MAX_BODY_BYTES } from '../../../src/operator/scalers/http-upstream.js';
import { createMetricsApiScaler } from '../../../src/operator/scalers/metrics-api.js';
import { metricNameFor, normalizeMetricName } from '../../../src/operator/scalers/metric-name.js';
import { ScalerConfigError } from '../../../src/operator/scalers/scaler.js';
import type { AuthParams } from '../../../src/operator/scaledobjects/types.js';
import { eventually } from '../../helpers/loop.js';
import { caDirTrusts, capturingLogger, scalerTestKit } from '../../helpers/scalers.js';

const { log, lines: logLines } = capturingLogger();

const root = t.testdir();
const SECRETS = {
  token: 'tok-Sup3rSecretBearer',
  password: 'pw-Sup3rSecretBasic',
  apiKey: 'key-Sup3rSecretApi',
};

// --- PKI: the upstream's CA exists only in the --ca-dir folder --------------------------------
const upstreamCa = await createCA({ commonName: 'upstream CA (custom)' });
const clientCa = await createCA({ commonName: 'upstream client CA' });
const issue = (ca: typeof upstreamCa, cn: string, usage: 'serverAuth' | 'clientAuth') =>
  issueCertificate({ certPem: ca.certPem, keyPem: ca.keyPem }, { commonName: cn, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedUsages: [usage] });
const serverCert = await issue(upstreamCa, 'upstream', 'serverAuth');
const clientCert = await issue(clientCa, 'scaler-client', 'clientAuth');
const otherClient = await issue(upstreamCa, 'not-the-client-ca', 'clientAuth');

const { trust, noCustomTrust } = await caDirTrusts(t, root, log, 'upstream-ca.crt', upstreamCa.certPem);

// --- upstreams ----------------------------------------------------------------------------------
type Handler = (req: IncomingMessage, res: ServerResponse) => void;
interface Upstream {
  url(path: string): string;
  port: number;
  handshakes: number;
  connections: number;
  requests: { url: string; headers: IncomingMessage['headers']; clientCn?: string }[];
}

async function startUpstream(handler: Handler, opts: { https?: boolean; requireClientCert?: boolean } = {}): Promise<Upstream> {
  const isHttps = opts.https ?? true;
  const up: Upstream = { url: () => '', port: 0, handshakes: 0, connections: 0, requests: [] };
  const wrapped: Handler = (req, res) => {
    const peer = isHttps ? (req.socket as TLSSocket).getPeerCertificate() : undefined;
    up.requests.push({ url: req.url ?? '', headers: req.headers, ...(peer?.subject ? { clientCn: String(peer.subject.CN) } : {}) });
    handler(req, res);
  };
  const server: HttpServer = isHttps
    ? createHttpsServer(
        {
          cert: serverCert.certPem,
          key: serverCert.keyPem,
          minVersion: 'TLSv1.3',
          ...(opts.requireClientCert ? { requestCert: true, rejectUnauthorized: true, ca: clientCa.certPem } : {}),
        },
        wrapped,
      )
    : createHttpServer(wrapped);
  server.on('secureConnection', () => up.handshakes++);
  server.on('connection', () => up.connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.port = (server.address() as AddressInfo).port;
  up.url = (path) => `${isHttps ? 'https' : 'http'}://127.0.0.1:${up.port}${path}`;
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return up;
}

const json = (body: unknown, status = 200): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

// Every error message any test saw (`messages`) is checked at the end for secrets.
const { makeScaler, failure, configFailure, value, expectNoSecrets } = scalerTestKit({ type: 'metrics-api', trust, timeoutMs: 5000, log, teardown: (fn) => t.teardown(fn) });

// --- tests ------------------------------------------------------------------------------------

t.test('HTTPS upstream trusted through the --ca-dir folder: the value, one TLS context, TLS 1.3', async (t) => {
  const up = await startUpstream(json({ data: { value: 42, items: [{ value: 1 }, { value: '12.5' }, { value: '250m' }] } }));
  const s = makeScaler({ url: up.url('/metrics'), valueLocation: 'data.value', targetValue: '10' });
  for (let i = 0; i < 6; i++) t.equal(await value(s), 42);
  // undici may open a second connection when a call follows the previous one within the same
  // tick; what matters is that connections (and the TLS context) are kept, not made per call.
  t.ok(up.handshakes <= 2, `six calls, ${up.handshakes} TLS connection(s): the dispatcher is reused`);
  t.equal(up.requests[0]?.headers.accept, 'application/json');
  t.equal(s.targetValue, 10);
  t.equal(s.metricName, 's0-metric-api-data-value');
  t.equal(await value(makeScaler({ url: up.url('/'), valueLocation: 'data.items.0.value', targetValue: '1' })), 1, 'array index');
  t.equal(await value(makeScaler({ url: up.url('/'), valueLocation: 'data.items.1.value', targetValue: '1' })), 12.5, 'numeric string');
  t.equal(await value(makeScaler({ url: up.url('/'), valueLocation: 'data.items.2.value', targetValue: '1' })), 0.25, 'a Kubernetes quantity, as KEDA reads strings');
});

t.test('the CA not in the folder: a clear TLS error; added to the folder: works, live', async (t) => {
  const up = await startUpstream(json({ v: 7 }));
  const dir = join(root, 'live-ca-dir');
  await mkdir(dir);
  const liveTrust = new CustomCaTrust([dir], log, { debounceMs: 20 });
  await liveTrust.start();
  t.teardown(() => liveTrust.close());
  const s = makeScaler({ url: up.url('/v'), valueLocation: 'v', targetValue: '1' }, { trust: liveTrust });
  const msg = await failure(value(s));
  t.match(msg, `metrics-api ${up.url('/v')}: TLS: the upstream's certificate is not trusted`);
  t.match(msg, /--ca-dir/, 'and says what to do');
  t.notMatch(msg, /--use-system-ca/, 'not Node\'s advice, which does not apply');
  t.equal(up.requests.length, 0, 'nothing reached the upstream');
  await writeFile(join(dir, 'ca.crt'), upstreamCa.certPem);
  await eventually('the CA to be trusted', async () => (liveTrust.customCount === 1 ? true : undefined));
  t.equal(await value(s), 7, 'the same scaler now reaches the upstream');
  const without = await failure(value(makeScaler({ url: up.url('/v'), valueLocation: 'v', targetValue: '1' }, { trust: noCustomTrust })));
  t.match(without, 'not trusted', 'the system roots alone do not do');
});

t.test('plain HTTP upstream', async (t) => {
  const up = await startUpstream(json({ data: { value: 3.5 } }), { https: false });
  const s = makeScaler({ url: up.url('/x?region=eu'), valueLocation: 'data.value', targetValue: '1' });
  t.equal(await value(s), 3.5);
  t.equal(up.requests[0]?.url, '/x?region=eu');
});

t.test('redirects are followed (as Go does)', async (t) => {
  const up = await startUpstream((req, res) => {
    if (req.url === '/old') {
      res.writeHead(302, { location: '/new' });
      res.end();
    } else json({ v: 5 })(req, res);
  }, { https: false });
  t.equal(await value(makeScaler({ url: up.url('/old'), valueLocation: 'v', targetValue: '1' })), 5);
});

t.test('auth: bearer', async (t) => {
  const up = await startUpstream((req, res) => {
    if (req.headers.authorization === `Bearer ${SECRETS.token}`) return json({ v: 1 })(req, res);
    // A badly behaved upstream that echoes what it got: the message must still not carry it.
    json({ error: `invalid token ${req.headers.authorization}` }, 401)(req, res);
  });
  const md = { url: up.url('/b'), valueLocation: 'v', targetValue: '1', authMode: 'bearer' };
  t.equal(await value(makeScaler(md, { auth: { token: SECRETS.token } })), 1);
  const msg = await failure(value(makeScaler(md, { auth: { token: `${SECRETS.token}-wrong` } })));
  t.match(msg, `metrics-api ${up.url('/b')}: the upstream answered HTTP 401`);
  t.notMatch(msg, SECRETS.token);
  t.match(msg, '[redacted]');
  t.match(configFailure(() => makeScaler(md)), /authMode bearer: no token given in the trigger authentication/);
});

t.test('auth: basic', async (t) => {
  const up = await startUpstream((req, res) => {
    const [scheme, b64 = ''] = (req.headers.authorization ?? '').split(' ');
    const ok = scheme === 'Basic' && Buffer.from(b64, 'base64').toString() === `alice:${SECRETS.password}`;
    json(ok ? { v: 2 } : { error: 'nope' }, ok ? 200 : 403)(req, res);
  });
  const md = { url: up.url('/basic'), valueLocation: 'v', targetValue: '1', authMode: 'basic' };
  t.equal(await value(makeScaler(md, { auth: { username: 'alice', password: SECRETS.password } })), 2);
  t.match(await failure(value(makeScaler(md, { auth: { username: 'bob', password: SECRETS.password } }))), /HTTP 403: \{"error":"nope"\}/);
  t.match(configFailure(() => makeScaler(md, { auth: { password: 'x' } })), /no username given/);
  // Credentials in the URL are basic auth too (Go's client does that), and never shown.
  const inUrl = makeScaler({ url: up.url('/basic').replace('https://', `https://alice:${SECRETS.password}@`), valueLocation: 'missing', targetValue: '1' });
  const msg = await failure(value(inUrl));
  t.match(msg, `metrics-api ${up.url('/basic')}: no value at "missing"`, 'authenticated, and the URL shown has no credentials');
});

t.test('auth: tls client certificate, required by the upstream', async (t) => {
  const up = await startUpstream(json({ v: 3 }), { requireClientCert: true });
  const md = { url: up.url('/mtls'), valueLocation: 'v', targetValue: '1', authMode: 'tls' };
  const s = makeScaler(md, { auth: { cert: clientCert.certPem, key: clientCert.keyPem, ca: upstreamCa.certPem }, trust: noCustomTrust });
  t.equal(await value(s), 3, 'the auth ca is trusted even without --ca-dir');
  t.equal(up.requests.at(-1)?.clientCn, 'scaler-client', 'the server saw our client certificate');
  const noCert = await failure(value(makeScaler({ url: up.url('/mtls'), valueLocation: 'v', targetValue: '1' })));
  t.match(noCert, `metrics-api ${up.url('/mtls')}: `);
  t.match(noCert, /closed the connection.*authMode tls|certificate required/i, `without a client certificate: ${noCert}`);
  const wrongCa = await failure(value(makeScaler(md, { auth: { cert: otherClient.certPem, key: otherClient.keyPem, ca: upstreamCa.certPem } })));
  t.match(wrongCa, `metrics-api ${up.url('/mtls')}: `, `a client certificate the upstream does not trust: ${wrongCa}`);
  t.match(configFailure(() => makeScaler(md, { auth: { cert: clientCert.certPem, key: otherClient.keyPem } })), /key does not match the certificate/);
  t.match(configFailure(() => makeScaler(md, { auth: { cert: 'garbage', key: clientCert.keyPem } })), /auth parameter "cert": no PEM CERTIFICATE/);
  const badKey = configFailure(() => makeScaler(md, { auth: { cert: clientCert.certPem, key: 'not a key' } }));
  t.match(badKey, /auth parameter "key": no parsable PEM private key/);
  t.match(configFailure(() => makeScaler(md, { auth: { key: clientCert.keyPem } })), /no cert given/);
});

t.test('auth: apiKey in a header or the query, default and custom names', async (t) => {
  const up = await startUpstream((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    const got = req.headers['x-api-key'] ?? req.headers['x-custom-key'] ?? q.get('api_key') ?? q.get('k');
    json(got === SECRETS.apiKey ? { v: 4 } : { error: `bad key ${String(got)}` }, got === SECRETS.apiKey ? 200 : 401)(req, res);
  });
  const base = { url: up.url('/k?x=1'), valueLocation: 'v', targetValue: '1', authMode: 'apiKey' };
  const auth = { apiKey: SECRETS.apiKey };
  t.equal(await value(makeScaler(base, { auth })), 4);
  t.equal(up.requests.at(-1)?.headers['x-api-key'], SECRETS.apiKey, 'default: X-API-KEY header');
  t.equal(await value(makeScaler({ ...base, keyParamName: 'X-Custom-Key' }, { auth })), 4);
  t.equal(up.requests.at(-1)?.headers['x-custom-key'], SECRETS.apiKey, 'custom header name');
  t.equal(await value(makeScaler({ ...base, method: 'query' }, { auth })), 4);
  t.equal(up.requests.at(-1)?.url, `/k?x=1&api_key=${SECRETS.apiKey}`, 'default: api_key query parameter, the URL\'s own query kept');
  t.equal(await value(makeScaler({ ...base, method: 'query', keyParamName: 'k' }, { auth })), 4);
  t.equal(up.requests.at(-1)?.url, `/k?x=1&k=${SECRETS.apiKey}`, 'custom query parameter');
  const msg = await failure(value(makeScaler({ ...base, method: 'query' }, { auth: { apiKey: `${SECRETS.apiKey}-wrong` } })));
  t.equal(msg, `metrics-api ${up.url('/k')}?x=***&api_key=***: the upstream answered HTTP 401: {"error":"bad key [redacted]"}`);
  t.match(configFailure(() => makeScaler({ ...base, method: 'body' }, { auth })), /method "body" is not supported/);
  t.match(configFailure(() => makeScaler(base)), /authMode apiKey: no apiKey given in the trigger authentication/);
});

t.test('errors: each names the url and the problem', async (t) => {
  const up = await startUpstream((req, res) => {
    const routes: Record<string, Handler> = {
      '/503': (_q, r) => {
        r.writeHead(503);
        r.end('overloaded\n  try later');
      },
      '/204': (_q, r) => {
        r.writeHead(204);
        r.end();
      },
      '/invalid': json('{"v": 1'),
      '/html': json('<html>hi</html>'),
      '/abc': json({ data: { v: 'abc' } }),
      '/bool': json({ data: { v: true } }),
      '/null': json({ data: { v: null } }),
      '/obj': json({ data: { v: { x: 1 } } }),
      '/arr': json({ data: { v: [1, 2] } }),
      '/short': json({ data: { items: [1] } }),
      '/scalar': json({ data: 5 }),
      // A runaway upstream: 1 MiB of padding more than the limit, in 64 KiB writes.
      '/huge': (_q, r) => {
        r.writeHead(200, { 'content-type': 'application/json' });
        const pad = Buffer.alloc(64 * 1024, ' ');
        for (let i = 0; i < (MAX_BODY_BYTES + 2 ** 20) / pad.length; i++) r.write(pad);
        r.end('{"data":{"v":1}}');
      },
      '/huge-error': (_q, r) => {
        r.writeHead(500, { 'content-type': 'text/plain' });
        r.end(`broken ${'x'.repeat(2 ** 20)}`);
      },
    };
    (routes[req.url ?? ''] ?? json({}, 404))(req, res);
  }, { https: false });
  const err = (path: string, valueLocation = 'data.v') => failure(value(makeScaler({ url: up.url(path), valueLocation, targetValue: '1' })));
  const p = (path: string) => `metrics-api ${up.url(path)}: `;
  t.equal(await err('/503'), `${p('/503')}the upstream answered HTTP 503: overloaded try later`);
  t.equal(await err('/nowhere'), `${p('/nowhere')}the upstream answered HTTP 404: {}`);
  t.match(await err('/204'), `${p('/204')}the answer is not valid JSON`);
  t.match(await err('/invalid'), `${p('/invalid')}the answer is not valid JSON (`);
  t.match(await err('/html'), `${p('/html')}the answer is not valid JSON (`);
  t.equal(await err('/abc'), `${p('/abc')}value at "data.v" is not a number ("abc")`);
  t.equal(await err('/bool'), `${p('/bool')}value at "data.v" is not a number (got boolean true)`);
  t.equal(await err('/null'), `${p('/null')}value at "data.v" is not a number (got null)`);
  t.equal(await err('/obj'), `${p('/obj')}value at "data.v" is not a number (got an object)`);
  t.equal(await err('/arr'), `${p('/arr')}value at "data.v" is not a number (got an array)`);
  t.equal(await err('/abc', 'data.missing'), `${p('/abc')}no value at "data.missing": "data" has no key "missing"`);
  t.equal(await err('/short', 'data.items.3'), `${p('/short')}no value at "data.items.3": "data.items" has no index 3 (array of 1)`);
  t.equal(await err('/short', 'data.items.x'), `${p('/short')}no value at "data.items.x": "data.items" is an array, "x" is not an index`);
  t.equal(await err('/scalar', 'data.v'), `${p('/scalar')}no value at "data.v": "data" is a number, not an object or array`);
  t.equal(await err('/huge'), `${p('/huge')}the answer is larger than ${MAX_BODY_BYTES} bytes`);
  t.equal(await err('/huge-error'), `${p('/huge-error')}the upstream answered HTTP 500: broken ${'x'.repeat(ERROR_BODY_CHARS - 'broken '.length)}`);
  t.equal(await value(makeScaler({ url: up.url('/scalar'), valueLocation: 'data', targetValue: '1' })), 5, 'the same upstream still answers after the oversized ones were cut off');

  // Connection refused: a port that was just freed.
  const gone = createHttpServer();
  await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
  const port = (gone.address() as AddressInfo).port;
  await new Promise<void>((r) => gone.close(() => r()));
  const refused = await failure(value(makeScaler({ url: `http://127.0.0.1:${port}/m`, valueLocation: 'v', targetValue: '1' })));
  t.match(refused, `metrics-api http://127.0.0.1:${port}/m: connection refused`);
});

t.test('timeout: a server that never answers', async (t) => {
  const up = await startUpstream(() => undefined);
  const s = makeScaler({ url: up.url('/slow'), valueLocation: 'v', targetValue: '1' }, { timeoutMs: 300 });
  const started = Date.now();
  t.equal(await failure(value(s)), `metrics-api ${up.url('/slow')}: no answer within 300 ms`);
  const took = Date.now() - started;
  t.ok(took >= 250 && took < 2000, `bounded by timeoutMs (${took} ms)`);
  // A server that sends headers and then stalls the body is bounded the same way.
  const stall = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"v":');
  });
  t.equal(await failure(value(makeScaler({ url: stall.url('/stall'), valueLocation: 'v', targetValue: '1' }, { timeoutMs: 300 }))), `metrics-api ${stall.url('/stall')}: no answer within 300 ms`);
});

t.test('abort via the signal', async (t) => {
  const up = await startUpstream(() => undefined);
  const s = makeScaler({ url: up.url('/hang'), valueLocation: 'v', targetValue: '1' }, { timeoutMs: 10_000 });
  const ac = new AbortController();
  const started = Date.now();
  setTimeout(() => ac.abort(), 100);
  t.equal(await failure(s.getMetricValue(ac.signal)), `metrics-api ${up.url('/hang')}: request aborted`);
  t.ok(Date.now() - started < 2000, 'promptly');
  t.equal(await failure(s.getMetricValue(AbortSignal.abort())), `metrics-api ${up.url('/hang')}: request aborted`, 'already aborted: not even sent');
});

t.test('unsafeSsl: an untrusted upstream is reached, with one warning', async (t) => {
  const up = await startUpstream(json({ v: 9 }));
  const md = { url: up.url('/unsafe'), valueLocation: 'v', targetValue: '1', unsafeSsl: 'true' };
  t.equal(await value(makeScaler(md, { trust: noCustomTrust })), 9);
  t.equal(await value(makeScaler(md, { trust: noCustomTrust })), 9);
  const warnings = logLines.filter((l) => l.level === 40 && l.msg.includes('unsafeSsl'));
  t.equal(warnings.length, 1, 'warned once for this url');
  t.match(warnings[0]?.msg, up.url('/unsafe'));
  t.match(configFailure(() => makeScaler({ ...md, unsafeSsl: 'maybe' })), /unsafeSsl "maybe" is not a boolean/);
  t.match(await failure(value(makeScaler({ ...md, unsafeSsl: 'false' }, { trust: noCustomTrust }))), /not trusted/);
});

t.test('activation and target', async (t) => {
  const url = 'http://127.0.0.1:1/x';
  const s = makeScaler({ url, valueLocation: 'v', targetValue: '8.8', activationTargetValue: '5' });
  t.equal(s.targetValue, 8.8);
  t.notOk(s.isActive(5), 'at the activation target: not active (KEDA: strictly above)');
  t.ok(s.isActive(5.1));
  const d = makeScaler({ url, valueLocation: 'v', targetValue: '1' });
  t.notOk(d.isActive(0), 'default activation 0');
  t.ok(d.isActive(0.001));
  t.equal(makeScaler({ url, valueLocation: 'v' }, { metricType: 'Utilization' }).targetValue, 0, 'targetValue optional for Utilization');
});

t.test('metric names, as KEDA', async (t) => {
  const url = 'http://127.0.0.1:1/x';
  t.equal(makeScaler({ url, valueLocation: 'data.value', targetValue: '1' }).metricName, 's0-metric-api-data-value');
  // Each of / . : % ( ) becomes "-": the closing parenthesis leaves a trailing dash, as in KEDA.
  t.equal(makeScaler({ url, valueLocation: 'a/b.c:d%e(f)', targetValue: '1' }, { index: 2 }).metricName, 's2-metric-api-a-b-c-d-e-f-');
  t.equal(normalizeMetricName('metric-api-a/b.c:d%e(f)'), 'metric-api-a-b-c-d-e-f-');
  t.equal(normalizeMetricName('nothing_to-do'), 'nothing_to-do');
  t.equal(metricNameFor(7, 'x'), 's7-x');
  t.equal(makeScaler({ url, valueLocation: 'data.items.0.value', targetValue: '1' }, { index: 1 }).metricName, 's1-metric-api-data-items-0-value');
});

t.test('configuration errors', async (t) => {
  const ok = { url: 'https://example.test/m', valueLocation: 'v', targetValue: '1' };
  const cases: [Record<string, string>, RegExp][] = [
    [{ valueLocation: 'v', targetValue: '1' }, /^metrics-api: no url given in metadata$/],
    [{ ...ok, url: 'ftp://example.test/x' }, /url must be http or https, not ftp/],
    [{ ...ok, url: 'not a url' }, /url is not a valid URL/],
    [{ url: ok.url, targetValue: '1' }, /no valueLocation given/],
    [{ url: ok.url, valueLocation: 'v' }, /no targetValue given/],
    [{ ...ok, targetValue: 'abc' }, /targetValue "abc" is not a number/],
    [{ ...ok, activationTargetValue: '1x' }, /activationTargetValue "1x" is not a number/],
    [{ ...ok, format: 'xml' }, /format "xml" is not supported \(one of: json\)/],
    [{ ...ok, authMode: 'oauth' }, /authMode "oauth" is not supported \(one of: bearer, basic, tls, apiKey\)/],
    [{ ...ok, valueLocation: 'items.#.value' }, /only dotted keys and array indices/],
    [{ ...ok, valueLocation: 'items.*' }, /only dotted keys and array indices/],
    [{ ...ok, valueLocation: 'a|b' }, /only dotted keys and array indices/],
    [{ ...ok, valueLocation: 'a..b' }, /empty key/],
  ];
  for (const [md, re] of cases) t.match(configFailure(() => makeScaler(md)), re, JSON.stringify(md));
  t.doesNotThrow(() => makeScaler({ ...ok, format: 'json' }));
  t.match(
    configFailure(() => createScaler({ triggerIndex: 0, trigger: { type: 'kafka', metadata: {} }, auth: {}, trust, timeoutMs: 1000 })),
    /^unsupported trigger type "kafka" \(supported: cron, kubernetes-workload, metrics-api, mysql, nats-jetstream, postgresql, prometheus, rabbitmq, redis, redis-streams\)$/,
  );
  t.match(configFailure(() => createScaler({ triggerIndex: 0, trigger: { type: 'constructor', metadata: {} }, auth: {}, trust, timeoutMs: 1000 })), /unsupported trigger type/);
  t.equal(scalerFactories['metrics-api'], createMetricsApiScaler);
});

t.test('validateOnly: the metadata is checked, absent auth parameters are not an error', async (t) => {
  const ok = { url: 'https://example.test/m', valueLocation: 'v', targetValue: '1' };
  const vo = (md: Record<string, string>, auth: AuthParams = {}) => makeScaler(md, { validateOnly: true, auth });
  for (const authMode of ['bearer', 'basic', 'tls', 'apiKey']) {
    t.doesNotThrow(() => vo({ ...ok, authMode }), `authMode ${authMode} without its parameters`);
    t.throws(() => makeScaler({ ...ok, authMode }), ScalerConfigError, `authMode ${authMode} without its parameters, not validating: refused`);
  }
  t.doesNotThrow(() => vo({ ...ok, authMode: 'tls' }, { cert: clientCert.certPem }), 'a cert without its key');
  const s = vo({ ...ok, authMode: 'bearer' });
  t.equal(s.metricName, 's0-metric-api-v');
  t.equal(s.targetValue, 1);
  t.match(await failure(value(s)), /^metrics-api https:\/\/example\.test\/m: this scaler was built to validate the trigger only/, 'and it never queries');
  const cases: [Record<string, string>, RegExp][] = [
    [{ valueLocation: 'v', targetValue: '1' }, /no url given/],
    [{ ...ok, url: 'ftp://example.test/x' }, /url must be http or https/],
    [{ url: ok.url, valueLocation: 'v' }, /no targetValue given/],
    [{ ...ok, targetValue: 'abc' }, /targetValue "abc" is not a number/],
    [{ ...ok, valueLocation: 'items.*' }, /only dotted keys/],
    [{ ...ok, authMode: 'oauth' }, /authMode "oauth" is not supported/],
    [{ ...ok, authMode: 'apiKey', method: 'body' }, /method "body" is not supported/],
    [{ ...ok, unsafeSsl: 'maybe' }, /unsafeSsl "maybe" is not a boolean/],
  ];
  for (const [md, re] of cases) t.match(configFailure(() => vo(md)), re, JSON.stringify(md));
  // What is given is still checked.
  t.match(configFailure(() => vo({ ...ok, authMode: 'tls' }, { cert: clientCert.certPem, key: otherClient.keyPem })), /key does not match the certificate/);
  t.match(configFailure(() => vo({ ...ok, authMode: 'tls' }, { ca: 'not a ca' })), /auth parameter "ca": no PEM CERTIFICATE/);
  const unsafeUrl = 'https://validate-only.test/m';
  vo({ ...ok, url: unsafeUrl, unsafeSsl: 'true' });
  t.notOk(logLines.some((l) => l.msg.includes(unsafeUrl)), 'no unsafeSsl warning for a validation');
});

t.test('a key with an escaped dot', async (t) => {
  const up = await startUpstream(json({ 'a.b': { c: 6 } }), { https: false });
  t.equal(await value(makeScaler({ url: up.url('/'), valueLocation: 'a\\.b.c', targetValue: '1' })), 6);
});

t.test('no secret in any message', async (t) => {
  expectNoSecrets(t, SECRETS, logLines, { atLeast: 30 });
});
