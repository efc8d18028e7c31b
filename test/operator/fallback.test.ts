// KEDA's fallback on a real control plane (envtest v1.28): the real HPA controller reads our
// metric through the real aggregator, the adapter and the operator. An upstream that starts
// failing makes the metric answer the fallback once failureThreshold is passed, the HPA settles
// on the fallback count, status.health counts the failures and the Fallback condition says so;
// the upstream recovering undoes all of it. Each behaviour (static, currentReplicas,
// currentReplicasIfHigher, currentReplicasIfLower) is read off the served metric, and a Value
// metric falls back through the workload's ready replicas (a custom resource with a scale
// subresource, whose status nobody but the test writes: there is no kubelet to make Pods ready).
import t from 'tap';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/envtest.js';
import { externalMetric, installDeploy, jsonUpstream, mustApply, startOperatorAndAdapter } from '../helpers/keda-cluster.js';
import { Kube, deployment, namespace, replicasOf, scaledObject, type Obj } from '../helpers/kube.js';
import { createTestPki } from '../helpers/pki.js';
import { eventually } from '../helpers/loop.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));

// One upstream; each ScaledObject reads its own path, and a path listed in `failing` answers 500.
const failing = new Set<string>();
const base = await jsonUpstream(t, (path) => (failing.has(path) ? { status: 500, body: { error: 'down' } } : { body: { queue: { depth: 30 } } }));

const cp = await startControlPlane(t);
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms`);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root, ['crds', 'rbac', 'apiservice']);
await kube.create(namespace('shop'));

// A scalable kind of the user's own, with status.readyReplicas, and the RBAC deploy/ tells users to add for one.
const WIDGETS: Obj = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.com' },
  spec: {
    group: 'example.com',
    names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' },
    scope: 'Namespaced',
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {}, scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas' } },
        schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { replicas: { type: 'integer' } } }, status: { type: 'object', properties: { replicas: { type: 'integer' }, readyReplicas: { type: 'integer' } } } } } },
      },
    ],
  },
};
const WIDGET_RBAC: Obj[] = [
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'keda-ts-operator-widgets' }, rules: [{ apiGroups: ['example.com'], resources: ['widgets', 'widgets/scale'], verbs: ['get', 'list', 'watch', 'patch'] }] },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'keda-ts-operator-widgets' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'keda-ts-operator-widgets' },
    subjects: [{ kind: 'ServiceAccount', name: 'keda-operator', namespace: 'keda' }],
  },
];
await mustApply(cp.adminKubeconfig, root, WIDGETS, ...WIDGET_RBAC);
await eventually('the Widget kind served', () => kube.request('GET', '/apis/example.com/v1'));

const { operator } = await startOperatorAndAdapter(t, cp, kube, pki.dir);

const METRIC = 's0-metric-api-queue-depth';
const trigger = (name: string, extra: Record<string, unknown> = {}) => ({ type: 'metrics-api', metadata: { url: `${base}/${name}`, valueLocation: 'queue.depth', targetValue: '10' }, ...extra });
const so = (name: string) => kube.get('keda.sh/v1alpha1', 'ScaledObject', 'shop', name);
const condition = (name: string, type: string) => kube.condition('keda.sh/v1alpha1', 'ScaledObject', 'shop', name, type);
const health = async (name: string) => (await so(name))?.status?.health?.[METRIC] as { status: string; numberOfFailures: number } | undefined;
const replicas = (name: string) => replicasOf(kube, 'shop', name);
/** The metric as the HPA controller reads it: through kube-apiserver's aggregator. */
const served = (name: string) => externalMetric(cp, 'shop', METRIC, name);
const scaleDownAtOnce = { horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 0 } } } };

t.test('static: the HPA settles on fallback.replicas while the upstream fails, and comes back after', async (t) => {
  await kube.create(deployment('shop', 'web', 1));
  await mustApply(
    cp.adminKubeconfig,
    root,
    scaledObject('shop', 'web', { scaleTargetRef: { name: 'web' }, pollingInterval: 1, minReplicaCount: 1, maxReplicaCount: 10, fallback: { failureThreshold: 3, replicas: 5 }, advanced: scaleDownAtOnce, triggers: [trigger('web')] }),
  );
  await eventually('the HPA scales to 3 (30 / 10)', async () => ((await replicas('web')) === 3 ? true : undefined), 60_000);
  t.match(await condition('web', 'Fallback'), { status: 'False', reason: 'NoFallbackFound' });

  failing.add('/web');
  // One read of the status: health and conditions are written together, so they agree.
  const seen = await eventually('a failure counted, not yet falling back', async () => {
    const status = (await so('web'))?.status;
    const h = status?.health?.[METRIC] as { status: string; numberOfFailures: number } | undefined;
    return h && h.numberOfFailures >= 1 && h.numberOfFailures <= 3 ? { h, conditions: status!.conditions as { type: string; status: string }[] } : undefined;
  });
  t.equal(seen.h.status, 'Failing');
  t.equal(seen.conditions.find((c) => c.type === 'Fallback')?.status, 'False', 'below the threshold: no fallback');
  await eventually('the metric answers the fallback: 5 x 10', async () => ((await served('web')).value === '50' ? true : undefined));
  await eventually('Fallback condition', async () => ((await condition('web', 'Fallback'))?.status === 'True' ? true : undefined));
  t.match(await condition('web', 'Fallback'), { reason: 'FallbackExists', message: /At least one trigger is falling back on this scaled object: s0-metric-api-queue-depth/ });
  t.ok(((await health('web'))?.numberOfFailures ?? 0) > 3, 'failures counted past the threshold');
  await eventually('the HPA settles on 5', async () => ((await replicas('web')) === 5 ? true : undefined), 60_000);

  failing.delete('/web');
  await eventually('healthy again', async () => ((await health('web'))?.status === 'Happy' ? true : undefined));
  t.equal((await health('web'))?.numberOfFailures, 0);
  await eventually('Fallback cleared', async () => ((await condition('web', 'Fallback'))?.status === 'False' ? true : undefined));
  t.equal((await served('web')).value, '30', 'the real value again');
  await eventually('the HPA back at 3', async () => ((await replicas('web')) === 3 ? true : undefined), 60_000);
});

t.test('without fallback a failing trigger stays an error for the HPA', async (t) => {
  await kube.create(deployment('shop', 'plain', 2));
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'plain', { scaleTargetRef: { name: 'plain' }, pollingInterval: 1, minReplicaCount: 1, triggers: [trigger('plain')] }));
  await eventually('served', async () => ((await served('plain')).value === '30' ? true : undefined));
  failing.add('/plain');
  await eventually('failing past any threshold', async () => (((await health('plain'))?.numberOfFailures ?? 0) > 5 ? true : undefined));
  const r = await served('plain');
  t.not(r.code, 0, 'the query fails');
  t.match(r.stderr, /500/, 'saying why');
  t.equal((await condition('plain', 'Fallback'))?.status, 'False');
});

t.test('the behaviours follow the workload\'s current replica count', async (t) => {
  // Each at 3 replicas (30 / 10) before the upstream fails; fallback.replicas 5 or 2.
  const cases: [string, string, number, string][] = [
    ['current', 'currentReplicas', 5, '30'],
    ['higher', 'currentReplicasIfHigher', 2, '30'],
    ['higher-fb', 'currentReplicasIfHigher', 5, '50'],
    ['lower', 'currentReplicasIfLower', 5, '30'],
    ['lower-fb', 'currentReplicasIfLower', 2, '20'],
  ];
  for (const [name, behavior, fallbackReplicas] of cases) {
    await kube.create(deployment('shop', name, 1));
    await mustApply(
      cp.adminKubeconfig,
      root,
      scaledObject('shop', name, { scaleTargetRef: { name }, pollingInterval: 1, minReplicaCount: 1, fallback: { failureThreshold: 1, replicas: fallbackReplicas, behavior }, advanced: scaleDownAtOnce, triggers: [trigger(name)] }),
    );
  }
  for (const [name] of cases) await eventually(`${name} at 3`, async () => ((await replicas(name)) === 3 ? true : undefined), 60_000);
  for (const [name] of cases) failing.add(`/${name}`);
  for (const [name, behavior, fallbackReplicas, value] of cases) {
    await eventually(`${name}: ${value}`, async () => ((await served(name)).value === value ? true : undefined));
    t.pass(`${behavior} with fallback.replicas ${fallbackReplicas} at 3 replicas answers ${value}`);
  }
  for (const [name] of cases) failing.delete(`/${name}`);
});

t.test('at zero replicas the workload is brought to the fallback count (the HPA does nothing at zero)', async (t) => {
  await kube.create(deployment('shop', 'idle', 0));
  failing.add('/idle');
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'idle', { scaleTargetRef: { name: 'idle' }, pollingInterval: 1, fallback: { failureThreshold: 2, replicas: 4 }, triggers: [trigger('idle')] }));
  await eventually('scaled from 0 to the fallback', async () => ((await replicas('idle')) === 4 ? true : undefined), 30_000);
  // Scaled first, the status written just after.
  t.ok(await eventually('the Fallback condition', async () => ((await condition('idle', 'Fallback'))?.status === 'True' ? true : undefined)), 'Fallback True');
  failing.delete('/idle');
});

t.test('a Value metric falls back through status.readyReplicas, and not at all without ready replicas', async (t) => {
  await kube.create({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'gizmo', namespace: 'shop' }, spec: { replicas: 4 } });
  failing.add('/gizmo');
  await mustApply(
    cp.adminKubeconfig,
    root,
    scaledObject('shop', 'gizmo', {
      scaleTargetRef: { apiVersion: 'example.com/v1', kind: 'Widget', name: 'gizmo' },
      pollingInterval: 1,
      minReplicaCount: 1,
      fallback: { failureThreshold: 1, replicas: 6 },
      triggers: [trigger('gizmo', { metricType: 'Value' })],
    }),
  );
  await eventually('failing past the threshold', async () => (((await health('gizmo'))?.numberOfFailures ?? 0) > 1 ? true : undefined));
  const none = await served('gizmo');
  t.not(none.code, 0, 'no ready replicas: no fallback, the error stands');
  for (let i = 0; i < 3; i++) await served('gizmo');
  const said = operator.logs.filter((l) => l.msg === 'fallback not possible' && l.scaledObject === 'shop/gizmo');
  t.equal(said.length, 1, 'said once, not on every query');
  t.match(said[0]?.reason, /a Value metric falls back only while the workload has ready replicas/);
  await kube.mergePatch('example.com/v1', 'Widget', 'shop', 'gizmo', { status: { replicas: 4, readyReplicas: 4 } }, 'status');
  // The HPA computes ready x value / target: 4 x 15 / 10 = 6.
  await eventually('6 x 10 / 4 ready', async () => ((await served('gizmo')).value === '15' ? true : undefined));
  t.pass();
  failing.delete('/gizmo');
});
