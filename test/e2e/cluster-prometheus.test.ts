// The whole path on a real control plane (envtest: etcd and kube-apiserver v1.28, RBAC on): a
// ScaledObject with a prometheus trigger applied with kubectl; the operator, running as its own
// ServiceAccount (keda/keda-operator) with deploy/'s RBAC, watches it, writes its HPA and reads a
// real Prometheus over HTTPS signed by a CA only --ca-dir knows; the value reaches kubectl through
// the adapter. Then target-namespace workload identity: a TriggerAuthentication with
// boundServiceAccountToken gets a token through the real TokenRequest API (the grant of
// deploy/components/service-account-tokens), which an authenticating proxy in front of Prometheus
// checks as kube-rbac-proxy does, with a real TokenReview; a service account the operator may not
// mint tokens for gives a condition naming the permission, and no token. Renewal before expiry
// needs tokens shorter than the real API server's 10-minute minimum: that part is in
// cluster-prometheus-faults.test.ts, on the fake API server.
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { createCA, issueCertificate } from '../../src/certs/x509.js';
import { startControlPlane, type AuditEvent } from '../helpers/envtest.js';
import { installDeploy, mustApply, tokenCreatorRbac } from '../helpers/keda-cluster.js';
import { Kube, deployment, namespace, type Obj } from '../helpers/kube.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestAdapter } from '../helpers/adapter.js';
import { startTestOperator } from '../helpers/operator.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';
import { startAuthProxy, startMetricsTarget, startPrometheus } from '../helpers/prometheus.js';

const OPERATOR = 'system:serviceaccount:keda:keda-operator';
const READER = 'system:serviceaccount:shop:metrics-reader';
const PROXY_USER = 'system:serviceaccount:monitoring:prometheus-proxy';
const AUDIENCE = 'https://prometheus.example';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));

// --- Prometheus over HTTPS, its CA in a --ca-dir folder only ------------------------------------
const promCa = await createCA({ commonName: 'prometheus private CA' });
const promCert = await issueCertificate(promCa, { commonName: 'prometheus', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedUsages: ['serverAuth'] });
const caDir = join(root, 'custom-ca');
await mkdir(caDir);
await writeFile(join(caDir, 'prometheus-ca.crt'), promCa.certPem);
const target = await startMetricsTarget(t);
target.set('orders_pending', 42, { namespace: 'shop' });
const prom = await startPrometheus(t, { target, tls: { cert: promCert.certPem, key: promCert.keyPem, ca: promCa.certPem } });

// --- the cluster --------------------------------------------------------------------------------
// No kube-controller-manager: nothing here needs a controller (the HPA is only looked at).
const cp = await startControlPlane(t, { controllerManager: false });
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms (etcd ${Math.round(cp.startup.etcdMs)}, kube-apiserver ${Math.round(cp.startup.apiServerMs)})`);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root);
await kube.create(namespace('shop'));
await kube.create(deployment('shop', 'orders'));
for (const sa of ['metrics-reader', 'not-granted']) await kube.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: 'shop' } });
// deploy/components/service-account-tokens, its example names replaced: shop/metrics-reader only.
await mustApply(cp.adminKubeconfig, root, ...(await tokenCreatorRbac(['metrics-reader'], ['shop'])));

// kube-rbac-proxy's job in front of Prometheus, with kube-rbac-proxy's RBAC (its own
// ServiceAccount bound to system:auth-delegator): a real TokenReview for the audience, and only
// shop/metrics-reader gets through.
await kube.create(namespace('monitoring'));
await kube.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'prometheus-proxy', namespace: 'monitoring' } });
await kube.create({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRoleBinding',
  metadata: { name: 'prometheus-proxy-auth-delegator' },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
  subjects: [{ kind: 'ServiceAccount', name: 'prometheus-proxy', namespace: 'monitoring' }],
});
const reviewer = new Kube(await cp.serviceAccountKubeconfig('monitoring', 'prometheus-proxy'));
const proxy = await startAuthProxy(t, {
  upstream: prom,
  cert: promCert.certPem,
  key: promCert.keyPem,
  authorize: async (req) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined) return false;
    const review = await reviewer.request<{ status: { authenticated?: boolean; user?: { username: string }; audiences?: string[] } }>(
      'POST',
      '/apis/authentication.k8s.io/v1/tokenreviews',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [AUDIENCE] } },
    );
    const s = review!.status;
    return s.authenticated === true && s.user?.username === READER && (s.audiences ?? []).includes(AUDIENCE);
  },
});

// --- operator and adapter -----------------------------------------------------------------------
const operator = await startTestOperator([
  `--kubeconfig=${await cp.serviceAccountKubeconfig('keda', 'keda-operator')}`,
  '--namespace=keda',
  `--cert-dir=${pki.dir}`,
  `--ca-dir=${caDir}`,
  '--enable-cert-rotation=false',
  '--enable-apiservice-patching=false',
  '--enable-webhook-patching=false',
  '--leader-elect=false',
  '--webhook-port=0',
  '--enable-service-account-token-requests=true',
]);
t.teardown(() => operator.shutdown());
const adapter = await startTestAdapter([
  `--cert-dir=${pki.dir}`,
  `--client-ca-file=${pki.ca.certFile}`,
  '--metrics-source=operator',
  `--metrics-service-address=localhost:${operator.grpcPort}`,
  '--metrics-service-timeout=5s',
]);
t.teardown(() => adapter.shutdown());

// --- helpers ------------------------------------------------------------------------------------
const apply = (...objs: Obj[]) => mustApply(cp.adminKubeconfig, root, ...objs);
const metricVia = async (so: string, metric: string) => {
  const path = `/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/${metric}?labelSelector=${encodeURIComponent(`scaledobject.keda.sh/name=${so}`)}`;
  return kubectl([`--server=https://127.0.0.1:${adapter.port}`, `--certificate-authority=${pki.ca.certFile}`, `--client-certificate=${pki.admin.certFile}`, `--client-key=${pki.admin.keyFile}`, 'get', '--raw', path]);
};
const valueOf = async (so: string) => {
  const r = await metricVia(so, 's0-prometheus');
  return r.code === 0 ? (JSON.parse(r.stdout) as { items: { value: string }[] }).items[0]?.value : undefined;
};
const condition = (name: string, type: string) => kube.condition('keda.sh/v1alpha1', 'ScaledObject', 'shop', name, type);
const scaledObject = (name: string, metadata: Record<string, string>, authName?: string): Obj => ({
  apiVersion: 'keda.sh/v1alpha1',
  kind: 'ScaledObject',
  metadata: { name, namespace: 'shop' },
  spec: {
    scaleTargetRef: { name: 'orders' },
    minReplicaCount: 1,
    triggers: [{ type: 'prometheus', metadata: { query: 'sum(orders_pending{namespace="shop"})', threshold: '10', ...metadata }, ...(authName ? { authenticationRef: { name: authName } } : {}) }],
  },
});
const triggerAuth = (name: string, sa: string, audiences?: string[]): Obj => ({
  apiVersion: 'keda.sh/v1alpha1',
  kind: 'TriggerAuthentication',
  metadata: { name, namespace: 'shop' },
  spec: { boundServiceAccountToken: [{ parameter: 'bearerToken', serviceAccountName: sa, ...(audiences ? { audiences } : {}) }] },
});
/** Where kube-apiserver's audit log is now, to look at what came after. */
const auditMark = () => cp.auditEvents().length;
const auditSince = (mark: number, resource: string, subresource?: string): AuditEvent[] =>
  cp
    .auditEvents()
    .slice(mark)
    .filter((e) => e.verb === 'create' && e.objectRef?.resource === resource && e.objectRef.subresource === subresource);
const tokenRequestsSince = (mark: number, sa: string) => auditSince(mark, 'serviceaccounts', 'token').filter((e) => e.objectRef?.namespace === 'shop' && e.objectRef.name === sa);
/** A TokenRequest as admin (not the operator): tokens to try the proxy with. */
const mintAsAdmin = async (sa: string, audiences?: string[]) =>
  (await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/shop/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { ...(audiences ? { audiences } : {}) } }))!.status.token;
/** GET through the proxy with a bearer token (or none): the HTTP status. */
const throughProxy = (token?: string) =>
  new Promise<number>((resolve, reject) => {
    const req = request(`${proxy.url}/api/v1/query?query=up`, { ca: promCa.certPem, servername: 'localhost', headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });

// --- tests --------------------------------------------------------------------------------------

t.test('prometheus over HTTPS with a custom CA: the value reaches kubectl through the adapter', async (t) => {
  await apply(scaledObject('orders', { serverAddress: prom.url }));
  const hpa = await eventually('the HPA', () => kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-orders'));
  t.equal((hpa.spec!.metrics as { external: { metric: { name: string } } }[])[0]?.external.metric.name, 's0-prometheus');
  // The query time is whole seconds (as KEDA sends it): just after the first scrape it can fall
  // before the first sample, and an empty result reads 0 (ignoreNullValues). Hence "eventually".
  t.equal(await eventually('the value', async () => ((await valueOf('orders')) === '42' ? '42' : undefined), 20_000), '42');
  target.set('orders_pending', 7, { namespace: 'shop' });
  t.equal(await eventually('the new value after a scrape', async () => ((await valueOf('orders')) === '7' ? '7' : undefined), 20_000), '7');
  await eventually('Ready', async () => ((await condition('orders', 'Ready'))?.status === 'True' ? true : undefined));
});

t.test('the authenticating proxy lets through only shop/metrics-reader tokens for its audience, by a real TokenReview', async (t) => {
  const before = proxy.requests.length;
  t.equal(await throughProxy(await mintAsAdmin('metrics-reader', [AUDIENCE])), 200, 'shop/metrics-reader, for the audience');
  t.equal(await throughProxy(await mintAsAdmin('metrics-reader')), 401, 'shop/metrics-reader, for the API server\'s audience');
  t.equal(await throughProxy(await mintAsAdmin('not-granted', [AUDIENCE])), 401, 'another service account');
  t.equal(await throughProxy('not-a-token'), 401, 'not a token');
  t.equal(await throughProxy(), 401, 'no token');
  t.same(
    proxy.requests.slice(before).map((r) => r.authorized),
    [true, false, false, false, false],
  );
});

t.test('boundServiceAccountToken: a TokenRequest token for the workload\'s service account, accepted upstream by a real TokenReview', async (t) => {
  const mark = auditMark();
  const proxyMark = proxy.requests.length;
  await apply(triggerAuth('as-reader', 'metrics-reader', [AUDIENCE]), scaledObject('with-token', { serverAddress: proxy.url, authModes: 'bearer' }, 'as-reader'));
  t.equal(await eventually('a value through the proxy', async () => ((await valueOf('with-token')) === '7' ? '7' : undefined), 20_000), '7');
  await eventually('Ready', async () => ((await condition('with-token', 'Ready'))?.status === 'True' ? true : undefined));

  // The operator asked kube-apiserver, as itself, for the audience, with the default lifetime.
  const requests = tokenRequestsSince(mark, 'metrics-reader');
  t.equal(requests.length, 1, 'one TokenRequest');
  t.equal(requests[0]!.user.username, OPERATOR, 'as the operator\'s ServiceAccount');
  t.equal(requests[0]!.responseStatus?.code, 201);
  t.match(requests[0]!.requestObject, { spec: { audiences: [AUDIENCE], expirationSeconds: 3600 } }, 'with the audience asked for, for --service-account-token-expiration');
  const token = requests[0]!.responseObject?.status?.token as string;
  t.match(token, /^eyJ/, 'a JWT from the API server');

  // That token is what the scaler sent, and the proxy's TokenReview said who it is.
  const sent = proxy.requests.slice(proxyMark);
  t.ok(sent.length > 0);
  t.ok(sent.every((r) => r.authorized && r.headers.authorization === `Bearer ${token}`), 'every request carried the issued token and got through');
  const reviews = auditSince(mark, 'tokenreviews').filter((e) => e.user.username === PROXY_USER);
  t.ok(reviews.length >= 1, 'the proxy asked kube-apiserver');
  t.match(reviews.at(-1)!.responseObject?.status, { authenticated: true, user: { username: READER }, audiences: [AUDIENCE] });

  // More reads: the cached token, no new TokenRequest.
  for (let i = 0; i < 3; i++) t.equal(await valueOf('with-token'), '7');
  t.equal(tokenRequestsSince(mark, 'metrics-reader').length, 1, 'still one TokenRequest: the token is cached');
  t.equal(proxy.requests.slice(proxyMark).filter((r) => !r.authorized).length, 0, 'no request was ever refused');
  t.notOk(
    operator.logs.some((line) => JSON.stringify(line).includes(token)),
    'the token never appears in a log line',
  );
});

t.test('a service account the operator may not mint tokens for: a condition naming the permission, and no token', async (t) => {
  const mark = auditMark();
  const proxyMark = proxy.requests.length;
  await apply(triggerAuth('as-other', 'not-granted'), scaledObject('no-rbac', { serverAddress: proxy.url, authModes: 'bearer' }, 'as-other'));
  const ready = await eventually('Ready False', async () => {
    const c = await condition('no-rbac', 'Ready');
    return c?.status === 'False' ? c : undefined;
  });
  t.equal(ready.reason, 'TriggerError');
  t.match(ready.message, /create.*serviceaccounts\/token.*not-granted/);
  t.match(ready.message, `the operator's user "${OPERATOR}" may not request a token for service account shop/not-granted`, 'the user, as the real RBAC denial names it');
  const refused = tokenRequestsSince(mark, 'not-granted');
  t.ok(refused.length >= 1, 'the operator asked');
  t.same([...new Set(refused.map((e) => `${e.user.username} ${e.responseStatus?.code}`))], [`${OPERATOR} 403`], 'kube-apiserver refused every one');
  t.notOk(
    refused.some((e) => e.responseObject?.status?.token),
    'no token was issued',
  );
  const r = await metricVia('no-rbac', 's0-prometheus');
  t.not(r.code, 0, 'the metric is refused');
  // (with-token's scaler may still poll through the proxy meanwhile, with its own valid token.)
  t.ok(proxy.requests.slice(proxyMark).every((req) => req.authorized), 'no request without a valid token reached the proxy');
});
