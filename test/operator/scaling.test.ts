// The operator in a cluster, against the fake kube-apiserver: KEDA-style ScaledObjects applied
// with kubectl yield the HPA KEDA would write; edits and deletion follow; status conditions say
// what is going on; invalid and unsupported objects are reported, never silently ignored; the
// workload is scaled to and from zero; HPAs edited or deleted behind our back are restored.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startFakeApiServer, type KubeObject } from '../helpers/fake-apiserver.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestOperator, type TestOperator } from '../helpers/operator.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';
import { mustApply, putDeployment } from '../helpers/cluster.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));

// --- an upstream whose value the test sets ------------------------------------------------------
let value = 10;
let hits = 0;
const upstream: Server = createServer((_req, res) => {
  hits++;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ queue: { depth: value } }));
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/stats`;

// --- the cluster --------------------------------------------------------------------------------
const api = await startFakeApiServer();
t.teardown(() => api.close());
api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'keda' } });
api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
for (const name of ['web', 'worker', 'idle', 'taken']) putDeployment(api, 'shop', name, 2);
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
type Hpa = KubeObject & {
  metadata: { ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[]; labels?: Record<string, string> };
  spec: { minReplicas: number; maxReplicas: number; scaleTargetRef: unknown; metrics: { external: { metric: { name: string; selector: unknown }; target: Record<string, unknown> } }[]; behavior?: unknown };
};
type Condition = { type: string; status: string; reason: string; message: string };
type So = KubeObject & { status?: { conditions?: Condition[]; hpaName?: string; externalMetricNames?: string[]; health?: Record<string, { status: string; numberOfFailures: number }> } };

const hpa = (name: string) => api.get<Hpa>('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', name);
const so = (name: string) => api.get<So>('keda.sh/v1alpha1', 'ScaledObject', 'shop', name);
const condition = (name: string, type: string) => so(name)?.status?.conditions?.find((c) => c.type === type);
const metricsText = async () => (await fetch(`http://127.0.0.1:${operator.metricsPort}/metrics`)).text();
const replicas = (name: string) => (api.get<KubeObject & { spec: { replicas: number } }>('apps/v1', 'Deployment', 'shop', name)?.spec.replicas);

function scaledObject(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name, namespace: 'shop' }, spec };
}
const metricsApiTrigger = (extra: Record<string, unknown> = {}) => ({
  type: 'metrics-api',
  metadata: { url: upstreamUrl, valueLocation: 'queue.depth', targetValue: '5', activationTargetValue: '3' },
  ...extra,
});

const apply = (obj: Record<string, unknown>) => mustApply(kc, root, obj);

async function kubectlDelete(kind: string, name: string): Promise<void> {
  const r = await kubectl([`--kubeconfig=${kc}`, '-n', 'shop', 'delete', kind, name]);
  if (r.code !== 0) throw new Error(`kubectl delete failed: ${r.stderr}`);
}

// --- tests --------------------------------------------------------------------------------------

t.test('apply, edit, delete: the HPA follows the ScaledObject', async (t) => {
  await apply(
    scaledObject('web', {
      scaleTargetRef: { name: 'web' },
      pollingInterval: 1,
      minReplicaCount: 2,
      maxReplicaCount: 10,
      triggers: [metricsApiTrigger(), { type: 'metrics-api', metricType: 'Value', metadata: { url: upstreamUrl, valueLocation: 'queue.depth', targetValue: '0.5' } }],
    }),
  );
  const created = await eventually('the HPA is created', async () => hpa('keda-hpa-web'));
  const owner = so('web')!;
  t.strictSame(created.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' });
  t.equal(created.spec.minReplicas, 2);
  t.equal(created.spec.maxReplicas, 10);
  t.strictSame(
    created.spec.metrics.map((m) => m.external),
    [
      { metric: { name: 's0-metric-api-queue-depth', selector: { matchLabels: { 'scaledobject.keda.sh/name': 'web' } } }, target: { type: 'AverageValue', averageValue: '5' } },
      { metric: { name: 's1-metric-api-queue-depth', selector: { matchLabels: { 'scaledobject.keda.sh/name': 'web' } } }, target: { type: 'Value', value: '500m' } },
    ],
    'one External metric per trigger, KEDA names, the scaledobject selector',
  );
  t.match(created.metadata.ownerReferences, [{ kind: 'ScaledObject', name: 'web', uid: owner.metadata!.uid, controller: true }]);
  t.match(created.metadata.labels, { 'app.kubernetes.io/managed-by': 'keda-operator', 'scaledobject.keda.sh/name': 'web', 'app.kubernetes.io/part-of': 'web' });

  await eventually('Ready and Active', async () => (condition('web', 'Ready')?.status === 'True' && condition('web', 'Active')?.status === 'True' ? true : undefined));
  const status = so('web')!.status!;
  t.equal(status.hpaName, 'keda-hpa-web');
  t.strictSame(status.externalMetricNames, ['s0-metric-api-queue-depth', 's1-metric-api-queue-depth']);
  t.match(status.health, { 's0-metric-api-queue-depth': { status: 'Happy', numberOfFailures: 0 } });
  t.equal(condition('web', 'FullySupported')?.status, 'True');

  // Edit: new bounds, a behavior, a trigger fewer.
  await apply(
    scaledObject('web', {
      scaleTargetRef: { name: 'web' },
      pollingInterval: 1,
      minReplicaCount: 1,
      maxReplicaCount: 4,
      advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 30, policies: [{ type: 'Pods', value: 1, periodSeconds: 15 }] } } } },
      triggers: [metricsApiTrigger()],
    }),
  );
  const edited = await eventually('the HPA is updated', async () => {
    const h = hpa('keda-hpa-web');
    return h?.spec.maxReplicas === 4 ? h : undefined;
  });
  t.equal(edited.spec.minReplicas, 1);
  t.equal(edited.spec.metrics.length, 1);
  t.strictSame(edited.spec.behavior, { scaleDown: { stabilizationWindowSeconds: 30, policies: [{ type: 'Pods', value: 1, periodSeconds: 15 }] } }, 'behavior passed through');

  // Someone deletes the HPA: it comes back. Someone edits it: the edit is undone.
  api.delete('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-web');
  await eventually('the HPA is recreated', async () => hpa('keda-hpa-web'));
  api.modify<Hpa>('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-web', (h) => void (h.spec.maxReplicas = 99));
  await eventually('the edit is undone', async () => (hpa('keda-hpa-web')?.spec.maxReplicas === 4 ? true : undefined));

  // A custom HPA name: the old one goes, the new one comes.
  await apply(
    scaledObject('web', {
      scaleTargetRef: { name: 'web' },
      pollingInterval: 1,
      minReplicaCount: 1,
      maxReplicaCount: 4,
      advanced: { horizontalPodAutoscalerConfig: { name: 'web-autoscaler' } },
      triggers: [metricsApiTrigger()],
    }),
  );
  await eventually('renamed', async () => (hpa('web-autoscaler') && !hpa('keda-hpa-web') ? true : undefined));

  await kubectlDelete('scaledobject', 'web');
  await eventually('the HPA is removed with the ScaledObject', async () => (hpa('web-autoscaler') ? undefined : true));
});

t.test('scale to zero after the cooldown, and back when a trigger is active', async (t) => {
  value = 0;
  await apply(
    scaledObject('idle', {
      scaleTargetRef: { name: 'idle' },
      pollingInterval: 1,
      cooldownPeriod: 1,
      triggers: [metricsApiTrigger()],
    }),
  );
  const h = await eventually('HPA', async () => hpa('keda-hpa-idle'));
  t.equal(h.spec.minReplicas, 1, 'the HPA stops at 1; zero is the operator\'s');
  await eventually('scaled to zero', async () => (replicas('idle') === 0 ? true : undefined));
  t.equal(condition('idle', 'Active')?.status, 'False');
  value = 10;
  await eventually('scaled from zero', async () => (replicas('idle') === 1 ? true : undefined));
  await eventually('Active', async () => (condition('idle', 'Active')?.status === 'True' ? true : undefined));
  const events = api.list<KubeObject & { reason: string; involvedObject: { name: string } }>('v1', 'Event', 'shop').filter((e) => e.involvedObject.name === 'idle');
  t.ok(events.some((e) => e.reason === 'KEDAScaleTargetDeactivated'), 'an Event for scaling to zero');
  t.ok(events.some((e) => e.reason === 'KEDAScaleTargetActivated'), 'an Event for scaling from zero');
  const metrics = await metricsText();
  t.match(metrics, /keda_scale_target_replica_changes_total\{direction="to_zero",component="operator"\} [1-9]/);
  t.match(metrics, /keda_scale_target_replica_changes_total\{direction="from_zero",component="operator"\} [1-9]/);
  t.match(metrics, /keda_scaler_metrics_value\{namespace="shop",scaled_object="idle",trigger_index="0",scaler="metrics-api",metric="s0-metric-api-queue-depth",component="operator"\} 10/);
  t.match(metrics, /keda_scaler_active\{namespace="shop",scaled_object="idle",trigger_index="0",scaler="metrics-api",metric="s0-metric-api-queue-depth",component="operator"\} 1/);
  await kubectlDelete('scaledobject', 'idle');
});

t.test('a failing upstream never scales to zero and shows in health', async (t) => {
  value = 0;
  await apply(
    scaledObject('worker', {
      scaleTargetRef: { name: 'worker' },
      pollingInterval: 1,
      cooldownPeriod: 0,
      triggers: [{ type: 'metrics-api', metadata: { url: 'http://127.0.0.1:1/nothing', valueLocation: 'v', targetValue: '1' } }, metricsApiTrigger()],
    }),
  );
  await eventually('health shows the failing trigger', async () => (so('worker')?.status?.health?.['s0-metric-api-v']?.status === 'Failing' ? true : undefined));
  t.equal(so('worker')?.status?.health?.['s1-metric-api-queue-depth']?.status, 'Happy', 'the healthy trigger keeps its value');
  // Polls keep coming; with one trigger failing, zero is never chosen.
  const polledBefore = hits;
  await eventually('a few more polls', async () => (hits >= polledBefore + 3 ? true : undefined));
  t.equal(replicas('worker'), 2, 'not scaled to zero while a trigger fails');
  t.match(await metricsText(), /keda_scaler_errors_total\{namespace="shop",scaled_object="worker",trigger_index="0",scaler="metrics-api",component="operator"\} [1-9]/);
  await kubectlDelete('scaledobject', 'worker');
});

t.test('invalid, unsupported and conflicting objects are reported in status', async (t) => {
  // As if the webhook were absent (failurePolicy Ignore): min > max reaches the operator.
  api.put(scaledObject('bad-bounds', { scaleTargetRef: { name: 'web' }, minReplicaCount: 5, maxReplicaCount: 2, triggers: [metricsApiTrigger()] }) as KubeObject);
  await eventually('bad bounds reported', async () => (condition('bad-bounds', 'Ready')?.reason === 'ScaledObjectCheckFailed' ? true : undefined));
  t.match(condition('bad-bounds', 'Ready')?.message, /spec\.minReplicaCount \(5\) must not be greater than spec\.maxReplicaCount \(2\)/);
  t.notOk(hpa('keda-hpa-bad-bounds'), 'no HPA for an invalid object');

  api.put(scaledObject('unknown-type', { scaleTargetRef: { name: 'web' }, triggers: [{ type: 'kafka', metadata: { topic: 'x' } }] }) as KubeObject);
  await eventually('unknown trigger type reported', async () => (condition('unknown-type', 'Ready')?.reason === 'TriggerError' ? true : undefined));
  t.match(condition('unknown-type', 'Ready')?.message, /unsupported trigger type "kafka"/);
  t.notOk(hpa('keda-hpa-unknown-type'), 'no HPA without a single usable trigger');

  api.put(scaledObject('fallback', { scaleTargetRef: { name: 'web' }, fallback: { failureThreshold: 3, replicas: 2 }, triggers: [metricsApiTrigger()] }) as KubeObject);
  await eventually('unsupported field reported', async () => (condition('fallback', 'FullySupported')?.status === 'False' ? true : undefined));
  t.match(condition('fallback', 'FullySupported')?.message, /spec\.fallback is not supported/);
  t.ok(await eventually('still served', async () => hpa('keda-hpa-fallback')), 'an unsupported field does not stop the rest');

  api.put(scaledObject('missing-target', { scaleTargetRef: { name: 'nope' }, triggers: [metricsApiTrigger()] }) as KubeObject);
  await eventually('missing target reported', async () => (condition('missing-target', 'Ready')?.reason === 'ScaleTargetNotFound' ? true : undefined));

  api.put({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'keda-hpa-taken', namespace: 'shop' }, spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'taken' }, maxReplicas: 3 } });
  api.put(scaledObject('taken', { scaleTargetRef: { name: 'taken' }, triggers: [metricsApiTrigger()] }) as KubeObject);
  await eventually('foreign HPA reported', async () => (condition('taken', 'Ready')?.reason === 'HPAOwnedByOther' ? true : undefined));
  t.equal(hpa('keda-hpa-taken')?.spec.maxReplicas, 3, 'somebody else\'s HPA is left alone');

  // Fixing an object clears its condition.
  api.modify<KubeObject & { spec: { minReplicaCount: number } }>('keda.sh/v1alpha1', 'ScaledObject', 'shop', 'bad-bounds', (o) => void (o.spec.minReplicaCount = 1));
  await eventually('fixed', async () => (condition('bad-bounds', 'Ready')?.status === 'True' ? true : undefined));
  for (const name of ['bad-bounds', 'unknown-type', 'fallback', 'missing-target', 'taken']) api.delete('keda.sh/v1alpha1', 'ScaledObject', 'shop', name);
  await eventually('cleaned up', async () => (hpa('keda-hpa-bad-bounds') || hpa('keda-hpa-fallback') ? undefined : true));
  t.ok(hpa('keda-hpa-taken'), 'the foreign HPA survives the deletion of the ScaledObject that wanted its name');
});

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
