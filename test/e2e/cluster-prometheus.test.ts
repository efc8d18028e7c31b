// The whole path in a cluster, with real parts wherever they run here: a ScaledObject with a
// prometheus trigger applied with kubectl to the (fake) API server; the operator watches it,
// writes its HPA and reads a real Prometheus over HTTPS signed by a CA only --ca-dir knows; the
// value reaches kubectl through the adapter. Then target-namespace workload identity: a
// TriggerAuthentication with boundServiceAccountToken gets a token through the TokenRequest API
// that an authenticating proxy in front of Prometheus accepts, renewed before it expires; a
// service account the operator may not mint tokens for gives a condition naming the permission.
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCA, issueCertificate } from '../../src/certs/x509.js';
import { allowAuthenticated, startFakeApiServer, type KubeObject } from '../helpers/fake-apiserver.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestAdapter } from '../helpers/adapter.js';
import { startTestOperator } from '../helpers/operator.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';
import { mustApply, putDeployment } from '../helpers/cluster.js';
import { startAuthProxy, startMetricsTarget, startPrometheus } from '../helpers/prometheus.js';

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

// kube-rbac-proxy's job in front of Prometheus: only tokens the API server issued for
// shop/metrics-reader with the right audience get through.
const AUDIENCE = 'https://prometheus.example';
const issued = new Map<string, { sa: string; audiences: string[]; expires: number }>();
const proxy = await startAuthProxy(t, {
  upstream: prom,
  cert: promCert.certPem,
  key: promCert.keyPem,
  authorize: (req) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const known = token === undefined ? undefined : issued.get(token);
    return known !== undefined && known.sa === 'shop/metrics-reader' && known.audiences.includes(AUDIENCE) && known.expires > Date.now();
  },
});

// --- the cluster --------------------------------------------------------------------------------
const api = await startFakeApiServer();
t.teardown(() => api.close());
for (const ns of ['keda', 'shop']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
putDeployment(api, 'shop', 'orders');
for (const sa of ['metrics-reader', 'not-granted']) api.put({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: 'shop' } });
// RBAC as the deploy component grants it: create on serviceaccounts/token for metrics-reader only.
api.setAuthorizer((a) => {
  if (a.resource === 'serviceaccounts' && a.subresource === 'token') return a.namespace === 'shop' && a.name === 'metrics-reader' && a.verb === 'create';
  return allowAuthenticated(a);
});
let tokenSeq = 0;
let lifetimeMs = 3_600_000;
api.onTokenRequest(({ namespace, serviceAccount, spec }) => {
  const token = `sa-token-${++tokenSeq}`;
  const expires = Date.now() + lifetimeMs;
  issued.set(token, { sa: `${namespace}/${serviceAccount.metadata!.name!}`, audiences: spec.audiences ?? [], expires });
  return { token, expirationTimestamp: new Date(expires) };
});
const kc = await api.writeKubeconfig(join(root, 'kc'));

const operator = await startTestOperator([
  `--kubeconfig=${kc}`,
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

const apply = (...objs: Record<string, unknown>[]) => mustApply(kc, root, ...objs);
const metricVia = async (so: string, metric: string) => {
  const path = `/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/${metric}?labelSelector=${encodeURIComponent(`scaledobject.keda.sh/name=${so}`)}`;
  return kubectl([`--server=https://127.0.0.1:${adapter.port}`, `--certificate-authority=${pki.ca.certFile}`, `--client-certificate=${pki.admin.certFile}`, `--client-key=${pki.admin.keyFile}`, 'get', '--raw', path]);
};
const valueOf = async (so: string) => {
  const r = await metricVia(so, 's0-prometheus');
  return r.code === 0 ? (JSON.parse(r.stdout) as { items: { value: string }[] }).items[0]?.value : undefined;
};
type Condition = { type: string; status: string; reason: string; message: string };
const condition = (name: string, type: string) => api.get<KubeObject & { status?: { conditions?: Condition[] } }>('keda.sh/v1alpha1', 'ScaledObject', 'shop', name)?.status?.conditions?.find((c) => c.type === type);
const scaledObject = (name: string, metadata: Record<string, string>, authName?: string) => ({
  apiVersion: 'keda.sh/v1alpha1',
  kind: 'ScaledObject',
  metadata: { name, namespace: 'shop' },
  spec: {
    scaleTargetRef: { name: 'orders' },
    minReplicaCount: 1,
    triggers: [{ type: 'prometheus', metadata: { query: 'sum(orders_pending{namespace="shop"})', threshold: '10', ...metadata }, ...(authName ? { authenticationRef: { name: authName } } : {}) }],
  },
});

t.test('prometheus over HTTPS with a custom CA: the value reaches kubectl through the adapter', async (t) => {
  await apply(scaledObject('orders', { serverAddress: prom.url }));
  const hpa = await eventually('the HPA', async () => api.get<KubeObject & { spec: { metrics: { external: { metric: { name: string } } }[] } }>('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-orders'));
  t.equal(hpa.spec.metrics[0]?.external.metric.name, 's0-prometheus');
  // The query time is whole seconds (as KEDA sends it): just after the first scrape it can fall
  // before the first sample, and an empty result reads 0 (ignoreNullValues). Hence "eventually".
  t.equal(await eventually('the value', async () => ((await valueOf('orders')) === '42' ? '42' : undefined), 20_000), '42');
  target.set('orders_pending', 7, { namespace: 'shop' });
  t.equal(await eventually('the new value after a scrape', async () => ((await valueOf('orders')) === '7' ? '7' : undefined), 20_000), '7');
  await eventually('Ready', async () => (condition('orders', 'Ready')?.status === 'True' ? true : undefined));
});

t.test('boundServiceAccountToken: a TokenRequest token for the workload\'s service account, accepted upstream and renewed', async (t) => {
  const auth = (name: string, sa: string) => ({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'TriggerAuthentication',
    metadata: { name, namespace: 'shop' },
    spec: { boundServiceAccountToken: [{ parameter: 'bearerToken', serviceAccountName: sa, audiences: [AUDIENCE] }] },
  });
  // Tokens the API server grants for 4 s: renewed at 80%, before they expire.
  lifetimeMs = 4000;
  await apply(auth('as-reader', 'metrics-reader'), scaledObject('with-token', { serverAddress: proxy.url, authModes: 'bearer' }, 'as-reader'));
  t.equal(await eventually('a value through the proxy', async () => ((await valueOf('with-token')) === '7' ? '7' : undefined), 20_000), '7');
  const first = proxy.requests.filter((r) => r.authorized).at(-1)!;
  t.match(first.headers.authorization, /^Bearer sa-token-\d+$/);
  const firstToken = first.headers.authorization!.slice('Bearer '.length);
  const firstExpiry = issued.get(firstToken)!.expires;
  await eventually('a renewed token in use', async () => {
    await valueOf('with-token');
    const last = proxy.requests.filter((r) => r.authorized).at(-1)!;
    return last.headers.authorization !== first.headers.authorization ? last : undefined;
  }, 15_000);
  const renewedAt = Date.now();
  t.ok(renewedAt < firstExpiry + 1000, 'the new token was in use by the time the old one expired');
  t.equal(proxy.requests.filter((r) => !r.authorized).length, 0, 'no request was ever refused: renewal happened before expiry');
  const requests = api.requests.filter((r) => r.path.endsWith('/serviceaccounts/metrics-reader/token'));
  t.ok(requests.length >= 2, 'tokens come from the TokenRequest API');
  t.match(JSON.parse(requests[0]!.body) as unknown, { spec: { audiences: [AUDIENCE] } }, 'with the audience asked for');
  for (const line of operator.logs) t.notMatch(JSON.stringify(line), /sa-token-\d/, 'a token never appears in a log line');
  lifetimeMs = 3_600_000;
});

t.test('a service account the operator may not mint tokens for: a condition naming the permission, and no token', async (t) => {
  const before = tokenSeq;
  await apply(
    {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'TriggerAuthentication',
      metadata: { name: 'as-other', namespace: 'shop' },
      spec: { boundServiceAccountToken: [{ parameter: 'bearerToken', serviceAccountName: 'not-granted' }] },
    },
    scaledObject('no-rbac', { serverAddress: proxy.url, authModes: 'bearer' }, 'as-other'),
  );
  const ready = await eventually('Ready False', async () => (condition('no-rbac', 'Ready')?.status === 'False' ? condition('no-rbac', 'Ready') : undefined));
  t.match(ready.message, /create.*serviceaccounts\/token.*not-granted/);
  t.equal(tokenSeq, before, 'no token was issued');
  const r = await metricVia('no-rbac', 's0-prometheus');
  t.not(r.code, 0, 'the metric is refused');
});
