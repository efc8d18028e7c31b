// Convergence on a real control plane, whatever the order: a ScaledObject, its Deployment, its
// TriggerAuthentication and the Secret that one names are applied in each of the 24 possible
// orders, and every Deployment ends at the replica count its metric asks for, set by the real
// HPA controller reading our metric through the real aggregator, the adapter and the operator.
// Then a Secret rotated later reaches the scaler, and kube-apiserver restarts (same port, same
// etcd) with an edit made while it was down: operator and adapter carry on without a restart of
// their own, and the edit is picked up once it is back.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/envtest.js';
import { installDeploy, kubectlApply, startOperatorAndAdapter } from '../helpers/keda-cluster.js';
import { Kube, deployment, namespace, replicasOf, scaledObject, secret, type Obj } from '../helpers/kube.js';
import { createTestPki } from '../helpers/pki.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));

// --- an upstream that wants a password (from the Secret, through the TriggerAuthentication) -----
const accepted = new Set(['first']);
const seen: { ns: string; password: string; ok: boolean }[] = [];
const upstream: Server = createServer((req, res) => {
  const got = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':')[1] ?? '';
  const ok = accepted.has(got);
  seen.push({ ns: req.url?.split('/')[2] ?? '', password: got, ok });
  res.statusCode = ok ? 200 : 401;
  res.setHeader('content-type', 'application/json');
  res.end(ok ? JSON.stringify({ queue: { depth: 30 } }) : '{"error":"unauthorized"}');
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/stats`;
const healthOf = async (ns: string) => (await kube.get('keda.sh/v1alpha1', 'ScaledObject', ns, 'app'))?.status?.health?.['s0-metric-api-queue-depth'] as { status: string; numberOfFailures: number } | undefined;

// --- the cluster, the operator, the adapter behind the real aggregator --------------------------
const cp = await startControlPlane(t);
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms`);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root, ['crds', 'rbac', 'apiservice']);
const { operator } = await startOperatorAndAdapter(t, cp, kube, pki.dir);

// --- the four objects of one install ------------------------------------------------------------
type Part = 'ScaledObject' | 'Deployment' | 'TriggerAuthentication' | 'Secret';
const PARTS: Part[] = ['ScaledObject', 'Deployment', 'TriggerAuthentication', 'Secret'];
const objectsFor = (ns: string): Record<Part, Obj> => ({
  ScaledObject: scaledObject(ns, 'app', {
    scaleTargetRef: { name: 'app' },
    pollingInterval: 1,
    minReplicaCount: 1,
    maxReplicaCount: 10,
    triggers: [{ type: 'metrics-api', metadata: { url: `${upstreamUrl}/${ns}`, valueLocation: 'queue.depth', targetValue: '10', authMode: 'basic' }, authenticationRef: { name: 'upstream-auth' } }],
  }),
  Deployment: deployment(ns, 'app', 1),
  TriggerAuthentication: {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'TriggerAuthentication',
    metadata: { name: 'upstream-auth', namespace: ns },
    spec: { secretTargetRef: [{ parameter: 'username', name: 'upstream-credentials', key: 'user' }, { parameter: 'password', name: 'upstream-credentials', key: 'password' }] },
  },
  Secret: secret(ns, 'upstream-credentials', { user: 'keda', password: 'first' }),
});

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((x, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]));
}

t.test('every order of ScaledObject, Deployment, TriggerAuthentication and Secret ends at the replicas the metric asks for', async (t) => {
  const orders = permutations(PARTS);
  t.equal(orders.length, 24);
  // All 24 installs at once, each applying its objects one by one with kubectl, a second apart, so
  // the operator sees (and reconciles) every incomplete state on the way.
  await Promise.all(
    orders.map(async (order, i) => {
      const ns = `order-${i}`;
      await kube.create(namespace(ns));
      const objs = objectsFor(ns);
      for (const part of order) {
        const r = await kubectlApply(cp.adminKubeconfig, root, objs[part]);
        if (r.code !== 0) throw new Error(`${ns}: kubectl apply ${part}: ${r.stderr}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }),
  );
  const appliedAt = Date.now();
  // ceil(30 / 10) = 3, by the HPA controller (sync period 5 s) from the metric through the aggregator.
  const settled = await Promise.all(
    orders.map(async (order, i) => {
      const ns = `order-${i}`;
      await eventually(`${ns} (${order.join(' → ')}) at 3 replicas`, async () => ((await replicasOf(kube, ns, 'app')) === 3 ? true : undefined), 90_000);
      return Date.now() - appliedAt;
    }),
  );
  t.pass(`all 24 orders at 3 replicas, the last ${Math.round(Math.max(...settled) / 1000)} s after its last object was applied`);
  for (const [i, order] of orders.entries()) {
    const ready = await kube.condition('keda.sh/v1alpha1', 'ScaledObject', `order-${i}`, 'app', 'Ready');
    t.equal(ready?.status, 'True', `order-${i} (${order.join(' → ')}): Ready`);
  }
});

t.test('a Secret rotated later reaches the scaler at once, with no failed poll', async (t) => {
  // The upstream takes both passwords while the Secret changes, as a real rotation would.
  accepted.add('second');
  const before = seen.length;
  const rotatedAt = Date.now();
  for (let i = 0; i < 24; i++) await kube.mergePatch('v1', 'Secret', `order-${i}`, 'upstream-credentials', { stringData: { password: 'second' } });
  await eventually('the new password in use everywhere', async () => {
    const fresh = seen.slice(before);
    return Array.from({ length: 24 }, (_, i) => `order-${i}`).every((ns) => fresh.some((s) => s.ns === ns && s.password === 'second')) ? true : undefined;
  }, 15_000);
  t.pass(`every scaler uses the new password ${Date.now() - rotatedAt} ms after the first Secret changed (polls every second, no scaler failed to get there)`);
  accepted.delete('first');
  const after = seen.length;
  await new Promise((r) => setTimeout(r, 3000));
  t.equal(seen.slice(after).filter((s) => !s.ok).length, 0, 'nothing uses the old password any more');
  t.equal(seen.slice(before).filter((s) => !s.ok).length, 0, 'no poll failed during the rotation');
  t.equal((await healthOf('order-0'))?.status, 'Happy');
});

t.test('kube-apiserver restarts: watches resume, an edit made while it was down is picked up, the metric path works again', async (t) => {
  const ns = 'order-1';
  await cp.stopApiServer();
  // While it is down, an edit straight into etcd (custom resources are stored as JSON):
  // maxReplicaCount 10 -> 2, with the generation a spec change gets.
  const key = `/registry/keda.sh/scaledobjects/${ns}/app`;
  const etcd = async (op: string, body: unknown) => (await (await fetch(`${cp.etcdUrl}/v3/kv/${op}`, { method: 'POST', body: JSON.stringify(body) })).json()) as { kvs?: { value: string }[] };
  const stored = JSON.parse(Buffer.from((await etcd('range', { key: Buffer.from(key).toString('base64') })).kvs![0]!.value, 'base64').toString()) as Obj;
  stored.spec!.maxReplicaCount = 2;
  stored.metadata!.generation = (stored.metadata!.generation ?? 1) + 1;
  await etcd('put', { key: Buffer.from(key).toString('base64'), value: Buffer.from(JSON.stringify(stored)).toString('base64') });
  await new Promise((r) => setTimeout(r, 3000));
  await cp.startApiServer();

  await eventually('the HPA follows the edit made while kube-apiserver was down', async () => ((await kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', ns, 'keda-hpa-app'))?.spec?.maxReplicas === 2 ? true : undefined), 60_000);
  await eventually('and the HPA controller scales down to it, from our metric', async () => ((await replicasOf(kube, ns, 'app')) === 2 ? true : undefined), 60_000);
  const raw = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, 'get', '--raw', `/apis/external.metrics.k8s.io/v1beta1/namespaces/${ns}/s0-metric-api-queue-depth?labelSelector=${encodeURIComponent('scaledobject.keda.sh/name=app')}`]);
  t.equal(raw.code, 0, raw.stderr);
  t.match(JSON.parse(raw.stdout), { kind: 'ExternalMetricValueList', items: [{ metricName: 's0-metric-api-queue-depth', value: '30' }] }, 'the metric through the aggregator, after the restart');
  // A change made after the restart reaches the operator too (its watches are live again).
  await kube.mergePatch('keda.sh/v1alpha1', 'ScaledObject', ns, 'app', { spec: { maxReplicaCount: 5 } });
  await eventually('a new edit after the restart', async () => ((await kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', ns, 'keda-hpa-app'))?.spec?.maxReplicas === 5 ? true : undefined), 30_000);
  t.ok(operator.logs.some((l) => l.msg === 'watch interrupted, restarting'), 'the operator saw its watches drop');
});
