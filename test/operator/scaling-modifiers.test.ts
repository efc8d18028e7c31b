// KEDA's advanced.scalingModifiers on a real control plane (envtest v1.28), with a ScaledObject as
// KEDA's docs write one: the named triggers' values combined by the formula into the one HPA
// metric `composite-metric`, which the real HPA controller reads through the real aggregator and
// scales by; activity from the formula against activationTarget (to zero and back); a failing
// trigger failing the composite, or answered by the fallback against the composite's target; a
// formula the operator cannot evaluate (no webhook here) reported in Ready, naming the position.
import t from 'tap';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/envtest.js';
import { externalMetric, installDeploy, jsonUpstream, mustApply, startOperatorAndAdapter } from '../helpers/keda-cluster.js';
import { Kube, deployment, namespace, replicasOf, scaledObject } from '../helpers/kube.js';
import { createTestPki } from '../helpers/pki.js';
import { eventually } from '../helpers/loop.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
// Values by path; a path listed in `failing` answers 500.
const values = new Map<string, number>();
const failing = new Set<string>();
const base = await jsonUpstream(t, (path) => (failing.has(path) ? { status: 500, body: { error: 'down' } } : { body: { v: values.get(path) ?? 0 } }));

const cp = await startControlPlane(t);
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms`);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root, ['crds', 'rbac', 'apiservice']);
await kube.create(namespace('shop'));
await startOperatorAndAdapter(t, cp, kube, pki.dir);

const named = (name: string, path: string, extra: Record<string, unknown> = {}) => ({ type: 'metrics-api', name, metadata: { url: `${base}${path}`, valueLocation: 'v', targetValue: '1' }, ...extra });
const condition = (name: string, type: string) => kube.condition('keda.sh/v1alpha1', 'ScaledObject', 'shop', name, type);
const replicas = (name: string) => replicasOf(kube, 'shop', name);
const hpa = (name: string) => kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', `keda-hpa-${name}`);
const served = (name: string) => externalMetric(cp, 'shop', 'composite-metric', name);

t.test('the formula makes one composite metric, and the HPA scales by it', async (t) => {
  values.set('/web/queue', 30).set('/web/backlog', 10);
  await kube.create(deployment('shop', 'web', 1));
  await mustApply(
    cp.adminKubeconfig,
    root,
    scaledObject('shop', 'web', {
      scaleTargetRef: { name: 'web' },
      pollingInterval: 1,
      minReplicaCount: 1,
      maxReplicaCount: 10,
      advanced: {
        scalingModifiers: { formula: '(queue + backlog) / 2', target: '5' },
        horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 0 } } },
      },
      // useCachedMetrics on one: the formula takes its value from the last poll.
      triggers: [named('queue', '/web/queue'), named('backlog', '/web/backlog', { useCachedMetrics: true })],
    }),
  );
  const h = await eventually('the HPA', () => hpa('web'));
  t.strictSame(
    h.spec!.metrics,
    [{ type: 'External', external: { metric: { name: 'composite-metric', selector: { matchLabels: { 'scaledobject.keda.sh/name': 'web' } } }, target: { type: 'AverageValue', averageValue: '5' } } }],
    'one External metric, composite-metric, with the modifiers\' target',
  );
  t.equal((await served('web')).value, '20', '(30 + 10) / 2');
  await eventually('the HPA scales to 20 / 5 = 4', async () => ((await replicas('web')) === 4 ? true : undefined), 60_000);
  values.set('/web/queue', 50).set('/web/backlog', 30);
  await eventually('and to 40 / 5 = 8', async () => ((await replicas('web')) === 8 ? true : undefined), 60_000);
  t.equal((await condition('web', 'Ready'))?.status, 'True');
});

t.test('activity is the formula against activationTarget: to zero, and back', async (t) => {
  values.set('/gate/queue', 2).set('/gate/backlog', 50);
  await kube.create(deployment('shop', 'gate', 2));
  await mustApply(
    cp.adminKubeconfig,
    root,
    scaledObject('shop', 'gate', {
      scaleTargetRef: { name: 'gate' },
      pollingInterval: 1,
      cooldownPeriod: 1,
      advanced: { scalingModifiers: { formula: 'queue > 10 ? queue + backlog : 0', target: '20', activationTarget: '3' } },
      triggers: [named('queue', '/gate/queue'), named('backlog', '/gate/backlog')],
    }),
  );
  // backlog alone (50) would make a plain trigger active; the formula says 0.
  await eventually('inactive: scaled to zero', async () => ((await replicas('gate')) === 0 ? true : undefined), 20_000);
  // Scaled first, the status written just after.
  t.ok(await eventually('Active False', async () => ((await condition('gate', 'Active'))?.status === 'False' ? true : undefined)), 'inactive');
  values.set('/gate/queue', 30);
  await eventually('active: from zero', async () => ((await replicas('gate')) ?? 0) > 0 ? true : undefined, 20_000);
  t.ok(await eventually('Active True', async () => ((await condition('gate', 'Active'))?.status === 'True' ? true : undefined)), 'active');
  await eventually('then the HPA: (30 + 50) / 20 = 4', async () => ((await replicas('gate')) === 4 ? true : undefined), 60_000);
});

t.test('a failing trigger fails the composite; with fallback, the fallback answers for it', async (t) => {
  values.set('/safe/queue', 10).set('/safe/backlog', 10).set('/bare/queue', 10).set('/bare/backlog', 10);
  for (const name of ['safe', 'bare']) {
    await kube.create(deployment('shop', name, 1));
    await mustApply(
      cp.adminKubeconfig,
      root,
      scaledObject('shop', name, {
        scaleTargetRef: { name },
        pollingInterval: 1,
        minReplicaCount: 1,
        ...(name === 'safe' ? { fallback: { failureThreshold: 2, replicas: 3 } } : {}),
        advanced: { scalingModifiers: { formula: 'queue + backlog', target: '4' } },
        triggers: [named('queue', `/${name}/queue`), named('backlog', `/${name}/backlog`)],
      }),
    );
    await eventually(`${name} served`, async () => ((await served(name)).value === '20' ? true : undefined));
    failing.add(`/${name}/backlog`);
  }
  await eventually('fallback: 3 replicas x target 4', async () => ((await served('safe')).value === '12' ? true : undefined));
  await eventually('the Fallback condition', async () => ((await condition('safe', 'Fallback'))?.status === 'True' ? true : undefined));
  await eventually('the HPA settles on the fallback', async () => ((await replicas('safe')) === 3 ? true : undefined), 60_000);
  const bare = await served('bare');
  t.not(bare.code, 0, 'without fallback the composite fails');
  failing.clear();
  await eventually('recovered', async () => ((await served('safe')).value === '20' ? true : undefined));
});

t.test('a formula that cannot work (no webhook in this cluster) is reported in Ready, with the position', async (t) => {
  await mustApply(
    cp.adminKubeconfig,
    root,
    scaledObject('shop', 'typo', {
      scaleTargetRef: { name: 'web' },
      advanced: { scalingModifiers: { formula: 'queue + lag', target: '5' } },
      triggers: [named('queue', '/typo/queue')],
    }),
  );
  const ready = await eventually('Ready False', async () => ((await condition('typo', 'Ready'))?.reason === 'ScaledObjectCheckFailed' ? condition('typo', 'Ready') : undefined));
  t.match(ready?.message, /spec\.advanced\.scalingModifiers\.formula is invalid: unknown name lag \(the named triggers: queue\) \(1:9\)/);
  t.notOk(await hpa('typo'));
});
