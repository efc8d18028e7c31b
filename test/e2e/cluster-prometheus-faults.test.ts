// boundServiceAccountToken renewal end to end, against the fake kube-apiserver: why the fake here,
// not the real control plane (cluster-prometheus.test.ts)? A real kube-apiserver refuses a
// TokenRequest for less than 10 minutes (422: "may not specify a duration less than 10 minutes"),
// so a token's renewal at 80 % of its lifetime would come 8 minutes in; the fake grants 4-second
// tokens. With them: while the value is read through the adapter again and again, the operator
// renews the token before it expires and rebuilds the scaler with it, and the authenticating proxy
// in front of a real Prometheus never refuses a request. (ServiceAccountTokens' own renewal,
// retries and expiry are in test/k8s/service-account-tokens-faults.test.ts.)
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCA, issueCertificate } from '../../src/certs/x509.js';
import { allowAuthenticated, startFakeApiServer } from '../helpers/fake-apiserver.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestAdapter } from '../helpers/adapter.js';
import { startTestOperator } from '../helpers/operator.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';
import { mustApplyToFake, putDeployment } from '../helpers/cluster.js';
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
target.set('orders_pending', 7, { namespace: 'shop' });
const prom = await startPrometheus(t, { target, tls: { cert: promCert.certPem, key: promCert.keyPem, ca: promCa.certPem } });

// kube-rbac-proxy's job in front of Prometheus: only tokens the API server issued for
// shop/metrics-reader with the right audience, and not yet expired, get through.
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

// --- the cluster: tokens granted for 4 s ---------------------------------------------------------
const LIFETIME_MS = 4000;
const api = await startFakeApiServer();
t.teardown(() => api.close());
for (const ns of ['keda', 'shop']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
putDeployment(api, 'shop', 'orders');
api.put({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'metrics-reader', namespace: 'shop' } });
// RBAC as the deploy component grants it: create on serviceaccounts/token for metrics-reader only.
api.setAuthorizer((a) => {
  if (a.resource === 'serviceaccounts' && a.subresource === 'token') return a.namespace === 'shop' && a.name === 'metrics-reader' && a.verb === 'create';
  return allowAuthenticated(a);
});
let tokenSeq = 0;
api.onTokenRequest(({ namespace, serviceAccount, spec }) => {
  const token = `sa-token-${++tokenSeq}`;
  const expires = Date.now() + LIFETIME_MS;
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

const valueOf = async (so: string) => {
  const path = `/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-prometheus?labelSelector=${encodeURIComponent(`scaledobject.keda.sh/name=${so}`)}`;
  const r = await kubectl([`--server=https://127.0.0.1:${adapter.port}`, `--certificate-authority=${pki.ca.certFile}`, `--client-certificate=${pki.admin.certFile}`, `--client-key=${pki.admin.keyFile}`, 'get', '--raw', path]);
  return r.code === 0 ? (JSON.parse(r.stdout) as { items: { value: string }[] }).items[0]?.value : undefined;
};

t.test('boundServiceAccountToken: a token renewed before it expires, under load, and never refused upstream', async (t) => {
  await mustApplyToFake(
    kc,
    root,
    {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'TriggerAuthentication',
      metadata: { name: 'as-reader', namespace: 'shop' },
      spec: { boundServiceAccountToken: [{ parameter: 'bearerToken', serviceAccountName: 'metrics-reader', audiences: [AUDIENCE] }] },
    },
    {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name: 'with-token', namespace: 'shop' },
      spec: {
        scaleTargetRef: { name: 'orders' },
        minReplicaCount: 1,
        triggers: [{ type: 'prometheus', metadata: { serverAddress: proxy.url, authModes: 'bearer', query: 'sum(orders_pending{namespace="shop"})', threshold: '10' }, authenticationRef: { name: 'as-reader' } }],
      },
    },
  );
  t.equal(await eventually('a value through the proxy', async () => ((await valueOf('with-token')) === '7' ? '7' : undefined), 20_000), '7');
  const first = proxy.requests.filter((r) => r.authorized).at(-1)!;
  t.match(first.headers.authorization, /^Bearer sa-token-\d+$/);
  const firstToken = first.headers.authorization!.slice('Bearer '.length);
  const firstExpiry = issued.get(firstToken)!.expires;
  await eventually(
    'a renewed token in use',
    async () => {
      await valueOf('with-token');
      const last = proxy.requests.filter((r) => r.authorized).at(-1)!;
      return last.headers.authorization !== first.headers.authorization ? last : undefined;
    },
    15_000,
  );
  const renewedAt = Date.now();
  t.ok(renewedAt < firstExpiry + 1000, 'the new token was in use by the time the old one expired');
  t.equal(proxy.requests.filter((r) => !r.authorized).length, 0, 'no request was ever refused: renewal happened before expiry');
  const requests = api.requests.filter((r) => r.path.endsWith('/serviceaccounts/metrics-reader/token'));
  t.ok(requests.length >= 2, 'tokens come from the TokenRequest API');
  t.match(JSON.parse(requests[0]!.body) as unknown, { spec: { audiences: [AUDIENCE] } }, 'with the audience asked for');
  for (const line of operator.logs) t.notMatch(JSON.stringify(line), /sa-token-\d/, 'a token never appears in a log line');
});
