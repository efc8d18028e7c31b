// KEDA's replica-count fields on a real control plane (envtest v1.28), as KEDA's docs write
// them: idleReplicaCount (to zero while idle, straight back to minReplicaCount when a trigger is
// active), initialCooldownPeriod (a new object waits before its first scale to zero), and
// advanced.restoreToOriginalReplicaCount (deleting the ScaledObject puts the workload back at
// the count it had before, through KEDA's finalizer; without it the workload stays where it is).
import t from 'tap';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/envtest.js';
import { installDeploy, jsonUpstream, mustApply, startClusterOperator } from '../helpers/keda-cluster.js';
import { Kube, deployment, namespace, replicasOf, scaledObject } from '../helpers/kube.js';
import { createTestPki } from '../helpers/pki.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
// Each ScaledObject reads its own path; its value is 0 (idle) unless set here.
const values = new Map<string, number>();
const base = await jsonUpstream(t, (path) => ({ body: { queue: { depth: values.get(path) ?? 0 } } }));

const cp = await startControlPlane(t, { controllerManager: false });
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root);
await kube.create(namespace('shop'));
await startClusterOperator(t, cp, pki.dir);

const so = (name: string) => kube.get('keda.sh/v1alpha1', 'ScaledObject', 'shop', name);
const replicas = (name: string) => replicasOf(kube, 'shop', name);
const trigger = (name: string) => ({ type: 'metrics-api', metadata: { url: `${base}/${name}`, valueLocation: 'queue.depth', targetValue: '5' } });
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const create = async (name: string, workloadReplicas: number, spec: Record<string, unknown>) => {
  await kube.create(deployment('shop', name, workloadReplicas));
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', name, { scaleTargetRef: { name }, pollingInterval: 1, cooldownPeriod: 1, triggers: [trigger(name)], ...spec }));
};

t.test('idleReplicaCount 0: to zero while idle, straight back to minReplicaCount when active', async (t) => {
  await create('idler', 2, { idleReplicaCount: 0, minReplicaCount: 2, maxReplicaCount: 10 });
  await eventually('idle: scaled to 0', async () => ((await replicas('idler')) === 0 ? true : undefined), 15_000);
  const hpa = await kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-idler');
  t.equal(hpa?.spec?.minReplicas, 2, 'the HPA keeps minReplicaCount');
  values.set('/idler', 7);
  await eventually('active: back to minReplicaCount, not 1', async () => ((await replicas('idler')) === 2 ? true : undefined), 15_000);
  values.delete('/idler');
  await eventually('idle again: 0', async () => ((await replicas('idler')) === 0 ? true : undefined), 15_000);
});

t.test('without idleReplicaCount, minReplicaCount holds: never below it', async (t) => {
  await create('floor', 2, { minReplicaCount: 2 });
  await eventually('Ready', async () => ((await kube.condition('keda.sh/v1alpha1', 'ScaledObject', 'shop', 'floor', 'Ready'))?.status === 'True' ? true : undefined));
  await wait(3000);
  t.equal(await replicas('floor'), 2);
});

t.test('initialCooldownPeriod: a new, never-active object waits that long before its first scale to zero', async (t) => {
  const created = Date.now();
  await create('patient', 2, { initialCooldownPeriod: 8 });
  await create('eager', 2, {});
  await eventually('without it: to zero at once (KEDA: no lastActiveTime, no cooldown)', async () => ((await replicas('eager')) === 0 ? true : undefined), 15_000);
  t.equal(await replicas('patient'), 2, 'with it: still waiting');
  await eventually('then to zero', async () => ((await replicas('patient')) === 0 ? true : undefined), 20_000);
  // creationTimestamp has whole seconds: up to one less.
  t.ok(Date.now() - created >= 7000, 'not before initialCooldownPeriod');
});

t.test('restoreToOriginalReplicaCount: deletion puts the workload back; without it, it stays', async (t) => {
  await create('restored', 3, { advanced: { restoreToOriginalReplicaCount: true } });
  await create('left', 3, {});
  for (const name of ['restored', 'left']) await eventually(`${name} scaled to 0`, async () => ((await replicas(name)) === 0 ? true : undefined), 15_000);
  const before = await so('restored');
  t.equal(before?.status?.originalReplicaCount, 3, 'the original count is kept in status');
  t.strictSame(before?.metadata?.finalizers, ['finalizer.keda.sh'], 'KEDA\'s finalizer, because there is work to do at deletion');
  t.equal((await so('left'))?.metadata?.finalizers, undefined, 'no finalizer when there is nothing to do');

  for (const name of ['restored', 'left']) {
    const r = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, '-n', 'shop', 'delete', 'scaledobject', name, '--wait=true', '--timeout=30s']);
    t.equal(r.code, 0, r.stderr);
  }
  t.equal(await replicas('restored'), 3, 'restored to 3 before the object went');
  t.notOk(await kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-restored'), 'its HPA removed first, so nothing scales it again');
  t.equal(await replicas('left'), 0, 'left where it was');
});

t.test('turning restoreToOriginalReplicaCount off removes the finalizer; a finalizer left by KEDA is taken over', async (t) => {
  await create('toggled', 1, { minReplicaCount: 1, advanced: { restoreToOriginalReplicaCount: true } });
  await eventually('finalizer added', async () => ((await so('toggled'))?.metadata?.finalizers?.includes('finalizer.keda.sh') ? true : undefined));
  await kube.mergePatch('keda.sh/v1alpha1', 'ScaledObject', 'shop', 'toggled', { spec: { advanced: { restoreToOriginalReplicaCount: false } } });
  await eventually('finalizer removed', async () => ((await so('toggled'))?.metadata?.finalizers === undefined ? true : undefined));

  // As a ScaledObject created by KEDA arrives: its finalizer on, restore off.
  await kube.create(deployment('shop', 'migrated', 1));
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'migrated', { scaleTargetRef: { name: 'migrated' }, minReplicaCount: 1, triggers: [trigger('migrated')] }, { finalizers: ['finalizer.keda.sh'] }));
  await eventually('KEDA\'s finalizer released', async () => ((await so('migrated'))?.metadata?.finalizers === undefined ? true : undefined));
  t.pass();
});
