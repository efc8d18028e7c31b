// The informer (src/k8s/informer.ts) against a real kube-apiserver (envtest): paged lists, watch
// events, metadata-only watches that never carry a Secret's data, a kube-apiserver restart with
// changes made meanwhile turned into the right events, RBAC refusals, and a prompt stop. (Refused
// lists, dropped watches and compaction on demand are in test/operator/scaling-faults.test.ts,
// against the fake.)
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeClient } from '../../src/k8s/client.js';
import type { KubeObject } from '../../src/k8s/types.js';
import { pino } from 'pino';
import { ForbiddenError, informer, type InformerEvent } from '../../src/k8s/informer.js';
import { startControlPlane } from '../helpers/envtest.js';
import { Kube, namespace, secret } from '../helpers/kube.js';
import { eventually } from '../helpers/loop.js';
import { freePort } from '../helpers/adapter.js';

const cp = await startControlPlane(t, { controllerManager: false });
const kube = new Kube(cp.adminKubeconfig);
const kcOf = (file: string) => {
  const kc = KubeClient.fromKubeconfig(file);
  t.teardown(() => kc.close());
  return kc;
};
const admin = kcOf(cp.adminKubeconfig);
// The informers' reconnection delays, by informer, to see them back off.
const retries: { informer: string; retryInMs: number }[] = [];
const log = pino({ level: 'warn' }, { write: (line: string) => void retries.push(JSON.parse(line) as { informer: string; retryInMs: number }) });
await kube.create(namespace('inf'));

type Seen = { event: InformerEvent; name: string; obj: KubeObject & { data?: unknown } };
function watch(path: string, opts: { metadataOnly?: boolean; pageSize?: number; kc?: KubeClient; stopOnForbidden?: boolean; name?: string } = {}) {
  const seen: Seen[] = [];
  const i = informer<KubeObject & { data?: unknown }>({ client: opts.kc ?? admin, path, name: opts.name ?? path, log, ...opts });
  i.onObject((obj, event) => seen.push({ event, name: obj.metadata?.name ?? '', obj }));
  t.teardown(() => i.stop());
  return { i, seen };
}

t.test('lists in pages, then follows adds, updates and deletes', async (t) => {
  for (let n = 0; n < 7; n++) await kube.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${n}`, namespace: 'inf' }, data: { n: String(n) } });
  const { i, seen } = watch('/api/v1/namespaces/inf/configmaps', { pageSize: 3 });
  await i.start();
  t.strictSame(seen.filter((s) => s.name.startsWith('cm-')).map((s) => `${s.event} ${s.name}`), Array.from({ length: 7 }, (_, n) => `add cm-${n}`), 'three pages, every object once');
  await kube.mergePatch('v1', 'ConfigMap', 'inf', 'cm-0', { data: { n: 'zero' } });
  await kube.delete('v1', 'ConfigMap', 'inf', 'cm-1');
  await kube.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm-new', namespace: 'inf' }, data: {} });
  await eventually('the three changes', async () => (seen.length >= 10 ? true : undefined));
  t.strictSame(seen.slice(7).map((s) => `${s.event} ${s.name}`), ['update cm-0', 'delete cm-1', 'add cm-new']);
  t.equal(i.size, 7);
});

t.test('metadata only: a Secret\'s data never reaches the operator, and managedFields are dropped', async (t) => {
  await kube.create(secret('inf', 'top-secret', { password: 'hunter2' }));
  const { i, seen } = watch('/api/v1/namespaces/inf/secrets', { metadataOnly: true });
  await i.start();
  await kube.mergePatch('v1', 'Secret', 'inf', 'top-secret', { stringData: { password: 'hunter3' } });
  await eventually('the update', async () => (seen.some((s) => s.event === 'update' && s.name === 'top-secret') ? true : undefined));
  for (const s of seen.filter((x) => x.name === 'top-secret')) {
    t.equal(s.obj.kind, 'PartialObjectMetadata', `${s.event}: PartialObjectMetadata`);
    t.notOk('data' in s.obj, `${s.event}: no data`);
    t.notOk(s.obj.metadata?.managedFields, `${s.event}: no managedFields`);
    t.notMatch(JSON.stringify(s.obj), /hunter|aHVudGVy/, `${s.event}: the value nowhere`);
  }
});

t.test('kube-apiserver restarts: what changed while it was down arrives as adds and deletes', async (t) => {
  const { i, seen } = watch('/api/v1/namespaces/inf/configmaps');
  await i.start();
  const before = seen.length;
  await cp.stopApiServer();
  // Changes behind the API server's back: one ConfigMap removed from etcd directly.
  const key = Buffer.from('/registry/configmaps/inf/cm-2').toString('base64');
  const res = await fetch(`${cp.etcdUrl}/v3/kv/deleterange`, { method: 'POST', body: JSON.stringify({ key }) });
  t.match(await res.json(), { deleted: '1' });
  await cp.startApiServer();
  await kube.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm-after', namespace: 'inf' }, data: {} });
  await eventually('the delete and the add', async () => {
    const after = seen.slice(before).map((s) => `${s.event} ${s.name}`);
    return after.includes('delete cm-2') && after.includes('add cm-after') ? after : undefined;
  }, 40_000);
  t.notOk(seen.slice(before).some((s) => s.name === 'cm-0'), 'objects that did not change are not announced again');
});

t.test('nobody answering: attempts back off, doubling', async (t) => {
  const file = join(t.testdir(), 'kubeconfig');
  const config = JSON.parse(await readFile(cp.adminKubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
  config.clusters[0]!.cluster.server = `https://127.0.0.1:${await freePort()}`;
  await writeFile(file, JSON.stringify(config));
  const gone = kcOf(file);
  const { i } = watch('/api/v1/namespaces/inf/configmaps', { kc: gone, name: 'nobody there' });
  void i.start().catch(() => undefined);
  const delays = await eventually('four attempts', async () => {
    const d = retries.filter((r) => r.informer === 'nobody there').map((r) => r.retryInMs);
    return d.length >= 4 ? d : undefined;
  });
  t.strictSame(delays.slice(0, 4), [250, 500, 1000, 2000]);
  await i.stop();
});

t.test('RBAC: a forbidden list is retried until the permission appears, or ends the informer when asked to', async (t) => {
  const nobody = kcOf(await cp.kubeconfigFor('nobody'));
  const { i } = watch('/api/v1/namespaces/inf/secrets', { kc: nobody, metadataOnly: true, stopOnForbidden: true });
  await t.rejects(i.start(), ForbiddenError);
  await t.rejects(i.start(), /secrets is forbidden: User "nobody" cannot list resource "secrets" in API group "" in the namespace "inf"/);

  // Without stopOnForbidden (the default), RBAC applied after the informer started lets it in.
  const { i: patient, seen } = watch('/api/v1/namespaces/inf/configmaps', { kc: nobody });
  let started = false;
  const starting = patient.start().then(() => (started = true));
  await new Promise((r) => setTimeout(r, 1000));
  t.notOk(started, 'still waiting while forbidden');
  await kube.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'read-cm', namespace: 'inf' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['list', 'watch'] }] });
  await kube.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'nobody-reads-cm', namespace: 'inf' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-cm' }, subjects: [{ kind: 'User', name: 'nobody' }] });
  await starting;
  t.ok(seen.some((s) => s.name === 'cm-0'), 'listed once permitted');
});

t.test('stop() ends a running watch at once', async (t) => {
  const { i } = watch('/api/v1/namespaces/inf/configmaps');
  await i.start();
  const started = Date.now();
  await i.stop();
  t.ok(Date.now() - started < 1000, `stopped in ${Date.now() - started} ms`);
});
