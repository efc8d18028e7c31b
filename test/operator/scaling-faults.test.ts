// The operator's watches under faults, against the fake kube-apiserver: why the fake here, not
// the real control plane (scaling.test.ts)? A real kube-apiserver cannot be made, on demand, to
// refuse a list or a watch with 503, to drop an open watch mid-stream and to compact its watch
// history at a chosen moment (so that the resumed watch gets 410 Gone and must list again). The
// restart of a real kube-apiserver is in convergence.test.ts.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startFakeApiServer, type KubeObject } from '../helpers/fake-apiserver.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestOperator, type TestOperator } from '../helpers/operator.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';
import { mustApplyToFake, putDeployment } from '../helpers/cluster.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));

// --- an upstream whose value the test sets ------------------------------------------------------
const upstream: Server = createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ queue: { depth: 10 } }));
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/stats`;

// --- the cluster --------------------------------------------------------------------------------
const api = await startFakeApiServer();
t.teardown(() => api.close());
api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'keda' } });
api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
putDeployment(api, 'shop', 'web', 2);
const kc = await api.writeKubeconfig(join(root, 'kc'));

const operator: TestOperator = await startTestOperator([
  `--kubeconfig=${kc}`,
  '--namespace=keda',
  `--cert-dir=${pki.dir}`,
  '--enable-cert-rotation=false',
  '--enable-apiservice-patching=false',
  '--enable-webhook-patching=false',
  '--leader-election-lease-duration=2s',
  '--leader-election-renew-deadline=1500ms',
  '--leader-election-retry-period=200ms',
  '--webhook-port=0',
]);
t.teardown(() => operator.shutdown());

// --- helpers ------------------------------------------------------------------------------------
type Hpa = KubeObject & { spec: { maxReplicas: number } };
const hpa = (name: string) => api.get<Hpa>('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', name);

function scaledObject(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name, namespace: 'shop' }, spec };
}
const metricsApiTrigger = (extra: Record<string, unknown> = {}) => ({
  type: 'metrics-api',
  metadata: { url: upstreamUrl, valueLocation: 'queue.depth', targetValue: '5', activationTargetValue: '3' },
  ...extra,
});

const apply = (obj: Record<string, unknown>) => mustApplyToFake(kc, root, obj);

async function kubectlDelete(kind: string, name: string): Promise<void> {
  const r = await kubectl([`--kubeconfig=${kc}`, '-n', 'shop', 'delete', kind, name]);
  if (r.code !== 0) throw new Error(`kubectl delete failed: ${r.stderr}`);
}

// --- tests --------------------------------------------------------------------------------------

t.test('watch interruptions: an edit made while the watch is down and refused still reaches the HPA', async (t) => {
  await apply(scaledObject('resilient', { scaleTargetRef: { name: 'web' }, pollingInterval: 3600, minReplicaCount: 1, maxReplicaCount: 10, triggers: [metricsApiTrigger()] }));
  await eventually('HPA', async () => (hpa('keda-hpa-resilient')?.spec.maxReplicas === 10 ? true : undefined));
  // The API server refuses the ScaledObject list and watch a few times, drops the open watch,
  // and compacts its history (a resumed watch gets 410 Gone and must list again).
  const clear = api.inject({ path: /\/scaledobjects$/, status: 503, times: 3 });
  t.teardown(clear);
  api.closeWatches((w) => w.resource === 'scaledobjects', 'destroy');
  api.modify<KubeObject & { spec: { maxReplicaCount: number } }>('keda.sh/v1alpha1', 'ScaledObject', 'shop', 'resilient', (o) => void (o.spec.maxReplicaCount = 7));
  api.compact();
  await eventually('the edit arrives after the watch recovers', async () => (hpa('keda-hpa-resilient')?.spec.maxReplicas === 7 ? true : undefined), 30_000);
  t.ok(api.requests.some((r) => r.path.endsWith('/scaledobjects') && r.status === 503), 'the refusals happened');
  t.ok(operator.logs.some((l) => l.informer === 'scaledobjects' && l.msg === 'watch interrupted, restarting'), 'and were logged');
  await kubectlDelete('scaledobject', 'resilient');
});

t.test('an HPA changed while its watch is down: the update from the stale copy gets 409, the HPA is read and updated', async (t) => {
  await apply(scaledObject('stale', { scaleTargetRef: { name: 'web' }, pollingInterval: 3600, minReplicaCount: 1, maxReplicaCount: 10, triggers: [metricsApiTrigger()] }));
  await eventually('HPA', async () => (hpa('keda-hpa-stale')?.spec.maxReplicas === 10 ? true : undefined));
  const blind = api.inject({ method: 'GET', path: /\/horizontalpodautoscalers$/, status: 503 });
  t.teardown(blind);
  api.closeWatches((w) => w.resource === 'horizontalpodautoscalers', 'destroy');
  api.modify<Hpa>('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-stale', (h) => void ((h.metadata ??= {}).annotations = { 'someone/else': 'was here' }));
  const from = api.requests.length;
  api.modify<KubeObject & { spec: { maxReplicaCount: number } }>('keda.sh/v1alpha1', 'ScaledObject', 'shop', 'stale', (o) => void (o.spec.maxReplicaCount = 7));
  await eventually('the edit reaches the HPA', async () => (hpa('keda-hpa-stale')?.spec.maxReplicas === 7 ? true : undefined));
  const hpaCalls = api.requests.slice(from).filter((r) => r.path === '/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/keda-hpa-stale');
  t.same(hpaCalls.map((r) => `${r.method} ${r.status}`), ['PUT 409', 'GET 200', 'PUT 200']);
  blind();
  await kubectlDelete('scaledobject', 'stale');
});
