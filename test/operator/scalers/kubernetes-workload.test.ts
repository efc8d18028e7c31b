// KEDA's kubernetes-workload scaler on a real control plane (envtest v1.28, with the controller
// manager): Pods matching a selector, counted from the operator's one Pod watch, drive a second
// Deployment through the real HPA controller and aggregator; terminal Pods do not count; another
// namespace or all of them; and a bad selector is a configuration error naming it.
import t from 'tap';
import { join } from 'node:path';
import { startControlPlane } from '../../helpers/envtest.js';
import { externalMetric, installDeploy, mustApply, startOperatorAndAdapter } from '../../helpers/keda-cluster.js';
import { Kube, deployment, namespace, replicasOf, scaledObject, type Obj } from '../../helpers/kube.js';
import { createTestPki } from '../../helpers/pki.js';
import { eventually } from '../../helpers/loop.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
const cp = await startControlPlane(t);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root, ['crds', 'rbac', 'apiservice']);
for (const ns of ['shop', 'batch']) await kube.create(namespace(ns));
await startOperatorAndAdapter(t, cp, kube, pki.dir);

const workload = (name: string, metadata: Record<string, string>) => ({ type: 'kubernetes-workload', name, metadata });
const pod = (ns: string, name: string, labels: Record<string, string>): Obj => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec: { containers: [{ name: 'c', image: 'registry.invalid/none:1' }] } });
const served = (so: string, metric: string) => externalMetric(cp, 'shop', metric, so);
const condition = (name: string, type: string) => kube.condition('keda.sh/v1alpha1', 'ScaledObject', 'shop', name, type);

t.test('the follower scales with the Pods of the workload it follows', async (t) => {
  await kube.create(deployment('shop', 'producer', 3));
  await kube.create(deployment('shop', 'follower', 1));
  await mustApply(
    cp.adminKubeconfig,
    root,
    scaledObject('shop', 'follower', {
      scaleTargetRef: { name: 'follower' },
      pollingInterval: 1,
      minReplicaCount: 1,
      advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 0 } } } },
      triggers: [workload('producers', { podSelector: 'app=producer', value: '1' })],
    }),
  );
  await eventually('3 Pods (Pending: no kubelet) counted', async () => ((await served('follower', 's0-workload-shop')).value === '3' ? true : undefined));
  await eventually('the HPA follows: 3', async () => ((await replicasOf(kube, 'shop', 'follower')) === 3 ? true : undefined), 60_000);
  await kube.mergePatch('apps/v1', 'Deployment', 'shop', 'producer', { spec: { replicas: 5 } });
  await eventually('then 5', async () => ((await replicasOf(kube, 'shop', 'follower')) === 5 ? true : undefined), 60_000);
  t.equal((await condition('follower', 'Active'))?.status, 'True');
});

t.test('Succeeded and Failed Pods do not count; another namespace, or all of them', async (t) => {
  for (const [ns, name] of [['shop', 'a'], ['shop', 'b'], ['shop', 'c'], ['batch', 'd']]) await kube.create(pod(ns!, name!, { role: 'loose' }));
  await kube.create(deployment('shop', 'counted', 1));
  await mustApply(
    cp.adminKubeconfig,
    root,
    scaledObject('shop', 'counted', {
      scaleTargetRef: { name: 'counted' },
      pollingInterval: 1,
      minReplicaCount: 1,
      triggers: [workload('here', { podSelector: 'role in (loose)', value: '2' }), workload('there', { podSelector: 'role=loose', value: '1', namespace: 'batch' }), workload('everywhere', { podSelector: 'role', value: '1', namespace: '*' })],
    }),
  );
  await eventually('3 here', async () => ((await served('counted', 's0-workload-shop')).value === '3' ? true : undefined));
  t.equal((await served('counted', 's1-workload-batch')).value, '1', 'namespace: batch');
  t.equal((await served('counted', 's2-workload-')).value, '4', 'namespace: * (KEDA\'s metric name for it)');
  // What a kubelet would write when the container exits.
  await kube.mergePatch('v1', 'Pod', 'shop', 'a', { status: { phase: 'Succeeded' } }, 'status');
  await kube.mergePatch('v1', 'Pod', 'shop', 'b', { status: { phase: 'Failed' } }, 'status');
  await eventually('terminal Pods left out', async () => ((await served('counted', 's0-workload-shop')).value === '1' ? true : undefined));
  t.equal((await served('counted', 's2-workload-')).value, '2');
});

t.test('a bad selector or value is reported, naming it', async (t) => {
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'broken', { scaleTargetRef: { name: 'follower' }, triggers: [workload('bad', { podSelector: 'app in (', value: '1' }), workload('zero', { podSelector: 'app=x', value: '0' })] }));
  const ready = await eventually('Ready False', async () => ((await condition('broken', 'Ready'))?.reason === 'TriggerError' ? condition('broken', 'Ready') : undefined));
  t.match(ready?.message, /kubernetes-workload: podSelector is not a label selector: /);
  t.match(ready?.message, /kubernetes-workload: value 0 must be greater than 0/);
});
