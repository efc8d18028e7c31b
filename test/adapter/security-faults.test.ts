// The cases of the security battery that a real kube-apiserver cannot be made to show on demand,
// against the fake kube-apiserver (test/helpers/fake-apiserver); every other case runs on a real
// control plane in security.test.ts, and the numbers are the battery's. Why each one is here:
//   16     TokenReview answered with a 503: a live kube-apiserver answers TokenReviews from its own
//          authenticators and cannot fail that one API while serving the rest (stopping it is
//          another fault: connection refused, and the ConfigMap watch lost as well).
//   19, 37 SubjectAccessReview erroring (and the next request recovering): RBAC answers allowed or
//          denied; nothing makes a real review fail on demand.
//   20     SubjectAccessReview slower than the timeout: a real answer takes a millisecond and cannot
//          be held back on demand.
//   23, 24 front-proxy CA rotated / allowed names changed in extension-apiserver-authentication:
//          kube-apiserver owns that ConfigMap and merges the CAs and names of its own flags back
//          into it as soon as it is edited, so a CA or a name can be added but never taken away,
//          and "the old one is refused now" cannot be shown.
import t from 'tap';
import { join } from 'node:path';
import { startFakeApiServer, ApiStatusError } from '../helpers/fake-apiserver.js';
import { createTestPki, type Pair } from '../helpers/pki.js';
import { startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import { expectNoResponse, expectRefused as refused, frontProxyHeaders as frontProxy, get } from '../helpers/https.js';
import { eventually } from '../helpers/loop.js';
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

// The cluster's policy, as in security.test.ts: the HPA and "alice" may read external metrics.
let sarMode: 'policy' | 'error' = 'policy';
api.onSubjectAccessReview((spec) => {
  if (sarMode === 'error') throw new ApiStatusError(500, 'InternalError', 'etcd is on fire');
  const r = spec.resourceAttributes;
  return { allowed: (spec.user === HPA || spec.user === 'alice') && r?.group === 'external.metrics.k8s.io' && (r.verb === 'list' || r.verb === 'get') };
});
// A valid token, so that only the injected fault can refuse it.
api.onTokenReview((spec) => (spec.token === 'hpa-token' ? { authenticated: true, user: { username: HPA, groups: ['system:serviceaccounts'] } } : { authenticated: false, error: 'token is not valid' }));

const kubeconfig = await api.writeKubeconfig(root);
const delegated = [`--cert-dir=${pki.dir}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`, '--delegated-auth-timeout=1s'];
const adapter: TestAdapter = await startTestAdapter(delegated);
t.teardown(() => adapter.shutdown());

const GV = '/apis/external.metrics.k8s.io/v1beta1';
const METRIC = `${GV}/namespaces/default/demo-sine`;
const call = (client: Pair, path: string, headers: [string, string][] = []) => get({ port: adapter.port, path, ca: pki.ca.cert, client, headers });
/** 200 for the HPA through this front-proxy certificate (undefined while not yet, for eventually()). */
const servedVia = async (client: Pair) => ((await call(client, METRIC, frontProxy(HPA)).catch(() => undefined))?.status === 200 ? true : undefined);

t.test('16 TokenReview failing (kube-apiserver 503): 401, fail closed', async (t) => {
  const tokenAdapter = await startTestAdapter([...delegated, '--client-cert-mode=request']);
  t.teardown(() => tokenAdapter.shutdown());
  const clear = api.inject({ path: '/apis/authentication.k8s.io/v1/tokenreviews', status: 503 });
  t.teardown(clear);
  const res = await get({ port: tokenAdapter.port, path: METRIC, ca: pki.ca.cert, headers: [['Authorization', 'Bearer hpa-token']] });
  refused(t, res, 401, 'Unauthorized');
  t.ok(api.requests.some((r) => r.path === '/apis/authentication.k8s.io/v1/tokenreviews' && r.status === 503), 'the review was asked and failed');
});

t.test('19 SubjectAccessReview error: 500, fail closed, nothing served', async (t) => {
  sarMode = 'error';
  t.teardown(() => (sarMode = 'policy'));
  refused(t, await call(pki.frontProxyClient, `${GV}/namespaces/default/never-reviewed`, frontProxy('carol')), 500, 'InternalError', /authorization check failed/);
});

t.test('20 SubjectAccessReview slower than the timeout: refused at the deadline', async (t) => {
  const clear = api.inject({ path: '/apis/authorization.k8s.io/v1/subjectaccessreviews', delayMs: 3_000 });
  t.teardown(clear);
  const started = Date.now();
  refused(t, await call(pki.frontProxyClient, `${GV}/namespaces/default/slow-review`, frontProxy('dave')), 500, 'InternalError', /within 1000 ms/);
  t.ok(Date.now() - started < 2_500, `bounded by --delegated-auth-timeout (${Date.now() - started} ms)`);
});

t.test('23 front-proxy CA rotated in the ConfigMap: applied live, old front-proxy refused on new connections', async (t) => {
  const ca2 = await createCA({ commonName: 'front-proxy CA 2' });
  const client2 = await issueCertificate(ca2, { commonName: 'front-proxy-client', extendedUsages: ['clientAuth'] });
  const pair2: Pair = { cert: client2.certPem, key: client2.keyPem, certFile: '', keyFile: '' };
  api.put(authConfigMap(ca2.certPem, ['front-proxy-client']));
  t.ok(await eventually('the new front-proxy CA', () => servedVia(pair2)), 'a front-proxy certificate from the new CA is served');
  const e = await expectNoResponse({ port: adapter.port, path: METRIC, ca: pki.ca.cert, client: pki.frontProxyClient, headers: frontProxy(HPA) });
  t.equal(e.code, 'ECONNRESET', 'the old front-proxy certificate is refused');
  api.put(authConfigMap(pki.frontProxyCa.cert, ['front-proxy-client']));
  t.ok(await eventually('the original CA back', () => servedVia(pki.frontProxyClient)), 'and the original again once it is back');
});

t.test('24 allowed names changed in the ConfigMap: applied live', async (t) => {
  api.put(authConfigMap(pki.frontProxyCa.cert, ['intruder']));
  t.ok(await eventually('intruder allowed', () => servedVia(pki.frontProxyIntruder)), 'the newly allowed name is served');
  refused(t, await call(pki.frontProxyClient, METRIC, frontProxy(HPA)), 401, 'Unauthorized');
  api.put(authConfigMap(pki.frontProxyCa.cert, ['front-proxy-client']));
  t.ok(await eventually('front-proxy-client allowed again', () => servedVia(pki.frontProxyClient)), 'front-proxy-client again once it is back');
});

t.test('37 after a SubjectAccessReview failure the next request asks again and recovers', async (t) => {
  const path = `${GV}/namespaces/recovery/demo-sine`;
  sarMode = 'error';
  refused(t, await call(pki.frontProxyClient, path, frontProxy('alice')), 500, 'InternalError');
  sarMode = 'policy';
  t.equal((await call(pki.frontProxyClient, path, frontProxy('alice'))).status, 200, 'the failure was not cached');
});
