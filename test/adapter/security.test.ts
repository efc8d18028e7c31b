// The security battery: every way a caller can be refused, each asserting the exact outcome (TLS
// alert / dropped connection, 401, 403, 400, 500) and that nothing was served. Trust and identity
// come from the cluster, as in production: the authentication ConfigMap, TokenReview and
// SubjectAccessReview, all served by the fake kube-apiserver to @kubernetes/client-node.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { startFakeApiServer, ApiStatusError, type SubjectAccessReviewSpec } from '../helpers/fake-apiserver.js';
import { createTestPki, type Pair } from '../helpers/pki.js';
import { startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import { expectNoResponse, get, type Response } from '../helpers/https.js';
import { sClient } from '../helpers/tools.js';
import { eventually } from '../helpers/loop.js';
import { connect as tlsConnect } from 'node:tls';
import { createCA, issueCertificate } from '../../src/certs/x509.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
const api = await startFakeApiServer();
t.teardown(() => api.close());

const HPA = 'system:serviceaccount:kube-system:horizontal-pod-autoscaler';
const authConfigMap = (frontProxyCa: string, allowedNames: string[]) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'extension-apiserver-authentication', namespace: 'kube-system' },
  data: {
    'client-ca-file': pki.ca.cert,
    'requestheader-client-ca-file': frontProxyCa,
    'requestheader-allowed-names': JSON.stringify(allowedNames),
    'requestheader-username-headers': '["X-Remote-User"]',
    'requestheader-group-headers': '["X-Remote-Group"]',
    'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
  },
});
api.put(authConfigMap(pki.frontProxyCa.cert, ['front-proxy-client']));

// The cluster's policy: the HPA and "alice" may read external metrics; discovery for the authenticated.
const sarSeen: SubjectAccessReviewSpec[] = [];
let sarMode: 'policy' | 'error' = 'policy';
api.onSubjectAccessReview((spec) => {
  sarSeen.push(spec);
  if (sarMode === 'error') throw new ApiStatusError(500, 'InternalError', 'etcd is on fire');
  const r = spec.resourceAttributes;
  if (r) return { allowed: (spec.user === HPA || spec.user === 'alice') && r.group === 'external.metrics.k8s.io' && (r.verb === 'list' || r.verb === 'get') };
  return { allowed: spec.groups?.includes('system:authenticated') === true && spec.nonResourceAttributes?.path?.startsWith('/apis') === true };
});
api.onTokenReview((spec) => {
  if (spec.token === 'hpa-token') return { authenticated: true, user: { username: HPA, uid: 'u-hpa', groups: ['system:serviceaccounts'] } };
  if (spec.token === 'mallory-token') return { authenticated: true, user: { username: 'mallory', groups: [] } };
  return { authenticated: false, error: 'token is not valid' };
});

const kubeconfig = await api.writeKubeconfig(root);
const delegated = [`--cert-dir=${pki.dir}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`, '--delegated-auth-timeout=1s'];
// require mode: trust comes only from the ConfigMap (no CA flags at all).
const adapter: TestAdapter = await startTestAdapter(delegated);
t.teardown(() => adapter.shutdown());
// request mode: certificate-less clients may bring a bearer token.
const tokenAdapter: TestAdapter = await startTestAdapter([...delegated, '--client-cert-mode=request']);
t.teardown(() => tokenAdapter.shutdown());

const GV = '/apis/external.metrics.k8s.io/v1beta1';
const METRIC = `${GV}/namespaces/default/demo-sine`;
const frontProxy = (user: string, groups: string[] = [], extra: [string, string][] = []): [string, string][] => [
  ['X-Remote-User', user],
  ...groups.map((g): [string, string] => ['X-Remote-Group', g]),
  ...extra,
];
const call = (a: TestAdapter, client: Pair | undefined, path: string, headers: [string, string][] = []) => get({ port: a.port, path, ca: pki.ca.cert, ...(client ? { client } : {}), headers });

function refused(t: Test, res: Response, code: number, reason: string, message?: RegExp): void {
  t.equal(res.status, code, `HTTP ${code}`);
  const s = res.json();
  t.match(s, { kind: 'Status', status: 'Failure', reason, code });
  if (message) t.match(s.message, message);
  t.notMatch(res.text, /"items"|ExternalMetricValueList|APIResourceList|APIGroupList/, 'nothing was served');
}
async function dropped(t: Test, client: Pair): Promise<void> {
  const e = await expectNoResponse({ port: adapter.port, path: METRIC, ca: pki.ca.cert, client });
  t.equal(e.code, 'ECONNRESET', 'connection dropped after the handshake, nothing served');
}
const sarsFor = (user: string) => sarSeen.filter((s) => s.user === user);

// --- TLS -------------------------------------------------------------------------------------
t.test('01 TLS 1.2 is refused with a protocol_version alert', async (t) => {
  const r = await sClient(adapter.port, ['-tls1_2', '-CAfile', pki.ca.certFile, '-cert', pki.admin.certFile, '-key', pki.admin.keyFile], METRIC);
  t.match(r.stdout + r.stderr, /alert protocol version/i);
  t.notMatch(r.stdout, /HTTP\/1\.1/);
});
t.test('02 no client certificate (require mode): certificate_required alert', async (t) => {
  const r = await sClient(adapter.port, ['-tls1_3', '-CAfile', pki.ca.certFile], METRIC);
  t.match(r.stdout + r.stderr, /alert certificate required/i);
  t.notMatch(r.stdout, /HTTP\/1\.1/);
});
t.test('03 a certificate from an unknown CA is dropped', (t) => dropped(t, pki.foreignAdmin));
t.test('04 an expired client certificate is dropped', (t) => dropped(t, pki.expiredUser));
t.test('05 a not-yet-valid client certificate is dropped', (t) => dropped(t, pki.futureUser));
t.test('06 a client certificate without clientAuth usage is dropped', (t) => dropped(t, pki.noClientAuthUser));

// --- authentication --------------------------------------------------------------------------
t.test('07 the aggregator (front-proxy) as the HPA is allowed by SubjectAccessReview', async (t) => {
  const res = await call(adapter, pki.frontProxyClient, METRIC, frontProxy(HPA, ['system:serviceaccounts']));
  t.equal(res.status, 200);
  t.equal(res.json<{ items: unknown[] }>().items.length, 1);
});
t.test('08 front-proxy CN not in the ConfigMap allowed names: 401', async (t) => {
  refused(t, await call(adapter, pki.frontProxyIntruder, METRIC, frontProxy(HPA, ['system:masters'])), 401, 'Unauthorized');
});
t.test('09 front-proxy certificate without a user header: 401', async (t) => {
  refused(t, await call(adapter, pki.frontProxyClient, METRIC, [['X-Remote-Group', 'system:masters']]), 401, 'Unauthorized');
});
t.test('10 spoofed X-Remote-* from a normal client are ignored: judged as the certificate user', async (t) => {
  const before = sarsFor('user').length;
  const res = await call(adapter, pki.user, METRIC, frontProxy(HPA, ['system:masters']));
  refused(t, res, 403, 'Forbidden', /User "user" cannot list resource "demo-sine"/);
  t.equal(sarsFor('user').length, before + 1, 'the review asked about "user"');
  t.notOk(sarSeen.some((s) => s.groups?.includes('system:masters') && s.user === 'user'), 'the spoofed group never reached a review');
});
t.test('11 spoofed headers together with a bearer token: the token decides, headers ignored', async (t) => {
  const res = await call(tokenAdapter, undefined, METRIC, [['Authorization', 'Bearer mallory-token'], ...frontProxy(HPA, ['system:masters'])]);
  refused(t, res, 403, 'Forbidden', /User "mallory" cannot list/);
});
t.test('12 a forged token (TokenReview: unauthenticated): 401', async (t) => {
  refused(t, await call(tokenAdapter, undefined, METRIC, [['Authorization', 'Bearer forged.token.here']]), 401, 'Unauthorized');
});
t.test('13 a valid token for the HPA: 200, and the token is in no log line', async (t) => {
  const res = await call(tokenAdapter, undefined, METRIC, [['Authorization', 'Bearer hpa-token']]);
  t.equal(res.status, 200);
  t.notMatch(JSON.stringify(tokenAdapter.logs), /hpa-token|mallory-token|forged\.token/);
});
t.test('14 no certificate and no token (request mode): 401', async (t) => {
  refused(t, await call(tokenAdapter, undefined, METRIC), 401, 'Unauthorized');
});
t.test('15 a presented but invalid certificate in request mode is 401, never anonymous or token-based', async (t) => {
  refused(t, await call(tokenAdapter, pki.foreignAdmin, METRIC, [['Authorization', 'Bearer hpa-token'], ...frontProxy(HPA)]), 401, 'Unauthorized');
});
t.test('16 TokenReview failing (kube-apiserver 503): 401, fail closed', async (t) => {
  const clear = api.inject({ path: '/apis/authentication.k8s.io/v1/tokenreviews', status: 503 });
  t.teardown(clear);
  refused(t, await call(tokenAdapter, undefined, METRIC, [['Authorization', 'Bearer another-token']]), 401, 'Unauthorized');
});

// --- authorization ---------------------------------------------------------------------------
t.test('17 a forbidden user (SubjectAccessReview denies): 403 with the Kubernetes message', async (t) => {
  refused(t, await call(adapter, pki.frontProxyClient, METRIC, frontProxy('bob', ['devs'])), 403, 'Forbidden',
    /^demo-sine\.external\.metrics\.k8s\.io is forbidden: User "bob" cannot list resource "demo-sine" in API group "external\.metrics\.k8s\.io" in the namespace "default"/);
});
t.test('18 the review carries every attribute Kubernetes uses', async (t) => {
  await call(adapter, pki.frontProxyClient, `${GV}/namespaces/team-a/s0-queue`, frontProxy('alice', ['devs', 'qa'], [['X-Remote-Extra-Scopes', 'read'], ['X-Remote-Extra-Scopes', 'write']]));
  t.match(sarSeen.at(-1), {
    user: 'alice',
    groups: ['devs', 'qa', 'system:authenticated'],
    extra: { scopes: ['read', 'write'] },
    resourceAttributes: { namespace: 'team-a', verb: 'list', group: 'external.metrics.k8s.io', version: 'v1beta1', resource: 's0-queue' },
  });
  await call(adapter, pki.frontProxyClient, GV, frontProxy('alice'));
  t.match(sarSeen.at(-1), { user: 'alice', nonResourceAttributes: { path: GV, verb: 'get' } });
});
t.test('19 SubjectAccessReview error: 500, fail closed, nothing served', async (t) => {
  sarMode = 'error';
  t.teardown(() => (sarMode = 'policy'));
  refused(t, await call(adapter, pki.frontProxyClient, `${GV}/namespaces/default/never-reviewed`, frontProxy('carol')), 500, 'InternalError', /authorization check failed/);
});
t.test('20 SubjectAccessReview slower than the timeout: refused at the deadline', async (t) => {
  const clear = api.inject({ path: '/apis/authorization.k8s.io/v1/subjectaccessreviews', delayMs: 3_000 });
  t.teardown(clear);
  const started = Date.now();
  refused(t, await call(adapter, pki.frontProxyClient, `${GV}/namespaces/default/slow-review`, frontProxy('dave')), 500, 'InternalError', /within 1000 ms/);
  t.ok(Date.now() - started < 2_500, `bounded by --delegated-auth-timeout (${Date.now() - started} ms)`);
});
t.test('21 system:masters is allowed without asking the cluster', async (t) => {
  const before = sarSeen.length;
  t.equal((await call(adapter, pki.admin, METRIC)).status, 200);
  t.equal(sarSeen.length, before, 'no review sent');
});
t.test('22 health paths are allowed without asking the cluster', async (t) => {
  const before = sarSeen.length;
  t.equal((await call(adapter, pki.user, '/readyz')).status, 200);
  t.equal(sarSeen.length, before);
});

// --- cluster configuration -------------------------------------------------------------------
t.test('23 front-proxy CA rotated in the ConfigMap: applied live, old front-proxy refused on new connections', async (t) => {
  const ca2 = await createCA({ commonName: 'front-proxy CA 2' });
  const client2 = await issueCertificate(ca2, { commonName: 'front-proxy-client', extendedUsages: ['clientAuth'] });
  const pair2: Pair = { cert: client2.certPem, key: client2.keyPem, certFile: '', keyFile: '' };
  api.put(authConfigMap(ca2.certPem, ['front-proxy-client']));
  await eventually('the new front-proxy CA', async () => {
    const r = await call(adapter, pair2, METRIC, frontProxy(HPA)).catch(() => undefined);
    return r?.status === 200 ? true : undefined;
  });
  const e = await expectNoResponse({ port: adapter.port, path: METRIC, ca: pki.ca.cert, client: pki.frontProxyClient, headers: frontProxy(HPA) });
  t.equal(e.code, 'ECONNRESET', 'the old front-proxy certificate is refused');
  api.put(authConfigMap(pki.frontProxyCa.cert, ['front-proxy-client']));
  await eventually('the original CA back', async () => ((await call(adapter, pki.frontProxyClient, METRIC, frontProxy(HPA)).catch(() => undefined))?.status === 200 ? true : undefined));
});
t.test('24 allowed names changed in the ConfigMap: applied live', async (t) => {
  api.put(authConfigMap(pki.frontProxyCa.cert, ['intruder']));
  await eventually('intruder allowed', async () => ((await call(adapter, pki.frontProxyIntruder, METRIC, frontProxy(HPA))).status === 200 ? true : undefined));
  refused(t, await call(adapter, pki.frontProxyClient, METRIC, frontProxy(HPA)), 401, 'Unauthorized');
  api.put(authConfigMap(pki.frontProxyCa.cert, ['front-proxy-client']));
  await eventually('front-proxy-client allowed again', async () => ((await call(adapter, pki.frontProxyClient, METRIC, frontProxy(HPA))).status === 200 ? true : undefined));
});
t.test('25 the ConfigMap unreadable (RBAC): start-up fails with one line naming the Role', async (t) => {
  const other = await startFakeApiServer({ authorizer: (a) => !(a.resource === 'configmaps' && a.namespace === 'kube-system') });
  t.teardown(() => other.close());
  const kc = await other.writeKubeconfig(join(root, 'other'));
  await t.rejects(startTestAdapter([`--cert-dir=${pki.dir}`, `--authentication-kubeconfig=${kc}`, `--authorization-kubeconfig=${kc}`]), {
    message: /cannot read ConfigMap kube-system\/extension-apiserver-authentication \(403 Forbidden\): bind the Role "extension-apiserver-authentication-reader" in namespace kube-system/,
  });
});

// --- hostile input ---------------------------------------------------------------------------
const admin = (path: string) => call(adapter, pki.admin, path);
t.test('26 oversized headers: 431 Status, nothing served', async (t) => {
  const res = await call(adapter, pki.admin, METRIC, [['X-Padding', 'x'.repeat(20_000)]]);
  refused(t, res, 431, 'BadRequest', /header fields too large/);
});
t.test('27 path traversal in the namespace: 400', async (t) => {
  refused(t, await admin(`${GV}/namespaces/../demo-sine`), 400, 'BadRequest', /invalid namespace/);
  refused(t, await admin(`${GV}/namespaces/%2E%2E/demo-sine`), 400, 'BadRequest', /invalid namespace/);
});
t.test('28 encoded slashes in the metric name: 400', async (t) => {
  refused(t, await admin(`${GV}/namespaces/default/..%2F..%2Fsecrets`), 400, 'BadRequest', /invalid metric name/);
  refused(t, await admin(`${GV}/namespaces/default/demo%2Fsine`), 400, 'BadRequest', /invalid metric name/);
});
t.test('29 encoded slash in the namespace: 400', async (t) => {
  refused(t, await admin(`${GV}/namespaces/kube-system%2Fsecrets/demo-sine`), 400, 'BadRequest', /invalid namespace/);
});
t.test('30 selector injection: 400', async (t) => {
  refused(t, await admin(`${METRIC}?labelSelector=${encodeURIComponent('a=b)(c')}`), 400, 'BadRequest', /invalid labelSelector/);
  refused(t, await admin(`${METRIC}?labelSelector=${encodeURIComponent('a=b,c in (d),e=f"g')}`), 400, 'BadRequest', /invalid labelSelector/);
});
t.test('31 a very long selector: 400', async (t) => {
  const long = Array.from({ length: 600 }, (_, i) => `k${i}=v${i}`).join(',');
  t.ok(long.length > 4096);
  const res = await admin(`${METRIC}?labelSelector=${encodeURIComponent(long)}`);
  refused(t, res, 400, 'BadRequest', /invalid labelSelector/);
  t.ok(res.text.length < 1_000, 'the answer does not echo the whole selector');
});
t.test('32 unknown query parameters are ignored, as Kubernetes servers do', async (t) => {
  const res = await admin(`${METRIC}?timeout=32s&watch=false&pretty=true&nonsense=%00`);
  t.equal(res.status, 200);
});
t.test('33 malformed HTTP: 400 Status, nothing served', async (t) => {
  const text = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: adapter.port, servername: 'localhost', ca: pki.ca.cert, cert: pki.admin.cert, key: pki.admin.key }, () => s.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'));
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
  t.match(text, /^HTTP\/1\.1 400 Bad Request/);
  t.match(text, /"kind":"Status"/);
});

// --- caching -----------------------------------------------------------------------------------
t.test('34 1,000 requests from the same user for the same metric: one SubjectAccessReview per cache period', async (t) => {
  const user = 'alice';
  const path = `${GV}/namespaces/cache-test/demo-sine`;
  const before = sarsFor(user).filter((s) => s.resourceAttributes?.namespace === 'cache-test').length;
  for (let batch = 0; batch < 20; batch++) {
    const results = await Promise.all(Array.from({ length: 50 }, () => call(adapter, pki.frontProxyClient, path, frontProxy(user))));
    t.ok(results.every((r) => r.status === 200), `batch ${batch} all 200`);
  }
  const after = sarsFor(user).filter((s) => s.resourceAttributes?.namespace === 'cache-test').length;
  t.equal(after - before, 1, 'exactly one review for 1,000 requests');
  const metrics = await (await fetch(`http://127.0.0.1:${adapter.metricsPort}/metrics`)).text();
  t.match(metrics, /delegated_auth_cache_requests_total\{review="subject_access",result="hit",component="adapter"\} \d{3,}/);
});
t.test('35 denials are cached too (their own TTL)', async (t) => {
  const before = sarsFor('eve').length;
  for (let i = 0; i < 20; i++) t.equal((await call(adapter, pki.frontProxyClient, METRIC, frontProxy('eve'))).status, 403);
  t.equal(sarsFor('eve').length - before, 1);
});
t.test('36 identical concurrent tokens: one TokenReview, then cached', async (t) => {
  const reviews = () => api.requests.filter((r) => r.path === '/apis/authentication.k8s.io/v1/tokenreviews').length;
  const before = reviews();
  const results = await Promise.all(Array.from({ length: 100 }, () => call(tokenAdapter, undefined, METRIC, [['Authorization', 'Bearer hpa-token']])));
  t.ok(results.every((r) => r.status === 200));
  t.ok(reviews() - before <= 1, `at most one review for 100 requests (${reviews() - before}; 0 when still cached from case 13)`);
});
t.test('37 after a SubjectAccessReview failure the next request asks again and recovers', async (t) => {
  const path = `${GV}/namespaces/recovery/demo-sine`;
  sarMode = 'error';
  refused(t, await call(adapter, pki.frontProxyClient, path, frontProxy('alice')), 500, 'InternalError');
  sarMode = 'policy';
  const res = await call(adapter, pki.frontProxyClient, path, frontProxy('alice'));
  t.equal(res.status, 200, 'the failure was not cached');
});
