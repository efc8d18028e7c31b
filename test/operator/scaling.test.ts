// The operator in a real cluster (envtest: kube-apiserver, etcd and kube-controller-manager
// v1.28), running as its own ServiceAccount with deploy/'s RBAC: KEDA-style ScaledObjects applied
// with kubectl yield the HPA KEDA would write; edits and deletion follow (foreground deletion
// through the real garbage collector); status conditions say what is going on; invalid and
// unsupported objects are reported; the workload is scaled to and from zero through its scale
// subresource; HPAs edited or deleted behind our back are restored; and a steady state writes
// nothing at all. (Faults a real server cannot show on demand are in scaling-faults.test.ts.)
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/envtest.js';
import { componentKubeconfigs, installDeploy, mustApply } from '../helpers/keda-cluster.js';
import { Kube, deployment, namespace, replicasOf, scaledObject, type Obj } from '../helpers/kube.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestOperator, type TestOperator } from '../helpers/operator.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';

// A minute of steady state is part of this file: more than the suite's default per-file limit.
t.setTimeout(240_000);
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
const cp = await startControlPlane(t);
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms (etcd ${Math.round(cp.startup.etcdMs)}, kube-apiserver ${Math.round(cp.startup.apiServerMs)}, kube-controller-manager ${Math.round(cp.startup.controllerManagerMs)})`);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root);
await kube.create(namespace('shop'));
for (const name of ['web', 'idle', 'worker', 'taken', 'steady', 'doomed']) await kube.create(deployment('shop', name, 2));
const kc = await componentKubeconfigs(cp);

const operator: TestOperator = await startTestOperator([
  `--kubeconfig=${kc.operator}`,
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
const hpa = (name: string) => kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', name);
const so = (name: string) => kube.get('keda.sh/v1alpha1', 'ScaledObject', 'shop', name);
const condition = (name: string, type: string) => kube.condition('keda.sh/v1alpha1', 'ScaledObject', 'shop', name, type);
const metricsText = async () => (await fetch(`http://127.0.0.1:${operator.metricsPort}/metrics`)).text();
const writes = async () =>
  (await metricsText())
    .split('\n')
    .filter((l) => l.startsWith('keda_kube_api_writes_total{'))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
const counter = async (name: string, labels: string) => Number((await metricsText()).split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels))?.split(' ').pop() ?? 0);

const metricsApiTrigger = (extra: Record<string, unknown> = {}) => ({
  type: 'metrics-api',
  metadata: { url: upstreamUrl, valueLocation: 'queue.depth', targetValue: '5', activationTargetValue: '3' },
  ...extra,
});
const apply = (obj: Obj) => mustApply(cp.adminKubeconfig, root, obj);
const shop = (name: string, spec: Record<string, unknown>) => scaledObject('shop', name, spec);

async function kubectlDelete(...args: string[]): Promise<void> {
  const r = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, '-n', 'shop', 'delete', ...args]);
  if (r.code !== 0) throw new Error(`kubectl delete failed: ${r.stderr}`);
}

// --- tests --------------------------------------------------------------------------------------

t.test('apply, edit, delete: the HPA follows the ScaledObject, and survives the real API server\'s defaulting', async (t) => {
  await apply(
    shop('web', {
      scaleTargetRef: { name: 'web' },
      pollingInterval: 1,
      minReplicaCount: 2,
      maxReplicaCount: 10,
      triggers: [metricsApiTrigger(), { type: 'metrics-api', metricType: 'Value', metadata: { url: upstreamUrl, valueLocation: 'queue.depth', targetValue: '0.5' } }],
    }),
  );
  const created = await eventually('the HPA is created', () => hpa('keda-hpa-web'));
  const owner = (await so('web'))!;
  t.strictSame(created.spec!.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' });
  t.equal(created.spec!.minReplicas, 2);
  t.equal(created.spec!.maxReplicas, 10);
  t.strictSame(
    (created.spec!.metrics as { external: unknown }[]).map((m) => m.external),
    [
      { metric: { name: 's0-metric-api-queue-depth', selector: { matchLabels: { 'scaledobject.keda.sh/name': 'web' } } }, target: { type: 'AverageValue', averageValue: '5' } },
      { metric: { name: 's1-metric-api-queue-depth', selector: { matchLabels: { 'scaledobject.keda.sh/name': 'web' } } }, target: { type: 'Value', value: '500m' } },
    ],
    'one External metric per trigger, KEDA names, the scaledobject selector',
  );
  t.match(created.metadata!.ownerReferences, [{ kind: 'ScaledObject', name: 'web', uid: owner.metadata!.uid, controller: true, blockOwnerDeletion: true }]);
  t.match(created.metadata!.labels, { 'app.kubernetes.io/managed-by': 'keda-operator', 'scaledobject.keda.sh/name': 'web', 'app.kubernetes.io/part-of': 'web' });

  await eventually('Ready and Active', async () => ((await condition('web', 'Ready'))?.status === 'True' && (await condition('web', 'Active'))?.status === 'True' ? true : undefined));
  const status = (await so('web'))!.status!;
  t.equal(status.hpaName, 'keda-hpa-web');
  t.strictSame(status.externalMetricNames, ['s0-metric-api-queue-depth', 's1-metric-api-queue-depth']);
  t.match(status.health, { 's0-metric-api-queue-depth': { status: 'Happy', numberOfFailures: 0 } });
  t.equal((await condition('web', 'FullySupported'))?.status, 'True');

  // Edit: new bounds, a behavior, a trigger fewer.
  await apply(
    shop('web', {
      scaleTargetRef: { name: 'web' },
      pollingInterval: 1,
      minReplicaCount: 1,
      maxReplicaCount: 4,
      advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 30, policies: [{ type: 'Pods', value: 1, periodSeconds: 15 }] } } } },
      triggers: [metricsApiTrigger()],
    }),
  );
  const edited = await eventually('the HPA is updated', async () => {
    const h = await hpa('keda-hpa-web');
    return h?.spec?.maxReplicas === 4 ? h : undefined;
  });
  t.equal(edited.spec!.minReplicas, 1);
  t.equal(edited.spec!.metrics.length, 1);
  t.match(edited.spec!.behavior, { scaleDown: { stabilizationWindowSeconds: 30, policies: [{ type: 'Pods', value: 1, periodSeconds: 15 }] } }, 'behavior passed through (the API server adds its defaults)');

  // Someone deletes the HPA: it comes back. Someone edits it: the edit is undone.
  await kube.delete('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-web');
  await eventually('the HPA is recreated', async () => {
    const h = await hpa('keda-hpa-web');
    return h && h.metadata!.uid !== edited.metadata!.uid ? h : undefined;
  });
  await kube.mergePatch('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-web', { spec: { maxReplicas: 99 } });
  await eventually('the edit is undone', async () => ((await hpa('keda-hpa-web'))?.spec?.maxReplicas === 4 ? true : undefined));

  // A custom HPA name: the old one goes, the new one comes.
  await apply(
    shop('web', {
      scaleTargetRef: { name: 'web' },
      pollingInterval: 1,
      minReplicaCount: 1,
      maxReplicaCount: 4,
      advanced: { horizontalPodAutoscalerConfig: { name: 'web-autoscaler' } },
      triggers: [metricsApiTrigger()],
    }),
  );
  await eventually('renamed', async () => ((await hpa('web-autoscaler')) && !(await hpa('keda-hpa-web')) ? true : undefined));

  await kubectlDelete('scaledobject', 'web');
  await eventually('the HPA is removed with the ScaledObject', async () => ((await hpa('web-autoscaler')) ? undefined : true));
});

t.test('a steady state writes nothing: no HPA rewrites after creation, no status writes per poll', async (t) => {
  value = 10;
  const hpaUpdates = () => counter('keda_kube_api_writes_total', 'resource="horizontalpodautoscalers",verb="update"');
  const updatesBefore = await hpaUpdates();
  await apply(shop('steady', { scaleTargetRef: { name: 'steady' }, pollingInterval: 1, minReplicaCount: 1, maxReplicaCount: 10, triggers: [metricsApiTrigger()] }));
  await eventually('HPA, Ready and Active', async () => ((await hpa('keda-hpa-steady')) && (await condition('steady', 'Active'))?.status === 'True' && (await condition('steady', 'Ready'))?.status === 'True' ? true : undefined));
  // Let the first polls and the HPA controller's first syncs (status writes on the HPA) go by.
  await new Promise((r) => setTimeout(r, 3000));
  const before = { writes: await writes(), so: (await so('steady'))!.metadata!.resourceVersion, hpa: (await hpa('keda-hpa-steady'))!.metadata!.generation, hits };
  await new Promise((r) => setTimeout(r, 60_000));
  const after = { writes: await writes(), so: (await so('steady'))!.metadata!.resourceVersion, hpa: (await hpa('keda-hpa-steady'))!.metadata!.generation, hits };
  t.ok(after.hits - before.hits >= 30, `the trigger was polled all along (${after.hits - before.hits} polls)`);
  t.equal(after.writes, before.writes, 'no write to kube-apiserver in a minute of steady state');
  t.equal(after.so, before.so, 'the ScaledObject (its status) was not written');
  t.equal(after.hpa, before.hpa, 'the HPA spec was not rewritten');
  t.equal(await hpaUpdates(), updatesBefore, 'the HPA was never updated after its creation (what the API server defaulted is no difference)');
  t.ok((await counter('rest_client_requests_total', 'code="201",method="POST"')) >= 1, 'the operator\'s calls to kube-apiserver are counted, creations among them');
  await kubectlDelete('scaledobject', 'steady');
});

t.test('scale to zero after the cooldown, and back when a trigger is active, through the scale subresource', async (t) => {
  value = 0;
  await apply(shop('idle', { scaleTargetRef: { name: 'idle' }, pollingInterval: 1, cooldownPeriod: 1, triggers: [metricsApiTrigger()] }));
  const h = await eventually('HPA', () => hpa('keda-hpa-idle'));
  t.equal(h.spec!.minReplicas, 1, 'the HPA stops at 1; zero is the operator\'s');
  await eventually('scaled to zero', async () => ((await replicasOf(kube, 'shop', 'idle')) === 0 ? true : undefined), 20_000);
  // Never active: to zero on the first poll (KEDA's rule), with the status written just after.
  await eventually('Active False', async () => ((await condition('idle', 'Active'))?.status === 'False' ? true : undefined));
  t.ok((await so('idle'))!.status!.lastActiveTime === undefined, 'never active: no lastActiveTime');
  value = 10;
  await eventually('scaled from zero', async () => (((await replicasOf(kube, 'shop', 'idle')) ?? 0) >= 1 ? true : undefined), 20_000);
  await eventually('Active', async () => ((await condition('idle', 'Active'))?.status === 'True' ? true : undefined));
  const activeSince = Date.parse((await so('idle'))!.status!.lastActiveTime as string);
  t.ok(Date.now() - activeSince < 10_000, 'lastActiveTime set when activity started');
  const events = (await kube.list('v1', 'Event', 'shop')).filter((e) => (e.involvedObject as { name: string }).name === 'idle');
  t.ok(events.some((e) => e.reason === 'KEDAScaleTargetDeactivated'), 'an Event for scaling to zero');
  t.ok(events.some((e) => e.reason === 'KEDAScaleTargetActivated'), 'an Event for scaling from zero');
  const metrics = await metricsText();
  t.match(metrics, /keda_scale_target_replica_changes_total\{direction="to_zero",component="operator"\} [1-9]/);
  t.match(metrics, /keda_scale_target_replica_changes_total\{direction="from_zero",component="operator"\} [1-9]/);
  t.match(metrics, /keda_kube_api_writes_total\{resource="scale",verb="patch",component="operator"\} [1-9]/);
  t.match(metrics, /keda_scaler_metrics_value\{namespace="shop",scaled_object="idle",trigger_index="0",scaler="metrics-api",metric="s0-metric-api-queue-depth",component="operator"\} 10/);
  await kubectlDelete('scaledobject', 'idle');
});

t.test('a failing upstream never scales to zero and shows in health', async (t) => {
  value = 0;
  await apply(
    shop('worker', {
      scaleTargetRef: { name: 'worker' },
      pollingInterval: 1,
      cooldownPeriod: 0,
      triggers: [{ type: 'metrics-api', metadata: { url: 'http://127.0.0.1:1/nothing', valueLocation: 'v', targetValue: '1' } }, metricsApiTrigger()],
    }),
  );
  await eventually('health shows the failing trigger', async () => ((await so('worker'))?.status?.health?.['s0-metric-api-v']?.status === 'Failing' ? true : undefined));
  t.equal((await so('worker'))?.status?.health?.['s1-metric-api-queue-depth']?.status, 'Happy', 'the healthy trigger keeps its value');
  const polledBefore = hits;
  await eventually('a few more polls', async () => (hits >= polledBefore + 3 ? true : undefined));
  t.equal(await replicasOf(kube, 'shop', 'worker'), 2, 'not scaled to zero while a trigger fails');
  t.match(await metricsText(), /keda_scaler_errors_total\{namespace="shop",scaled_object="worker",trigger_index="0",scaler="metrics-api",component="operator"\} [1-9]/);
  await kubectlDelete('scaledobject', 'worker');
});

t.test('invalid, unsupported and conflicting objects are reported in status', async (t) => {
  // No webhook in this cluster (as with failurePolicy Ignore): min > max reaches the operator.
  await apply(shop('bad-bounds', { scaleTargetRef: { name: 'web' }, minReplicaCount: 5, maxReplicaCount: 2, triggers: [metricsApiTrigger()] }));
  await eventually('bad bounds reported', async () => ((await condition('bad-bounds', 'Ready'))?.reason === 'ScaledObjectCheckFailed' ? true : undefined));
  t.match((await condition('bad-bounds', 'Ready'))?.message, /spec\.minReplicaCount \(5\) must not be greater than spec\.maxReplicaCount \(2\)/);
  t.notOk(await hpa('keda-hpa-bad-bounds'), 'no HPA for an invalid object');

  await apply(shop('unknown-type', { scaleTargetRef: { name: 'web' }, triggers: [{ type: 'kafka', metadata: { topic: 'x' } }] }));
  await eventually('unknown trigger type reported', async () => ((await condition('unknown-type', 'Ready'))?.reason === 'TriggerError' ? true : undefined));
  t.match((await condition('unknown-type', 'Ready'))?.message, /unsupported trigger type "kafka"/);
  t.notOk(await hpa('keda-hpa-unknown-type'), 'no HPA without a single usable trigger');

  await apply(shop('from-env', { scaleTargetRef: { name: 'web' }, triggers: [metricsApiTrigger({ metadata: { ...metricsApiTrigger().metadata, urlFromEnv: 'API_URL' } })] }));
  await eventually('unsupported field reported', async () => ((await condition('from-env', 'FullySupported'))?.status === 'False' ? true : undefined));
  t.match((await condition('from-env', 'FullySupported'))?.message, /spec\.triggers\[0\]\.metadata\.urlFromEnv is not supported: metrics-api does not read url from the workload's environment/);
  t.ok(await eventually('still served', () => hpa('keda-hpa-from-env')), 'an unsupported field does not stop the rest');

  await apply(shop('missing-target', { scaleTargetRef: { name: 'nope' }, triggers: [metricsApiTrigger()] }));
  await eventually('missing target reported', async () => ((await condition('missing-target', 'Ready'))?.reason === 'ScaleTargetNotFound' ? true : undefined));
  // The workload is checked from the watch of its kind: its arrival and its deletion both show.
  await kube.create(deployment('shop', 'nope', 1));
  await eventually('the workload appears: Ready', async () => ((await condition('missing-target', 'Ready'))?.status === 'True' ? true : undefined));
  await kube.delete('apps/v1', 'Deployment', 'shop', 'nope');
  await eventually('and goes: reported again', async () => ((await condition('missing-target', 'Ready'))?.reason === 'ScaleTargetNotFound' ? true : undefined));

  await kube.create({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'keda-hpa-taken', namespace: 'shop' }, spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'taken' }, maxReplicas: 3 } });
  await apply(shop('taken', { scaleTargetRef: { name: 'taken' }, triggers: [metricsApiTrigger()] }));
  await eventually('foreign HPA reported', async () => ((await condition('taken', 'Ready'))?.reason === 'HPAOwnedByOther' ? true : undefined));
  t.equal((await hpa('keda-hpa-taken'))?.spec?.maxReplicas, 3, 'somebody else\'s HPA is left alone');

  // Fixing an object clears its condition.
  await kube.mergePatch('keda.sh/v1alpha1', 'ScaledObject', 'shop', 'bad-bounds', { spec: { minReplicaCount: 1 } });
  await eventually('fixed', async () => ((await condition('bad-bounds', 'Ready'))?.status === 'True' ? true : undefined));
  for (const name of ['bad-bounds', 'unknown-type', 'from-env', 'missing-target', 'taken']) await kube.delete('keda.sh/v1alpha1', 'ScaledObject', 'shop', name);
  await eventually('cleaned up', async () => ((await hpa('keda-hpa-bad-bounds')) || (await hpa('keda-hpa-from-env')) ? undefined : true));
  t.ok(await hpa('keda-hpa-taken'), 'the foreign HPA survives the deletion of the ScaledObject that wanted its name');
});

t.test('foreground deletion: the garbage collector removes the HPA through its owner reference, and the operator does not bring it back', async (t) => {
  await apply(shop('doomed', { scaleTargetRef: { name: 'doomed' }, pollingInterval: 1, triggers: [metricsApiTrigger()] }));
  await eventually('HPA and Ready', async () => ((await hpa('keda-hpa-doomed')) && (await condition('doomed', 'Ready'))?.status === 'True' ? true : undefined));
  const hpaDeletes = () => counter('keda_kube_api_writes_total', 'resource="horizontalpodautoscalers",verb="delete"');
  const deletesBefore = await hpaDeletes();
  // The ScaledObject stays (deletionTimestamp, foregroundDeletion finalizer) until the garbage
  // collector has deleted the HPA, which blockOwnerDeletion makes it wait for; only then is it
  // removed, and only then would the operator's own clean-up have anything to see.
  await kubectlDelete('scaledobject', 'doomed', '--cascade=foreground');
  t.notOk(await so('doomed'), 'kubectl waited for the ScaledObject to go');
  t.notOk(await hpa('keda-hpa-doomed'), 'the HPA went first');
  t.equal(await hpaDeletes(), deletesBefore, 'the garbage collector deleted it, not the operator');
  await new Promise((r) => setTimeout(r, 2000));
  t.notOk(await hpa('keda-hpa-doomed'), 'and the operator did not bring it back');
});
