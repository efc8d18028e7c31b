// deploy/overlays/rotation installed on a real control plane (envtest v1.28) and working end to
// end, with the components running here in place of their Pods (there is no kubelet): every
// manifest is accepted by the real API server (CRD schemas, RBAC, the webhook configuration with
// its CEL matchConditions, PodDisruptionBudgets, Deployments); the operator, as its own
// ServiceAccount, generates the certificates into Secret keda/kedaorg-certs and injects the
// caBundles; both components read their certificates from that Secret as the kubelet would project
// it; the real aggregator finds the APIService Available and proxies to the adapter with its
// front-proxy certificate; kubectl reads our metric through kube-apiserver; and the real HPA
// controller scales a Deployment from it.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/envtest.js';
import { componentKubeconfigs, kubectlApply, renderDeploy, routeWebhooksToLocal, startAggregatedAdapter } from '../helpers/keda-cluster.js';
import { Kube, deployment, namespace, replicasOf, scaledObject } from '../helpers/kube.js';
import { mountSecret } from '../helpers/kubelet.js';
import { freePort } from '../helpers/adapter.js';
import { startTestOperator } from '../helpers/operator.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';

const root = t.testdir();
const upstream: Server = createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ queue: { depth: 45 } }));
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/stats`;

const cp = await startControlPlane(t);
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms`);
const kube = new Kube(cp.adminKubeconfig);

t.test('every manifest of deploy/overlays/rotation is accepted by the real API server', async (t) => {
  const objs = await renderDeploy('overlays/rotation');
  // As `kubectl apply -k` in two passes: the namespace and the CRDs must exist before what uses them.
  const first = objs.filter((o) => o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition');
  const r1 = await kubectlApply(cp.adminKubeconfig, root, first);
  t.equal(r1.code, 0, r1.stderr);
  const established = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, 'wait', '--for=condition=Established', '--timeout=30s', 'crd', '--all']);
  t.equal(established.code, 0, established.stderr);
  const r2 = await kubectlApply(cp.adminKubeconfig, root, objs.filter((o) => !first.includes(o)));
  t.equal(r2.code, 0, r2.stderr);
  t.equal(r2.stderr.trim(), '', 'no warning from the API server');
  for (const o of objs) t.ok(await kube.get(o.apiVersion!, o.kind!, o.metadata!.namespace, o.metadata!.name!), `${o.kind} ${o.metadata!.namespace ? `${o.metadata!.namespace}/` : ''}${o.metadata!.name} stored`);
  // The Deployments are real: their ReplicaSets and Pods exist (Pending, no kubelet here).
  await eventually('the operator Pods created by the Deployment controller', async () => ((await kube.list('v1', 'Pod', 'keda', 'app=keda-operator')).length > 0 ? true : undefined), 30_000);
});

t.test('the operator and the adapter, as their ServiceAccounts, on the Secret the operator writes', async (t) => {
  const kc = await componentKubeconfigs(cp);
  // The kubelet's part: Secret keda/kedaorg-certs projected into each component's /certs.
  const operatorCerts = mountSecret(kube, 'keda', 'kedaorg-certs', join(root, 'operator-certs'));
  const adapterCerts = mountSecret(kube, 'keda', 'kedaorg-certs', join(root, 'adapter-certs'));
  t.teardown(() => {
    operatorCerts.stop();
    adapterCerts.stop();
  });
  const webhookPort = await freePort();
  await routeWebhooksToLocal(kube, webhookPort);
  const operator = await startTestOperator([
    `--kubeconfig=${kc.operator}`,
    '--namespace=keda',
    `--cert-dir=${operatorCerts.dir}`,
    '--enable-cert-rotation=true',
    // The adapter dials it as localhost here (keda-operator.keda.svc in a cluster).
    '--extra-san=localhost',
    `--webhook-port=${webhookPort}`,
  ]);
  t.teardown(() => operator.shutdown());
  const secret = await kube.get('v1', 'Secret', 'keda', 'kedaorg-certs');
  t.strictSame(Object.keys(secret?.data ?? {}).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key'], 'the operator created the certificate Secret');
  await eventually('the adapter\'s projection', async () => (adapterCerts.syncs > 0 ? true : undefined));

  const { adapter, apiService: available } = await startAggregatedAdapter(kube, { certDir: adapterCerts.dir, operatorPort: operator.grpcPort, adapterKubeconfig: kc.adapter });
  t.teardown(() => adapter.shutdown());
  t.equal(available.spec!.caBundle, secret!.data!['ca.crt'], 'trusted through the caBundle the operator injected (the Secret\'s CA)');
  t.notOk(available.spec!.insecureSkipTLSVerify, 'no insecureSkipTLSVerify');
  const vwc = await kube.get('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission');
  t.ok((vwc!.webhooks as { clientConfig: { caBundle?: string } }[]).every((w) => w.clientConfig.caBundle === secret!.data!['ca.crt']), 'and into every webhook');

  // A workload and its ScaledObject, applied as a user would; the webhook (through the real
  // kube-apiserver) admits it.
  await kube.create(namespace('shop'));
  await kube.create(deployment('shop', 'orders', 1));
  const applied = await kubectlApply(cp.adminKubeconfig, root, scaledObject('shop', 'orders', { scaleTargetRef: { name: 'orders' }, minReplicaCount: 1, maxReplicaCount: 10, triggers: [{ type: 'metrics-api', metadata: { url: upstreamUrl, valueLocation: 'queue.depth', targetValue: '10' } }] }));
  t.equal(applied.code, 0, applied.stderr);

  const path = `/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-metric-api-queue-depth?labelSelector=${encodeURIComponent('scaledobject.keda.sh/name=orders')}`;
  const raw = await eventually('the metric through kube-apiserver', async () => {
    const r = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, 'get', '--raw', path]);
    return r.code === 0 ? r : undefined;
  }, 20_000);
  t.match(JSON.parse(raw.stdout), { kind: 'ExternalMetricValueList', apiVersion: 'external.metrics.k8s.io/v1beta1', items: [{ metricName: 's0-metric-api-queue-depth', value: '45' }] });
  const nobody = await kubectl([`--kubeconfig=${await cp.kubeconfigFor('nobody')}`, 'get', '--raw', path]);
  t.not(nobody.code, 0, 'a user without RBAC is refused');
  t.match(nobody.stderr, /forbidden/i);

  // ceil(45 / 10) = 5, by the real HPA controller from our metric.
  await eventually('the HPA controller scales the Deployment to 5', async () => ((await replicasOf(kube, 'shop', 'orders')) === 5 ? true : undefined), 45_000);
  const hpa = await kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-orders');
  t.match(hpa!.status, { currentMetrics: [{ type: 'External', external: { metric: { name: 's0-metric-api-queue-depth' }, current: { averageValue: /^\d/ } } }] }, 'the HPA status shows our metric');
});
