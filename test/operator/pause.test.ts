// KEDA's pause annotations on a real control plane (envtest v1.28), as users set them with
// kubectl annotate: paused-replicas scales the workload to that count and holds it without an
// HPA, paused holds it where it is, paused-scale-in / paused-scale-out stop one direction only
// (scaling to zero counts as scaling in), and removing the annotation resumes autoscaling.
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
let value = 0;
const url = `${await jsonUpstream(t, () => ({ body: { queue: { depth: value } } }))}/q`;

const cp = await startControlPlane(t, { controllerManager: false });
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root);
await kube.create(namespace('shop'));
for (const name of ['held', 'frozen', 'one-way']) await kube.create(deployment('shop', name, 2));
await startClusterOperator(t, cp, pki.dir);

const hpa = (name: string) => kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', name);
const so = (name: string) => kube.get('keda.sh/v1alpha1', 'ScaledObject', 'shop', name);
const condition = (name: string, type: string) => kube.condition('keda.sh/v1alpha1', 'ScaledObject', 'shop', name, type);
const replicas = (name: string) => replicasOf(kube, 'shop', name);
const annotate = async (name: string, ...args: string[]) => {
  const r = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, '-n', 'shop', 'annotate', '--overwrite', 'scaledobject', name, ...args]);
  if (r.code !== 0) throw new Error(r.stderr);
};
const trigger = { type: 'metrics-api', metadata: { url, valueLocation: 'queue.depth', targetValue: '5' } };
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('paused-replicas: scaled to that count and held without an HPA; removed: autoscaling resumes', async (t) => {
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'held', { scaleTargetRef: { name: 'held' }, pollingInterval: 1, minReplicaCount: 1, triggers: [trigger] }, { annotations: { 'autoscaling.keda.sh/paused-replicas': '3' } }));
  await eventually('scaled to 3', async () => ((await replicas('held')) === 3 ? true : undefined));
  const paused = await eventually('Paused', async () => ((await condition('held', 'Paused'))?.status === 'True' ? condition('held', 'Paused') : undefined));
  t.match(paused, { reason: 'ScaledObjectPaused', message: 'Autoscaling is paused at 3 replicas' });
  t.equal((await so('held'))!.status!.pausedReplicaCount, 3);
  t.equal((await condition('held', 'Ready'))?.status, 'True');
  await wait(1500);
  t.notOk(await hpa('keda-hpa-held'), 'no HPA while paused');

  await annotate('held', 'autoscaling.keda.sh/paused-replicas=0');
  await eventually('scaled to 0', async () => ((await replicas('held')) === 0 ? true : undefined));
  // The status is written by the poll that scales, just after it: waited for, not read at once.
  await eventually('pausedReplicaCount 0', async () => ((await so('held'))?.status?.pausedReplicaCount === 0 ? true : undefined));
  await wait(1500);
  t.equal(await replicas('held'), 0, 'held at 0: minReplicaCount 1 does not bring it back while paused');

  await annotate('held', 'autoscaling.keda.sh/paused-replicas-');
  await eventually('the HPA back', () => hpa('keda-hpa-held'));
  await eventually('unpaused', async () => ((await condition('held', 'Paused'))?.status === 'False' ? true : undefined));
  t.equal((await so('held'))!.status!.pausedReplicaCount, undefined, 'pausedReplicaCount removed');
  await eventually('back to minReplicaCount', async () => ((await replicas('held')) === 1 ? true : undefined));
});

t.test('paused: held where it is, even when the metric would scale it to zero; removed: it does', async (t) => {
  value = 0;
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'frozen', { scaleTargetRef: { name: 'frozen' }, pollingInterval: 1, cooldownPeriod: 1, minReplicaCount: 0, triggers: [trigger] }, { annotations: { 'autoscaling.keda.sh/paused': 'true' } }));
  await eventually('Paused', async () => ((await condition('frozen', 'Paused'))?.status === 'True' ? true : undefined));
  t.match(await condition('frozen', 'Paused'), { message: 'Autoscaling is paused: replicas are held where they are' });
  await wait(3000);
  t.equal(await replicas('frozen'), 2, 'not scaled to zero while paused');
  t.notOk(await hpa('keda-hpa-frozen'));
  await annotate('frozen', 'autoscaling.keda.sh/paused=false');
  await eventually('scaled to zero once unpaused', async () => ((await replicas('frozen')) === 0 ? true : undefined), 15_000);
  t.ok(await hpa('keda-hpa-frozen'), 'and the HPA is there');
});

t.test('paused-scale-in: the HPA may only scale out, and the operator does not scale to zero', async (t) => {
  value = 0;
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'one-way', { scaleTargetRef: { name: 'one-way' }, pollingInterval: 1, cooldownPeriod: 1, minReplicaCount: 0, advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 60 } } } }, triggers: [trigger] }, { annotations: { 'autoscaling.keda.sh/paused-scale-in': 'true' } }));
  const h = await eventually('the HPA', () => hpa('keda-hpa-one-way'));
  t.match(h.spec!.behavior, { scaleDown: { stabilizationWindowSeconds: 60, selectPolicy: 'Disabled' } }, 'scale-in disabled, the rest of the behavior kept');
  t.not(h.spec!.behavior?.scaleUp?.selectPolicy, 'Disabled', 'scale-out untouched');
  t.equal((await eventually('the status', () => condition('one-way', 'Paused')))?.status, 'False', 'not paused as a whole');
  await wait(3000);
  t.equal(await replicas('one-way'), 2, 'not scaled to zero');
  await annotate('one-way', 'autoscaling.keda.sh/paused-scale-in-');
  await eventually('scale-in allowed again', async () => ((await hpa('keda-hpa-one-way'))?.spec?.behavior?.scaleDown?.selectPolicy !== 'Disabled' ? true : undefined));
  await eventually('scaled to zero', async () => ((await replicas('one-way')) === 0 ? true : undefined), 15_000);
});

t.test('a malformed pause annotation is reported, naming it', async (t) => {
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'typo', { scaleTargetRef: { name: 'held' }, triggers: [trigger] }, { annotations: { 'autoscaling.keda.sh/paused-replicas': 'three' } }));
  const ready = await eventually('Ready False', async () => ((await condition('typo', 'Ready'))?.reason === 'ScaledObjectCheckFailed' ? condition('typo', 'Ready') : undefined));
  t.match(ready?.message, /metadata\.annotations\[autoscaling\.keda\.sh\/paused-replicas\] must be a replica count, an integer >= 0 \(got "three"\)/);
  await annotate('typo', 'autoscaling.keda.sh/paused-replicas-', 'autoscaling.keda.sh/paused=yes');
  await eventually('the other one', async () => (/autoscaling\.keda\.sh\/paused\] must be "true" or "false" \(got "yes"\)/.test((await condition('typo', 'Ready'))?.message ?? '') ? true : undefined));
  t.pass();
});
