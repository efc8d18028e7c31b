// The security battery: every way a caller can be refused, each asserting the exact outcome (TLS
// alert / dropped connection, 401, 403, 400, 500) and that nothing was served. Trust and identity
// come from a real control plane (envtest), as in production: the adapter runs as its own
// ServiceAccount with deploy/'s RBAC, reads the extension-apiserver-authentication ConfigMap that
// kube-apiserver publishes from its own flags, and asks kube-apiserver to review real
// ServiceAccount tokens and to authorize against real RBAC. What was asked, and how often, is read
// from kube-apiserver's audit log. The faults a real kube-apiserver cannot be made to show on demand
// (a 503, an error, a slow answer, a rewritten ConfigMap) are in security-faults.test.ts, with the
// same case numbers.
import t, { type Test } from 'tap';
import { generateKeyPairSync, sign } from 'node:crypto';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { SERVICE_ACCOUNT_ISSUER, startControlPlane, type ClientIdentity } from '../helpers/envtest.js';
import { componentKubeconfigs, installDeploy } from '../helpers/keda-cluster.js';
import { Kube, namespace, type Obj } from '../helpers/kube.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import { expectNoResponse, expectRefused as refused, frontProxyHeaders as frontProxy, get } from '../helpers/https.js';
import { sClient } from '../helpers/tools.js';

const root = t.testdir();
const cp = await startControlPlane(t, { controllerManager: false });
t.comment(`control plane started in ${Math.round(cp.startup.totalMs)} ms`);
const kube = new Kube(cp.adminKubeconfig);
// The adapter's serving certificate and a CA the cluster has never heard of.
const pki = await createTestPki(join(root, 'pki'));

const HPA = 'system:serviceaccount:kube-system:horizontal-pod-autoscaler';
const ADAPTER_SA = 'system:serviceaccount:keda:keda-metrics-server';
const NS = 'security';

// The cluster's policy: deploy/ lets the HPA read external metrics; "alice" gets the same
// ClusterRole; "bob", "eve", "user" and mallory get nothing but what every authenticated user has.
await installDeploy(cp, root, ['rbac']);
const binding = (name: string, role: string, subject: Record<string, string>): Obj => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRoleBinding',
  metadata: { name },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
  subjects: [subject],
});
const serviceAccount = (ns: string, name: string): Obj => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } });
for (const obj of [
  namespace(NS),
  // Without kube-controller-manager nobody creates the HPA controller's ServiceAccount.
  serviceAccount('kube-system', 'horizontal-pod-autoscaler'),
  serviceAccount(NS, 'mallory'),
  // The adapter's permissions from deploy/ minus the ConfigMap reader Role (case 25).
  serviceAccount(NS, 'adapter-without-reader'),
  binding('security-test:alice', 'keda-external-metrics-reader', { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'alice' }),
  binding('security-test:adapter-without-reader', 'system:auth-delegator', { kind: 'ServiceAccount', name: 'adapter-without-reader', namespace: NS }),
]) {
  await kube.create(obj);
}

const tokenOf = async (ns: string, name: string): Promise<string> =>
  (await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {},
  }))!.status.token;

/** A well-formed ServiceAccount token for the HPA, signed by a key the cluster does not know. */
async function forgedHpaToken(): Promise<string> {
  const sa = await kube.get('v1', 'ServiceAccount', 'kube-system', 'horizontal-pod-autoscaler');
  const now = Math.floor(Date.now() / 1000);
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims = {
    iss: SERVICE_ACCOUNT_ISSUER,
    aud: [SERVICE_ACCOUNT_ISSUER],
    sub: HPA,
    iat: now,
    nbf: now,
    exp: now + 3600,
    'kubernetes.io': { namespace: 'kube-system', serviceaccount: { name: 'horizontal-pod-autoscaler', uid: sa?.metadata?.uid } },
  };
  const body = `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${sign('sha256', Buffer.from(body), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey).toString('base64url')}`;
}

const [hpaToken, malloryToken, forgedToken] = await Promise.all([tokenOf('kube-system', 'horizontal-pod-autoscaler'), tokenOf(NS, 'mallory'), forgedHpaToken()]);

// Client certificates: valid ones from the cluster's client CA; the bad ones claim system:masters
// so that accepting any of them would be served, not refused for another reason.
const DAY = 86_400_000;
const now = Date.now();
const masters = ['system:masters'];
const [admin, user, intruder, expired, future, noClientAuth] = await Promise.all([
  cp.clientCertificate('admin', masters),
  cp.clientCertificate('user'),
  cp.clientCertificate('intruder', [], { signer: 'front-proxy' }),
  cp.clientCertificate('admin', masters, { notBefore: new Date(now - 10 * DAY), notAfter: new Date(now - DAY) }),
  cp.clientCertificate('admin', masters, { notBefore: new Date(now + DAY), notAfter: new Date(now + 10 * DAY) }),
  cp.clientCertificate('admin', masters, { extendedUsages: ['serverAuth'] }),
]);
const frontProxyClient = cp.frontProxyClient;

const { adapter: adapterKubeconfig } = await componentKubeconfigs(cp);
// Caches long enough that the counting cases (34-36) cannot straddle an expiry on a busy machine.
const delegated = [
  `--cert-dir=${pki.dir}`,
  `--authentication-kubeconfig=${adapterKubeconfig}`,
  `--authorization-kubeconfig=${adapterKubeconfig}`,
  '--authorization-webhook-cache-authorized-ttl=5m',
  '--authorization-webhook-cache-unauthorized-ttl=5m',
  '--authentication-token-webhook-cache-ttl=5m',
];
// require mode: trust comes only from the ConfigMap (no CA flags at all).
const adapter: TestAdapter = await startTestAdapter(delegated);
t.teardown(() => adapter.shutdown());
// request mode: certificate-less clients may bring a bearer token.
const tokenAdapter: TestAdapter = await startTestAdapter([...delegated, '--client-cert-mode=request']);
t.teardown(() => tokenAdapter.shutdown());

const GV = '/apis/external.metrics.k8s.io/v1beta1';
const METRIC = `${GV}/namespaces/default/demo-sine`;
const bearer = (token: string): [string, string] => ['Authorization', `Bearer ${token}`];
const call = (a: TestAdapter, client: ClientIdentity | undefined, path: string, headers: [string, string][] = []) =>
  get({ port: a.port, path, ca: pki.ca.cert, ...(client ? { client } : {}), headers });

async function dropped(t: Test, client: ClientIdentity): Promise<void> {
  const e = await expectNoResponse({ port: adapter.port, path: METRIC, ca: pki.ca.cert, client });
  t.equal(e.code, 'ECONNRESET', 'connection dropped after the handshake, nothing served');
}

// What the adapter asked kube-apiserver, from the audit log. Both adapters run as the same
// ServiceAccount; the cases tell their reviews apart by the user under review.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const reviews = (resource: 'subjectaccessreviews' | 'tokenreviews'): Record<string, any>[] =>
  cp
    .auditEvents()
    .filter((e) => e.user.username === ADAPTER_SA && e.verb === 'create' && e.objectRef?.resource === resource)
    .map((e) => ({ ...e.requestObject?.spec, allowed: e.responseObject?.status?.allowed }));
const sars = () => reviews('subjectaccessreviews');
const sarsFor = (name: string) => sars().filter((s) => s.user === name);

// --- TLS -------------------------------------------------------------------------------------
t.test('01 TLS 1.2 is refused with a protocol_version alert', async (t) => {
  const r = await sClient(adapter.port, ['-tls1_2', '-CAfile', pki.ca.certFile, '-cert', admin.certFile, '-key', admin.keyFile], METRIC);
  t.match(r.stdout + r.stderr, /alert protocol version/i);
  t.notMatch(r.stdout, /HTTP\/1\.1/);
});
t.test('02 no client certificate (require mode): certificate_required alert', async (t) => {
  const r = await sClient(adapter.port, ['-tls1_3', '-CAfile', pki.ca.certFile], METRIC);
  t.match(r.stdout + r.stderr, /alert certificate required/i);
  t.notMatch(r.stdout, /HTTP\/1\.1/);
});
t.test('03 a certificate from an unknown CA is dropped', (t) => dropped(t, pki.foreignAdmin));
t.test('04 an expired client certificate is dropped', (t) => dropped(t, expired));
t.test('05 a not-yet-valid client certificate is dropped', (t) => dropped(t, future));
t.test('06 a client certificate without clientAuth usage is dropped', (t) => dropped(t, noClientAuth));

// --- authentication --------------------------------------------------------------------------
t.test('07 the aggregator (front-proxy) as the HPA is allowed by SubjectAccessReview', async (t) => {
  const before = sarsFor(HPA).length;
  const res = await call(adapter, frontProxyClient, METRIC, frontProxy(HPA, ['system:serviceaccounts', 'system:serviceaccounts:kube-system']));
  t.equal(res.status, 200);
  t.equal(res.json<{ items: unknown[] }>().items.length, 1);
  const asked = sarsFor(HPA).slice(before);
  t.equal(asked.length, 1, 'one review');
  t.match(asked[0], { allowed: true, resourceAttributes: { resource: 'demo-sine' } }, 'kube-apiserver allowed it, through deploy/\'s binding');
});
t.test('08 front-proxy CN not in the ConfigMap allowed names: 401', async (t) => {
  refused(t, await call(adapter, intruder, METRIC, frontProxy(HPA, masters)), 401, 'Unauthorized');
});
t.test('09 front-proxy certificate without a user header: 401', async (t) => {
  refused(t, await call(adapter, frontProxyClient, METRIC, [['X-Remote-Group', 'system:masters']]), 401, 'Unauthorized');
});
t.test('10 spoofed X-Remote-* from a normal client are ignored: judged as the certificate user', async (t) => {
  const before = sarsFor('user').length;
  const res = await call(adapter, user, METRIC, frontProxy(HPA, masters));
  refused(t, res, 403, 'Forbidden', /User "user" cannot list resource "demo-sine"/);
  const asked = sarsFor('user').slice(before);
  t.equal(asked.length, 1, 'the review asked about "user"');
  t.same(asked[0]?.groups, ['system:authenticated'], 'with the certificate\'s groups only');
  t.notOk(sars().some((s) => s.groups?.includes('system:masters')), 'the spoofed group never reached a review');
});
t.test('11 spoofed headers together with a bearer token: the token decides, headers ignored', async (t) => {
  const res = await call(tokenAdapter, undefined, METRIC, [bearer(malloryToken), ...frontProxy(HPA, masters)]);
  refused(t, res, 403, 'Forbidden', /User "system:serviceaccount:security:mallory" cannot list/);
});
t.test('12 a forged token (TokenReview: unauthenticated): 401', async (t) => {
  const before = reviews('tokenreviews').length;
  refused(t, await call(tokenAdapter, undefined, METRIC, [bearer(forgedToken)]), 401, 'Unauthorized');
  t.equal(reviews('tokenreviews').length - before, 1, 'kube-apiserver was asked and said no');
});
t.test('13 a valid token for the HPA: 200, and the token is in no log line', async (t) => {
  const res = await call(tokenAdapter, undefined, METRIC, [bearer(hpaToken)]);
  t.equal(res.status, 200);
  const logs = JSON.stringify([adapter.logs, tokenAdapter.logs]);
  for (const token of [hpaToken, malloryToken, forgedToken]) t.notOk(logs.includes(token), 'no token in the logs');
});
t.test('14 no certificate and no token (request mode): 401', async (t) => {
  refused(t, await call(tokenAdapter, undefined, METRIC), 401, 'Unauthorized');
});
t.test('15 a presented but invalid certificate in request mode is 401, never anonymous or token-based', async (t) => {
  refused(t, await call(tokenAdapter, pki.foreignAdmin, METRIC, [bearer(hpaToken), ...frontProxy(HPA)]), 401, 'Unauthorized');
});

// --- authorization ---------------------------------------------------------------------------
t.test('17 a forbidden user (SubjectAccessReview denies): 403 with the Kubernetes message', async (t) => {
  refused(t, await call(adapter, frontProxyClient, METRIC, frontProxy('bob', ['devs'])), 403, 'Forbidden',
    /^demo-sine\.external\.metrics\.k8s\.io is forbidden: User "bob" cannot list resource "demo-sine" in API group "external\.metrics\.k8s\.io" in the namespace "default"/);
});
t.test('18 the review carries every attribute Kubernetes uses', async (t) => {
  const before = sarsFor('alice').length;
  await call(adapter, frontProxyClient, `${GV}/namespaces/team-a/s0-queue`, frontProxy('alice', ['devs', 'qa'], [['X-Remote-Extra-Scopes', 'read'], ['X-Remote-Extra-Scopes', 'write']]));
  await call(adapter, frontProxyClient, GV, frontProxy('alice'));
  const [metric, discovery, ...more] = sarsFor('alice').slice(before);
  t.same(more, [], 'one review per request');
  t.match(metric, {
    user: 'alice',
    groups: ['devs', 'qa', 'system:authenticated'],
    extra: { scopes: ['read', 'write'] },
    resourceAttributes: { namespace: 'team-a', verb: 'list', group: 'external.metrics.k8s.io', version: 'v1beta1', resource: 's0-queue' },
    allowed: true,
  });
  t.match(discovery, { user: 'alice', nonResourceAttributes: { path: GV, verb: 'get' }, allowed: true });
});
t.test('38 a watch is reviewed as a watch, and a subresource as one, as kube-apiserver asks', async (t) => {
  const before = sarsFor('alice').length;
  refused(t, await call(adapter, frontProxyClient, `${METRIC}?watch=true`, frontProxy('alice')), 403, 'Forbidden', /User "alice" cannot watch resource "demo-sine"/);
  const deep = await call(adapter, frontProxyClient, `${GV}/namespaces/team-a/s0-queue/x/status`, frontProxy('alice'));
  t.equal(deep.status, 404, 'allowed (RBAC\'s "*" covers subresources), and nothing is there');
  const [watch, subresource, ...more] = sarsFor('alice').slice(before);
  t.same(more, [], 'one review per request');
  t.match(watch, { resourceAttributes: { namespace: 'default', verb: 'watch', resource: 'demo-sine' }, allowed: false });
  t.match(subresource, { resourceAttributes: { namespace: 'team-a', verb: 'get', resource: 's0-queue', subresource: 'status', name: 'x' }, allowed: true });
  refused(t, await call(adapter, admin, `${METRIC}?watch=true`), 405, 'MethodNotAllowed', /does not allow this method/);
});
t.test('21 system:masters is allowed without asking the cluster', async (t) => {
  const before = sars().length;
  t.equal((await call(adapter, admin, METRIC)).status, 200);
  t.equal(sars().length, before, 'no review sent');
});
t.test('22 health paths are allowed without asking the cluster', async (t) => {
  const before = sars().length;
  t.equal((await call(adapter, user, '/readyz')).status, 200);
  t.equal(sars().length, before, 'no review sent');
});

// --- cluster configuration -------------------------------------------------------------------
t.test('25 the ConfigMap unreadable (RBAC): start-up fails with one line naming the Role', async (t) => {
  const kc = await cp.serviceAccountKubeconfig(NS, 'adapter-without-reader');
  await t.rejects(startTestAdapter([`--cert-dir=${pki.dir}`, `--authentication-kubeconfig=${kc}`, `--authorization-kubeconfig=${kc}`]), {
    message: /cannot read ConfigMap kube-system\/extension-apiserver-authentication \(403 Forbidden\): bind the Role "extension-apiserver-authentication-reader" in namespace kube-system/,
  });
});

// --- hostile input ---------------------------------------------------------------------------
const asAdmin = (path: string, headers: [string, string][] = []) => call(adapter, admin, path, headers);
t.test('26 oversized headers: 431 Status, nothing served', async (t) => {
  refused(t, await asAdmin(METRIC, [['X-Padding', 'x'.repeat(20_000)]]), 431, 'BadRequest', /header fields too large/);
});
t.test('27 path traversal in the namespace: 400', async (t) => {
  refused(t, await asAdmin(`${GV}/namespaces/../demo-sine`), 400, 'BadRequest', /invalid namespace/);
  refused(t, await asAdmin(`${GV}/namespaces/%2E%2E/demo-sine`), 400, 'BadRequest', /invalid namespace/);
});
t.test('28 encoded slashes in the metric name: 400', async (t) => {
  refused(t, await asAdmin(`${GV}/namespaces/default/..%2F..%2Fsecrets`), 400, 'BadRequest', /invalid metric name/);
  refused(t, await asAdmin(`${GV}/namespaces/default/demo%2Fsine`), 400, 'BadRequest', /invalid metric name/);
});
t.test('29 encoded slash in the namespace: 400', async (t) => {
  refused(t, await asAdmin(`${GV}/namespaces/kube-system%2Fsecrets/demo-sine`), 400, 'BadRequest', /invalid namespace/);
});
t.test('30 selector injection: 400', async (t) => {
  refused(t, await asAdmin(`${METRIC}?labelSelector=${encodeURIComponent('a=b)(c')}`), 400, 'BadRequest', /invalid labelSelector/);
  refused(t, await asAdmin(`${METRIC}?labelSelector=${encodeURIComponent('a=b,c in (d),e=f"g')}`), 400, 'BadRequest', /invalid labelSelector/);
});
t.test('31 a very long selector: 400', async (t) => {
  const long = Array.from({ length: 600 }, (_, i) => `k${i}=v${i}`).join(',');
  t.ok(long.length > 4096);
  const res = await asAdmin(`${METRIC}?labelSelector=${encodeURIComponent(long)}`);
  refused(t, res, 400, 'BadRequest', /invalid labelSelector/);
  t.ok(res.text.length < 1_000, 'the answer does not echo the whole selector');
});
t.test('32 unknown query parameters are ignored, as Kubernetes servers do', async (t) => {
  t.equal((await asAdmin(`${METRIC}?timeout=32s&watch=false&pretty=true&nonsense=%00`)).status, 200);
});
t.test('33 malformed HTTP: 400 Status, nothing served', async (t) => {
  const text = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: adapter.port, servername: 'localhost', ca: pki.ca.cert, cert: admin.cert, key: admin.key }, () => s.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'));
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
  const path = `${GV}/namespaces/cache-test/demo-sine`;
  const inCacheTest = () => sarsFor('alice').filter((s) => s.resourceAttributes?.namespace === 'cache-test').length;
  const before = inCacheTest();
  for (let batch = 0; batch < 20; batch++) {
    const results = await Promise.all(Array.from({ length: 50 }, () => call(adapter, frontProxyClient, path, frontProxy('alice'))));
    t.ok(results.every((r) => r.status === 200), `batch ${batch} all 200`);
  }
  t.equal(inCacheTest() - before, 1, 'exactly one review for 1,000 requests');
  const metrics = await (await fetch(`http://127.0.0.1:${adapter.metricsPort}/metrics`)).text();
  t.match(metrics, /delegated_auth_cache_requests_total\{review="subject_access",result="hit",component="adapter"\} \d{3,}/);
});
t.test('35 denials are cached too (their own TTL)', async (t) => {
  const before = sarsFor('eve').length;
  for (let i = 0; i < 20; i++) t.equal((await call(adapter, frontProxyClient, METRIC, frontProxy('eve'))).status, 403);
  t.equal(sarsFor('eve').length - before, 1);
});
t.test('36 identical concurrent tokens: one TokenReview, then cached', async (t) => {
  // A token no earlier case used, so that the cache starts empty for it.
  const token = await tokenOf('kube-system', 'horizontal-pod-autoscaler');
  const asked = () => reviews('tokenreviews').filter((r) => r.token === token).length;
  const results = await Promise.all(Array.from({ length: 100 }, () => call(tokenAdapter, undefined, METRIC, [bearer(token)])));
  t.ok(results.every((r) => r.status === 200), 'all 200');
  t.equal(asked(), 1, 'one review for 100 concurrent requests');
  t.equal((await call(tokenAdapter, undefined, METRIC, [bearer(token)])).status, 200);
  t.equal(asked(), 1, 'and none for the next one');
});
