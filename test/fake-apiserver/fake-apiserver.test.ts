// The fake kube-apiserver, driven by @kubernetes/client-node exactly as the code under test drives
// a cluster: a kubeconfig file, the generated API clients, Watch and informers.
//
// What the fake simplifies (everything else aims to match kube-apiserver):
// - Strategic merge patch knows the merge keys of the list fields of our built-in types only
//   (finalizers, ownerReferences, containers, env, conditions, webhooks, ...); other lists are replaced.
// - Server-side apply is a JSON merge of the applied configuration: no field ownership, no
//   managedFields, fields dropped from the configuration are not removed, no conflicts.
// - No controllers: Deployments never get status, namespaces are emptied at once when deleted
//   (finalizers of their content ignored), no garbage collection (propagationPolicy ignored),
//   no "default" ServiceAccount.
// - Validation is limited to names, the resourceVersion rules, finalizers of deleting objects,
//   TokenRequest expiry and review specs; type schemas are not checked.
// - List resourceVersion / resourceVersionMatch are ignored (always the latest state); continue
//   tokens never expire. Watch history is per resource and bounded (historyLimit).
// - Admission: NamespaceLifecycle's "namespace not found" on create only. Admission webhooks are
//   not emulated (ValidatingWebhookConfigurations are stored, never called): the real control
//   plane tests them (test/e2e/admission.test.ts).
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  ApiException,
  ApiregistrationV1Api,
  AppsV1Api,
  AuthenticationV1Api,
  AuthorizationV1Api,
  AutoscalingV2Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  type ListWatch,
  PatchStrategy,
  Watch,
  makeInformer,
  setHeaderOptions,
  type KubernetesObject,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { ApiStatusError, startFakeApiServer, type KubeObject, type RequestAttributes, type Status } from '../helpers/fake-apiserver.js';
import { get as httpsGet } from '../helpers/https.js';

const dir = await mkdtemp(join(tmpdir(), 'fake-apiserver-'));
const api = await startFakeApiServer({ bookmarkIntervalMs: 100, historyLimit: 50, tooLargeResourceVersionWaitMs: 300 });
t.teardown(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

async function kubeConfig(opts?: Parameters<typeof api.writeKubeconfig>[1]): Promise<KubeConfig> {
  const kc = new KubeConfig();
  kc.loadFromFile(await api.writeKubeconfig(dir, opts));
  return kc;
}

const kc = await kubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

/** The failure of a client-node call: HTTP code and the Status body. */
async function failure(p: Promise<unknown>): Promise<{ code: number; status: Status; headers: Record<string, string> }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiException) {
      const body = err.body as string | undefined;
      return { code: err.code, status: body ? (JSON.parse(body) as Status) : (undefined as unknown as Status), headers: err.headers as Record<string, string> };
    }
    throw err;
  }
  throw new Error('expected the call to fail');
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the call to fail');
}

const ns = (name: string) => api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

interface Seen {
  type: string;
  obj: KubeObject;
}

/** A client-node Watch, collecting events until done. */
async function watch(path: string, query: Record<string, string | number | boolean | undefined>, config = kc) {
  const events: Seen[] = [];
  let doneErr: unknown = 'not done';
  const controller = await new Watch(config).watch(
    path,
    query,
    (type, obj) => events.push({ type, obj: obj as KubeObject }),
    (err) => {
      doneErr = err;
    },
  );
  return {
    events,
    get done() {
      return doneErr !== 'not done';
    },
    get error() {
      return doneErr === 'not done' ? undefined : doneErr;
    },
    abort: () => controller.abort(),
  };
}

t.test('discovery, as KubernetesObjectApi uses it', async (t) => {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const created = await objects.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'generic', namespace: 'default' }, data: { a: '1' } } as KubernetesObject);
  t.equal(created.metadata?.name, 'generic');
  const so = await objects.create({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'generic', namespace: 'default' },
    spec: { scaleTargetRef: { name: 'x' } },
  } as KubernetesObject);
  t.equal(so.metadata?.generation, 1);
  const paths = api.requests.map((r) => r.path);
  t.ok(paths.includes('/api/v1') && paths.includes('/apis/keda.sh/v1alpha1'), 'resource lists fetched');

  const apis = await httpsGet({ port: api.port, path: '/apis', ca: api.caPem, headers: [['Authorization', `Bearer ${api.adminToken}`]] });
  const groups = apis.json<{ groups: { name: string }[] }>().groups.map((g) => g.name);
  t.ok(['keda.sh', 'apiregistration.k8s.io', 'coordination.k8s.io', 'authorization.k8s.io'].every((g) => groups.includes(g)));
  const core = await httpsGet({ port: api.port, path: '/api/v1', ca: api.caPem, headers: [['Authorization', `Bearer ${api.adminToken}`]] });
  const names = core.json<{ resources: { name: string; kind: string }[] }>().resources.map((r) => r.name);
  t.ok(names.includes('serviceaccounts/token') && names.includes('configmaps') && names.includes('namespaces/status'));

  const anon = await httpsGet({ port: api.port, path: '/apis', ca: api.caPem });
  t.equal(anon.status, 200, 'anonymous may discover');
  const anonList = await httpsGet({ port: api.port, path: '/api/v1/namespaces', ca: api.caPem });
  t.equal(anonList.status, 403);
  t.equal(anonList.json<Status>().message, 'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" in API group "" at the cluster scope');

  const unknown = await httpsGet({ port: api.port, path: '/apis/nope.example.com/v1/things', ca: api.caPem, headers: [['Authorization', `Bearer ${api.adminToken}`]] });
  t.equal(unknown.status, 404);
  t.match(unknown.json<Status>(), { kind: 'Status', reason: 'NotFound', message: 'the server could not find the requested resource', code: 404 });
  const unknownResource = await httpsGet({ port: api.port, path: '/api/v1/namespaces/default/widgets', ca: api.caPem, headers: [['Authorization', `Bearer ${api.adminToken}`]] });
  t.equal(unknownResource.status, 404);
  const wrongMethod = await httpsGet({ port: api.port, method: 'PUT', path: '/api/v1/namespaces/default/configmaps', ca: api.caPem, headers: [['Authorization', `Bearer ${api.adminToken}`]] });
  t.equal(wrongMethod.status, 405);
  t.equal(wrongMethod.json<Status>().reason, 'MethodNotAllowed');
});

t.test('ConfigMaps: create, get, list, update, conflicts, delete', async (t) => {
  ns('cm');
  const created = await core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: { name: 'a', labels: { app: 'x' } }, data: { k: 'v1' } } });
  t.match(created.metadata, { name: 'a', namespace: 'cm', uid: /^[0-9a-f-]{36}$/, resourceVersion: /^\d+$/ });
  t.type(created.metadata?.creationTimestamp, Date);
  t.equal(created.metadata?.generation, undefined, 'ConfigMaps have no generation');
  t.equal(api.requests.at(-1)?.status, 201);

  const dup = await failure(core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: { name: 'a' } } }));
  t.equal(dup.code, 409);
  t.same(dup.status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'configmaps "a" already exists',
    reason: 'AlreadyExists',
    details: { name: 'a', kind: 'configmaps' },
    code: 409,
  });

  await core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: { name: 'b', labels: { app: 'y' } } } });
  const gen = await core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: { generateName: 'gen-' } } });
  t.match(gen.metadata?.name, /^gen-[a-z0-9]{5}$/);

  const list = await core.listNamespacedConfigMap({ namespace: 'cm' });
  t.same(list.items.map((i) => i.metadata?.name), ['a', 'b', gen.metadata?.name], 'sorted by name');
  t.equal(list.items[0]?.kind, undefined, 'typed list items carry no kind, as from kube-apiserver');
  t.equal(list.metadata?.resourceVersion, api.resourceVersion);
  t.same((await core.listNamespacedConfigMap({ namespace: 'cm', labelSelector: 'app in (x,z)' })).items.map((i) => i.metadata?.name), ['a']);
  t.same((await core.listNamespacedConfigMap({ namespace: 'cm', labelSelector: 'app!=x' })).items.map((i) => i.metadata?.name), ['b', gen.metadata?.name]);
  t.same((await core.listNamespacedConfigMap({ namespace: 'cm', fieldSelector: 'metadata.name=b' })).items.map((i) => i.metadata?.name), ['b']);
  const paged = await core.listNamespacedConfigMap({ namespace: 'cm', limit: 2 });
  t.equal(paged.items.length, 2);
  t.equal(paged.metadata?.remainingItemCount, 1);
  const rest = await core.listNamespacedConfigMap({ namespace: 'cm', limit: 2, _continue: paged.metadata?._continue });
  t.same(rest.items.map((i) => i.metadata?.name), [gen.metadata?.name]);
  const badField = await failure(core.listNamespacedConfigMap({ namespace: 'cm', fieldSelector: 'spec.x=1' }));
  t.match(badField, { code: 400, status: { reason: 'BadRequest', message: 'field label not supported: spec.x' } });
  t.ok((await core.listConfigMapForAllNamespaces()).items.some((i) => i.metadata?.namespace === 'cm'), 'all-namespaces list');

  const got = await core.readNamespacedConfigMap({ name: 'a', namespace: 'cm' });
  got.data = { k: 'v2' };
  const updated = await core.replaceNamespacedConfigMap({ name: 'a', namespace: 'cm', body: got });
  t.ok(Number(updated.metadata?.resourceVersion) > Number(got.metadata?.resourceVersion));
  t.same(updated.data, { k: 'v2' });

  const stale = await failure(core.replaceNamespacedConfigMap({ name: 'a', namespace: 'cm', body: got }));
  t.same(stale.status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'Operation cannot be fulfilled on configmaps "a": the object has been modified; please apply your changes to the latest version and try again',
    reason: 'Conflict',
    details: { name: 'a', kind: 'configmaps' },
    code: 409,
  });

  const noop = await core.replaceNamespacedConfigMap({ name: 'a', namespace: 'cm', body: updated });
  t.equal(noop.metadata?.resourceVersion, updated.metadata?.resourceVersion, 'an update that changes nothing is not written');
  const unconditional = await core.replaceNamespacedConfigMap({ name: 'a', namespace: 'cm', body: { metadata: { name: 'a' }, data: { k: 'v3' } } });
  t.same(unconditional.data, { k: 'v3' }, 'ConfigMaps allow unconditional update');
  t.equal(unconditional.metadata?.uid, created.metadata?.uid);

  const mismatch = await failure(core.replaceNamespacedConfigMap({ name: 'a', namespace: 'cm', body: { metadata: { name: 'other' } } }));
  t.match(mismatch, { code: 400, status: { message: 'the name of the object (other) does not match the name on the URL (a)' } });

  const deleted = await core.deleteNamespacedConfigMap({ name: 'b', namespace: 'cm' });
  t.match(deleted, { status: 'Success', details: { name: 'b', kind: 'configmaps' } });
  const missing = await failure(core.readNamespacedConfigMap({ name: 'b', namespace: 'cm' }));
  t.same(missing.status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'configmaps "b" not found',
    reason: 'NotFound',
    details: { name: 'b', kind: 'configmaps' },
    code: 404,
  });
  t.equal((await failure(core.deleteNamespacedConfigMap({ name: 'b', namespace: 'cm' }))).code, 404);

  const precondition = await failure(core.deleteNamespacedConfigMap({ name: 'a', namespace: 'cm', body: { preconditions: { uid: 'nope' } } }));
  t.equal(precondition.code, 409);
  t.equal(precondition.status.message, `Operation cannot be fulfilled on configmaps "a": Precondition failed: UID in precondition: nope, UID in object meta: ${created.metadata?.uid}`);

  const noNs = await failure(core.createNamespacedConfigMap({ namespace: 'absent', body: { metadata: { name: 'x' } } }));
  t.match(noNs, { code: 404, status: { message: 'namespaces "absent" not found', details: { name: 'absent', kind: 'namespaces' } } });
  const badName = await failure(core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: { name: 'Bad_Name' } } }));
  t.equal(badName.code, 422);
  t.match(badName.status, { reason: 'Invalid', message: /^ConfigMap "Bad_Name" is invalid: metadata\.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/, details: { kind: 'ConfigMap', causes: [{ field: 'metadata.name' }] } });
  const noName = await failure(core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: {} } }));
  t.equal(noName.status.message, 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required');
  const withRv = await failure(core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: { name: 'rv', resourceVersion: '5' } } }));
  t.match(withRv, { code: 500, status: { message: 'resourceVersion should not be set on objects to be created' } });

  await core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: { name: 'c1', labels: { batch: '1' } } } });
  await core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: { name: 'c2', labels: { batch: '1' } } } });
  await core.deleteCollectionNamespacedConfigMap({ namespace: 'cm', labelSelector: 'batch=1' });
  t.equal(api.requests.at(-1)?.status, 200, 'answered with the list of deleted objects (client-node reads it as a V1Status)');
  t.same(api.list('v1', 'ConfigMap', 'cm').map((o) => o.metadata?.name), ['a', gen.metadata?.name], 'deletecollection honours the selector');

  const dry = await core.createNamespacedConfigMap({ namespace: 'cm', body: { metadata: { name: 'dry' } }, dryRun: 'All' });
  t.equal(dry.metadata?.name, 'dry');
  t.equal(api.get('v1', 'ConfigMap', 'cm', 'dry'), undefined, 'dry run not persisted');
});

t.test('patches: merge with resourceVersion, JSON patch, strategic merge', async (t) => {
  ns('patch');
  const cm = await core.createNamespacedConfigMap({ namespace: 'patch', body: { metadata: { name: 'p', finalizers: ['a'] }, data: { x: '1', y: '2' } } });
  const rv = cm.metadata!.resourceVersion!;

  const patched = await core.patchNamespacedConfigMap({ name: 'p', namespace: 'patch', body: { metadata: { resourceVersion: rv }, data: { x: '10', y: null } } }, merge);
  t.same(patched.data, { x: '10' });
  t.equal(api.requests.at(-1)?.headers['content-type'], 'application/merge-patch+json');
  const stale = await failure(core.patchNamespacedConfigMap({ name: 'p', namespace: 'patch', body: { metadata: { resourceVersion: rv }, data: { x: '11' } } }, merge));
  t.match(stale, { code: 409, status: { reason: 'Conflict', message: /^Operation cannot be fulfilled on configmaps "p": the object has been modified/ } });
  const unconditional = await core.patchNamespacedConfigMap({ name: 'p', namespace: 'patch', body: { data: { z: '3' } } }, merge);
  t.same(unconditional.data, { x: '10', z: '3' });

  // client-node's default patch type is JSON patch.
  const jp = await core.patchNamespacedConfigMap({ name: 'p', namespace: 'patch', body: [{ op: 'replace', path: '/data/x', value: 'jp' }, { op: 'add', path: '/metadata/labels', value: { l: '1' } }] });
  t.equal(api.requests.at(-1)?.headers['content-type'], 'application/json-patch+json');
  t.same(jp.data, { x: 'jp', z: '3' });
  const notAList = await failure(core.patchNamespacedConfigMap({ name: 'p', namespace: 'patch', body: { data: { x: '1' } } }));
  t.match(notAList, { code: 400, status: { reason: 'BadRequest' } }, 'a merge body sent as JSON patch is refused, as by kube-apiserver');
  const testFails = await failure(core.patchNamespacedConfigMap({ name: 'p', namespace: 'patch', body: [{ op: 'test', path: '/data/x', value: 'nope' }] }));
  t.match(testFails, { code: 422, status: { reason: 'Invalid' } });

  const smp = await core.patchNamespacedConfigMap({ name: 'p', namespace: 'patch', body: { metadata: { finalizers: ['b'] } } }, strategic);
  t.same(smp.metadata?.finalizers, ['a', 'b'], 'strategic merge unions finalizers');
  const mp = await core.patchNamespacedConfigMap({ name: 'p', namespace: 'patch', body: { metadata: { finalizers: ['c'] } } }, merge);
  t.same(mp.metadata?.finalizers, ['c'], 'merge patch replaces lists');

  const absent = await failure(core.patchNamespacedConfigMap({ name: 'nope', namespace: 'patch', body: { data: {} } }, merge));
  t.equal(absent.code, 404);
  const unsupported = await failure(core.patchNamespacedConfigMap({ name: 'p', namespace: 'patch', body: {} }, setHeaderOptions('Content-Type', 'application/json')));
  t.match(unsupported, { code: 415, status: { reason: 'UnsupportedMediaType' } });
});

t.test('server-side apply through KubernetesObjectApi', async (t) => {
  ns('ssa');
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const spec = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: 'ssa' }, data: { a: '1' } } as KubernetesObject;
  const created = await objects.patch(spec, undefined, undefined, 'tests', true, PatchStrategy.ServerSideApply);
  t.equal(api.requests.at(-1)?.status, 201);
  t.equal(created.metadata?.name, 'applied');
  const again = await objects.patch({ ...spec, data: { a: '2' } } as KubernetesObject, undefined, undefined, 'tests', true, PatchStrategy.ServerSideApply);
  t.same((again as V1ConfigMap).data, { a: '2' });
  const noManager = await failure(objects.patch(spec, undefined, undefined, undefined, undefined, PatchStrategy.ServerSideApply));
  t.equal(noManager.code, 422);
});

t.test('Secrets, ServiceAccounts, Events, Namespaces', async (t) => {
  ns('misc');
  const secret = await core.createNamespacedSecret({ namespace: 'misc', body: { metadata: { name: 's' }, stringData: { password: 'hunter2' } } });
  t.equal(secret.type, 'Opaque');
  t.same(secret.data, { password: Buffer.from('hunter2').toString('base64') });
  t.equal(secret.stringData, undefined);
  t.same((await core.listNamespacedSecret({ namespace: 'misc', fieldSelector: 'type=Opaque' })).items.length, 1);

  const sa = await core.createNamespacedServiceAccount({ namespace: 'misc', body: { metadata: { name: 'robot' } } });
  const deletedSa = await core.deleteNamespacedServiceAccount({ name: 'robot', namespace: 'misc' });
  t.equal((deletedSa as unknown as KubeObject).kind, 'ServiceAccount', 'ServiceAccount deletion returns the object');
  t.equal(deletedSa.metadata?.uid, sa.metadata?.uid);

  const ev = await core.createNamespacedEvent({
    namespace: 'misc',
    body: { metadata: { name: 'so.123' }, involvedObject: { kind: 'ScaledObject', name: 'so', namespace: 'misc' }, reason: 'Ready', message: 'hi', type: 'Normal' },
  });
  t.equal(ev.reason, 'Ready');
  t.same((await core.listNamespacedEvent({ namespace: 'misc', fieldSelector: 'involvedObject.name=so,reason=Ready' })).items.map((e) => e.metadata?.name), ['so.123']);

  const namespace = await core.readNamespace({ name: 'misc' });
  t.equal(namespace.status?.phase, 'Active');
  t.equal(namespace.metadata?.labels?.['kubernetes.io/metadata.name'], 'misc');
  t.ok((await core.listNamespace()).items.some((n) => n.metadata?.name === 'kube-system'));
  const created = await core.createNamespace({ body: { metadata: { name: 'doomed' } } });
  t.equal(created.status?.phase, 'Active');
  await core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'c' } } });
  const terminating = await core.deleteNamespace({ name: 'doomed' });
  t.equal((terminating as unknown as KubeObject).kind, 'Namespace');
  t.equal(api.get('v1', 'ConfigMap', 'doomed', 'c'), undefined, 'content removed with the namespace');
  t.equal((await failure(core.readNamespace({ name: 'doomed' }))).code, 404);
});

t.test('ServiceAccount token subresource', async (t) => {
  ns('tok');
  await core.createNamespacedServiceAccount({ namespace: 'tok', body: { metadata: { name: 'adapter' } } });
  const before = Date.now();
  const tr = await core.createNamespacedServiceAccountToken({ name: 'adapter', namespace: 'tok', body: { spec: { audiences: ['https://kubernetes.default.svc.cluster.local'], expirationSeconds: 3600 } } });
  t.equal(api.requests.at(-1)?.path, '/api/v1/namespaces/tok/serviceaccounts/adapter/token');
  t.equal(api.requests.at(-1)?.status, 201);
  t.type(tr.status?.token, 'string');
  const exp = tr.status!.expirationTimestamp!.getTime();
  t.ok(exp >= before + 3_599_000 && exp <= Date.now() + 3_601_000, 'expires in an hour');

  // The token works against the fake itself, as the service account.
  const saCore = (await kubeConfig({ token: tr.status!.token })).makeApiClient(CoreV1Api);
  await saCore.listNamespacedConfigMap({ namespace: 'tok' });
  t.equal(api.requests.at(-1)?.user?.username, 'system:serviceaccount:tok:adapter');
  t.ok(api.requests.at(-1)?.user?.groups?.includes('system:serviceaccounts:tok'));

  t.equal((await failure(core.createNamespacedServiceAccountToken({ name: 'ghost', namespace: 'tok', body: { spec: {} } }))).status.message, 'serviceaccounts "ghost" not found');
  const short = await failure(core.createNamespacedServiceAccountToken({ name: 'adapter', namespace: 'tok', body: { spec: { expirationSeconds: 60 } } }));
  t.match(short, { code: 422, status: { message: 'TokenRequest.authentication.k8s.io "adapter" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes' } });

  api.onTokenRequest(({ spec }) => ({ token: `custom-${spec.audiences?.join(',')}`, expirationTimestamp: new Date('2030-01-01T00:00:00Z') }));
  const customTr = await core.createNamespacedServiceAccountToken({ name: 'adapter', namespace: 'tok', body: { spec: { audiences: ['aud'] } } });
  t.equal(customTr.status?.token, 'custom-aud');
  t.equal(customTr.status?.expirationTimestamp?.toISOString(), '2030-01-01T00:00:00.000Z');
  api.onTokenRequest(() => {
    throw new ApiStatusError(403, 'Forbidden', 'serviceaccounts "adapter" is forbidden: no');
  });
  t.equal((await failure(core.createNamespacedServiceAccountToken({ name: 'adapter', namespace: 'tok', body: { spec: {} } }))).code, 403);
  api.onTokenRequest(undefined);

  // A token for another audience does not authenticate to the API server.
  const other = await core.createNamespacedServiceAccountToken({ name: 'adapter', namespace: 'tok', body: { spec: { audiences: ['vault'] } } });
  const wrongAud = (await kubeConfig({ token: other.status!.token })).makeApiClient(CoreV1Api);
  t.equal((await failure(wrongAud.listNamespacedConfigMap({ namespace: 'tok' }))).code, 401);
});

t.test('APIServices, ValidatingWebhookConfigurations, Leases', async (t) => {
  const reg = kc.makeApiClient(ApiregistrationV1Api);
  const svc = await reg.createAPIService({
    body: {
      metadata: { name: 'v1beta1.external.metrics.k8s.io' },
      spec: { group: 'external.metrics.k8s.io', version: 'v1beta1', groupPriorityMinimum: 100, versionPriority: 100, service: { name: 'adapter', namespace: 'keda' } },
      status: { conditions: [{ type: 'Available', status: 'True', lastTransitionTime: new Date(), reason: 'Lie', message: '' }] },
    },
  });
  t.same(svc.status, {}, 'status is cleared on create');
  const local = await reg.createAPIService({ body: { metadata: { name: 'v1.local.example.com' }, spec: { group: 'local.example.com', version: 'v1', groupPriorityMinimum: 1, versionPriority: 1 } } });
  t.match(local.status?.conditions?.[0], { type: 'Available', status: 'True', reason: 'Local' });
  const badName = await failure(reg.createAPIService({ body: { metadata: { name: 'wrong' }, spec: { group: 'g.example.com', version: 'v1', groupPriorityMinimum: 1, versionPriority: 1 } } }));
  t.equal(badName.status.message, 'APIService.apiregistration.k8s.io "wrong" is invalid: metadata.name: Invalid value: "wrong": must be spec.version+"."+spec.group');
  const noRv = await failure(reg.replaceAPIService({ name: svc.metadata!.name!, body: { ...svc, metadata: { name: svc.metadata!.name! } } }));
  t.match(noRv, { code: 422, status: { message: /metadata\.resourceVersion: Invalid value: 0x0|metadata\.resourceVersion: Invalid value: 0: must be specified for an update/ } });
  const withStatus = await reg.replaceAPIServiceStatus({
    name: svc.metadata!.name!,
    body: { ...svc, status: { conditions: [{ type: 'Available', status: 'False', lastTransitionTime: new Date(), reason: 'FailedDiscoveryCheck', message: 'x' }] } },
  });
  t.equal(withStatus.status?.conditions?.[0]?.reason, 'FailedDiscoveryCheck');
  const paths = api.requests.map((r) => r.path);
  t.ok(paths.includes('/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.external.metrics.k8s.io/status'));
  await reg.deleteAPIService({ name: svc.metadata!.name! });
  t.equal((await failure(reg.readAPIService({ name: svc.metadata!.name! }))).status.message, 'apiservices.apiregistration.k8s.io "v1beta1.external.metrics.k8s.io" not found');

  const adm = kc.makeApiClient(AdmissionregistrationV1Api);
  const hook = {
    name: 'validate.keda.sh',
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    clientConfig: { service: { name: 'hooks', namespace: 'keda' } },
  };
  const vwc = await adm.createValidatingWebhookConfiguration({ body: { metadata: { name: 'keda' }, webhooks: [hook] } });
  t.equal(vwc.metadata?.generation, 1);
  t.equal(vwc.metadata?.namespace, undefined, 'cluster-scoped');
  const relabeled = await adm.replaceValidatingWebhookConfiguration({ name: 'keda', body: { ...vwc, metadata: { ...vwc.metadata, labels: { a: 'b' } } } });
  t.equal(relabeled.metadata?.generation, 1, 'metadata changes keep the generation');
  const rehooked = await adm.replaceValidatingWebhookConfiguration({
    name: 'keda',
    body: { ...relabeled, webhooks: [{ ...hook, clientConfig: { ...hook.clientConfig, caBundle: Buffer.from('ca').toString('base64') } }] },
  });
  t.equal(rehooked.metadata?.generation, 2);

  ns('leases');
  const coord = kc.makeApiClient(CoordinationV1Api);
  const lease = await coord.createNamespacedLease({ namespace: 'leases', body: { metadata: { name: 'leader' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } } });
  const renewed = await coord.replaceNamespacedLease({ name: 'leader', namespace: 'leases', body: { ...lease, spec: { ...lease.spec, renewTime: new Date() } } });
  t.not(renewed.metadata?.resourceVersion, lease.metadata?.resourceVersion);
  const raced = await failure(coord.replaceNamespacedLease({ name: 'leader', namespace: 'leases', body: { ...lease, spec: { ...lease.spec, holderIdentity: 'b' } } }));
  t.match(raced, { code: 409, status: { message: /^Operation cannot be fulfilled on leases\.coordination\.k8s\.io "leader": the object has been modified/ } });
  const unconditional = await failure(coord.replaceNamespacedLease({ name: 'leader', namespace: 'leases', body: { metadata: { name: 'leader' }, spec: {} } }));
  t.equal(unconditional.code, 422, 'Leases need a resourceVersion to update');
  const putCreated = await coord.replaceNamespacedLease({ name: 'other', namespace: 'leases', body: { metadata: { name: 'other' }, spec: { holderIdentity: 'c' } } });
  t.equal(putCreated.spec?.holderIdentity, 'c', 'Leases can be created with PUT');
  t.equal(api.requests.at(-1)?.status, 201);
});

t.test('HPAs and Deployments: generation, status, scale', async (t) => {
  ns('apps');
  const apps = kc.makeApiClient(AppsV1Api);
  const dep = await apps.createNamespacedDeployment({
    namespace: 'apps',
    body: {
      metadata: { name: 'web' },
      spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'nginx' }] } } },
    },
  });
  t.equal(dep.metadata?.generation, 1);
  api.modify('apps/v1', 'Deployment', 'apps', 'web', (d) => {
    d.status = { replicas: 2, readyReplicas: 2 };
  });
  const scale = await apps.readNamespacedDeploymentScale({ name: 'web', namespace: 'apps' });
  t.match(scale, { kind: 'Scale', apiVersion: 'autoscaling/v1', spec: { replicas: 2 }, status: { replicas: 2, selector: 'app=web' } });
  const scaled = await apps.patchNamespacedDeploymentScale({ name: 'web', namespace: 'apps', body: { spec: { replicas: 5 } } }, merge);
  t.equal(scaled.spec?.replicas, 5);
  const after = await apps.readNamespacedDeployment({ name: 'web', namespace: 'apps' });
  t.equal(after.spec?.replicas, 5);
  t.equal(after.metadata?.generation, 2, 'scaling changes the spec');
  const staleScale = await failure(apps.replaceNamespacedDeploymentScale({ name: 'web', namespace: 'apps', body: { ...scale, spec: { replicas: 1 } } }));
  t.equal(staleScale.status.message, 'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again');

  const as = kc.makeApiClient(AutoscalingV2Api);
  const hpa = await as.createNamespacedHorizontalPodAutoscaler({
    namespace: 'apps',
    body: {
      metadata: { name: 'keda-hpa-web' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, maxReplicas: 10 },
      status: { currentReplicas: 7, desiredReplicas: 7 },
    },
  });
  t.equal(hpa.spec?.minReplicas, 1, 'defaulted');
  t.equal(hpa.status?.currentReplicas, undefined, 'status dropped on create');
  const withStatus = await as.replaceNamespacedHorizontalPodAutoscalerStatus({ name: 'keda-hpa-web', namespace: 'apps', body: { ...hpa, status: { currentReplicas: 3, desiredReplicas: 4 } } });
  t.equal(withStatus.status?.desiredReplicas, 4);
  t.equal(withStatus.metadata?.generation, 1, 'status updates keep the generation');
  const specChange = await as.replaceNamespacedHorizontalPodAutoscaler({
    name: 'keda-hpa-web',
    namespace: 'apps',
    body: { ...withStatus, spec: { ...withStatus.spec!, maxReplicas: 20 }, status: { currentReplicas: 99, desiredReplicas: 99 } },
  });
  t.equal(specChange.metadata?.generation, 2);
  t.equal(specChange.status?.desiredReplicas, 4, 'the main resource ignores status');
});

t.test('KEDA custom resources with the status subresource', async (t) => {
  ns('keda');
  const so = (await custom.createNamespacedCustomObject({
    group: 'keda.sh',
    version: 'v1alpha1',
    namespace: 'keda',
    plural: 'scaledobjects',
    body: { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'so' }, spec: { scaleTargetRef: { name: 'web' }, triggers: [] }, status: { health: {} } },
  })) as KubeObject;
  t.equal(so.status, undefined, 'status dropped on create');
  t.equal(so.metadata?.generation, 1);
  const noKind = await failure(custom.createNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', body: { metadata: { name: 'x' } } }));
  t.match(noKind, { code: 400, status: { message: /^Object 'Kind' is missing in/ } });

  const list = (await custom.listNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects' })) as { kind: string; items: KubeObject[] };
  t.equal(list.kind, 'ScaledObjectList');
  t.equal(list.items[0]?.kind, 'ScaledObject', 'CRD list items keep their kind');

  const statusPatched = (await custom.patchNamespacedCustomObjectStatus(
    { group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so', body: { status: { conditions: [{ type: 'Ready', status: 'True' }] }, spec: { ignored: true } } },
    merge,
  )) as KubeObject;
  t.same(statusPatched.status, { conditions: [{ type: 'Ready', status: 'True' }] });
  t.equal((statusPatched.spec as Record<string, unknown>).ignored, undefined, '/status writes only status');
  t.equal(statusPatched.metadata?.generation, 1);

  const specPatched = (await custom.patchNamespacedCustomObject(
    { group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so', body: { spec: { maxReplicaCount: 3 }, status: null } },
    merge,
  )) as KubeObject;
  t.equal(specPatched.metadata?.generation, 2);
  t.ok(specPatched.status, 'the main resource ignores status');

  const smp = await failure(
    custom.patchNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so', body: { spec: {} } }, strategic),
  );
  t.match(smp, { code: 415, status: { reason: 'UnsupportedMediaType' } }, 'custom resources refuse strategic merge patch');

  const noRv = await failure(
    custom.replaceNamespacedCustomObject({
      group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so',
      body: { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'so' }, spec: {} },
    }),
  );
  t.match(noRv, { code: 422, status: { message: 'ScaledObject.keda.sh "so" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update' } });
  const stale = await failure(
    custom.replaceNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so', body: so }),
  );
  t.equal(stale.status.message, 'Operation cannot be fulfilled on scaledobjects.keda.sh "so": the object has been modified; please apply your changes to the latest version and try again');
  const replacedStatus = (await custom.replaceNamespacedCustomObjectStatus({
    group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so',
    body: { ...specPatched, status: { health: { ok: true } } },
  })) as KubeObject;
  t.same(replacedStatus.status, { health: { ok: true } });

  // Finalizers: delete marks, removing the last finalizer deletes.
  await custom.patchNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so', body: { metadata: { finalizers: ['finalizer.keda.sh'] } } }, merge);
  const marked = (await custom.deleteNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so' })) as KubeObject;
  t.type(marked.metadata?.deletionTimestamp, 'string');
  const stillThere = (await custom.getNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so' })) as KubeObject;
  t.equal(stillThere.metadata?.generation, 3, 'deletion bumps the generation');
  const adding = await failure(
    custom.patchNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so', body: { metadata: { finalizers: ['finalizer.keda.sh', 'x'] } } }, merge),
  );
  t.equal(adding.code, 422);
  await custom.patchNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so', body: { metadata: { finalizers: null } } }, merge);
  const gone = await failure(custom.getNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'scaledobjects', name: 'so' }));
  t.equal(gone.status.message, 'scaledobjects.keda.sh "so" not found');
  t.same(gone.status.details, { name: 'so', group: 'keda.sh', kind: 'scaledobjects' });

  const ta = (await custom.createNamespacedCustomObject({
    group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'triggerauthentications',
    body: { apiVersion: 'keda.sh/v1alpha1', kind: 'TriggerAuthentication', metadata: { name: 'ta' }, spec: { secretTargetRef: [] } },
  })) as KubeObject;
  t.equal(ta.metadata?.namespace, 'keda');
  const cta = (await custom.createClusterCustomObject({
    group: 'keda.sh', version: 'v1alpha1', plural: 'clustertriggerauthentications',
    body: { apiVersion: 'keda.sh/v1alpha1', kind: 'ClusterTriggerAuthentication', metadata: { name: 'cta' }, spec: {} },
  })) as KubeObject;
  t.equal(cta.metadata?.namespace, undefined);
  const ctaStatus = (await custom.patchClusterCustomObjectStatus(
    { group: 'keda.sh', version: 'v1alpha1', plural: 'clustertriggerauthentications', name: 'cta', body: { status: { scaledobjects: 'a' } } },
    merge,
  )) as KubeObject;
  t.same(ctaStatus.status, { scaledobjects: 'a' });
  const namespacedCta = await failure(
    custom.getNamespacedCustomObject({ group: 'keda.sh', version: 'v1alpha1', namespace: 'keda', plural: 'clustertriggerauthentications', name: 'cta' }),
  );
  t.equal(namespacedCta.code, 404);
});

t.test('watch: events in order after a resourceVersion, filters, bookmarks, timeout, 410', async (t) => {
  ns('w');
  const a = await core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'a', labels: { team: 'x' } } } });
  const from = a.metadata!.resourceVersion!;
  await core.patchNamespacedConfigMap({ name: 'a', namespace: 'w', body: { data: { v: '1' } } }, merge);
  await core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'b' } } });
  await core.deleteNamespacedConfigMap({ name: 'a', namespace: 'w' });

  const w = await watch('/api/v1/namespaces/w/configmaps', { resourceVersion: from });
  await eventually(() => w.events.length === 3, 'replayed events');
  t.same(w.events.map((e) => `${e.type} ${e.obj.metadata?.name}`), ['MODIFIED a', 'ADDED b', 'DELETED a']);
  const rvs = w.events.map((e) => Number(e.obj.metadata?.resourceVersion));
  t.ok(rvs.every((rv, i) => rv > Number(from) && (i === 0 || rv > rvs[i - 1]!)), 'increasing resourceVersions after the one asked for');
  t.equal(w.events[0]?.obj.kind, 'ConfigMap', 'watch objects carry their kind');
  await core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'c' } } });
  await eventually(() => w.events.length === 4, 'live event');
  t.equal(api.requests.find((r) => r.watch && r.path === '/api/v1/namespaces/w/configmaps')?.query.watch, 'true');
  w.abort();

  // From "now": the current state as ADDED first.
  const now = await watch('/api/v1/namespaces/w/configmaps', { labelSelector: 'team=x' });
  await core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'd', labels: { team: 'x' } } } });
  await core.patchNamespacedConfigMap({ name: 'd', namespace: 'w', body: { metadata: { labels: { team: 'y' } } } }, merge);
  await core.patchNamespacedConfigMap({ name: 'd', namespace: 'w', body: { metadata: { labels: { team: 'x' } } } }, merge);
  await eventually(() => now.events.length === 3, 'filtered events');
  t.same(now.events.map((e) => `${e.type} ${e.obj.metadata?.name}`), ['ADDED d', 'DELETED d', 'ADDED d'], 'leaving and entering the selector');
  now.abort();

  const named = await watch('/api/v1/namespaces/w/configmaps', { fieldSelector: 'metadata.name=b', allowWatchBookmarks: true });
  await eventually(() => named.events.some((e) => e.type === 'BOOKMARK'), 'a bookmark');
  t.same(named.events.filter((e) => e.type !== 'BOOKMARK').map((e) => e.obj.metadata?.name), ['b']);
  const bookmark = named.events.find((e) => e.type === 'BOOKMARK')!.obj;
  t.match(bookmark, { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: /^\d+$/ } });
  named.abort();

  const short = await watch('/api/v1/namespaces/w/configmaps', { timeoutSeconds: 1 });
  const started = Date.now();
  await eventually(() => short.done, 'server-side timeout', 3000);
  t.ok(Date.now() - started >= 800, 'closed after timeoutSeconds');
  t.equal(short.error, null, 'a clean end of stream');

  const watched = await watch('/api/v1/namespaces/w/configmaps', { resourceVersion: api.resourceVersion });
  await api.waitForWatch((x) => x.namespace === 'w' && x.query.resourceVersion !== undefined);
  api.compact('v1', 'ConfigMap');
  const old = await watch('/api/v1/namespaces/w/configmaps', { resourceVersion: from });
  await eventually(() => old.done, 'the expired watch to end');
  t.equal(old.events.length, 1);
  t.equal(old.events[0]?.type, 'ERROR');
  t.match(old.events[0]?.obj, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: new RegExp(`^too old resource version: ${from} \\(\\d+\\)$`) });
  t.notOk(watched.done, 'open watches survive compaction');
  watched.abort();

  // A resourceVersion not reached yet: the watch waits for it, then sends what comes after it.
  const future = await watch('/api/v1/namespaces/w/configmaps', { resourceVersion: String(Number(api.resourceVersion) + 1) });
  await core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'e' } } });
  await core.createNamespacedConfigMap({ namespace: 'w', body: { metadata: { name: 'f' } } });
  await eventually(() => future.events.length === 1, 'the awaited revision');
  t.same(future.events.map((e) => `${e.type} ${e.obj.metadata?.name}`), ['ADDED f']);
  future.abort();
  const never = await watch('/api/v1/namespaces/w/configmaps', { resourceVersion: String(Number(api.resourceVersion) + 100) });
  await eventually(() => never.done, 'the too-large resourceVersion to fail');
  t.match(never.events, [{ type: 'ERROR', obj: { code: 504, reason: 'Timeout', message: /^Timeout: Too large resource version: \d+, current: \d+$/ } }]);

  // Streaming lists: the state, a bookmark marking its end, then changes.
  const streamed = await watch('/api/v1/namespaces/w/configmaps', { sendInitialEvents: true, resourceVersionMatch: 'NotOlderThan', allowWatchBookmarks: true });
  await eventually(() => streamed.events.some((e) => e.type === 'BOOKMARK'), 'the initial-events-end bookmark');
  const end = streamed.events.findIndex((e) => e.type === 'BOOKMARK');
  t.same(streamed.events.slice(0, end).map((e) => e.obj.metadata?.name), ['b', 'c', 'd', 'e', 'f']);
  t.equal(streamed.events[end]?.obj.metadata?.annotations?.['k8s.io/initial-events-end'], 'true');
  streamed.abort();

  // Watching one object by its path.
  const one = await watch('/api/v1/namespaces/w/configmaps/b', {});
  await core.patchNamespacedConfigMap({ name: 'c', namespace: 'w', body: { data: { z: '1' } } }, merge);
  await core.patchNamespacedConfigMap({ name: 'b', namespace: 'w', body: { data: { z: '1' } } }, merge);
  await eventually(() => one.events.length === 2, 'events of b');
  t.same(one.events.map((e) => `${e.type} ${e.obj.metadata?.name}`), ['ADDED b', 'MODIFIED b']);
  one.abort();
});

t.test('an informer lists, watches, and relists after 410 Gone', async (t) => {
  ns('inf');
  await core.createNamespacedConfigMap({ namespace: 'inf', body: { metadata: { name: 'a' } } });
  const path = '/api/v1/namespaces/inf/configmaps';
  const informer = makeInformer<V1ConfigMap>(kc, path, () => core.listNamespacedConfigMap({ namespace: 'inf' }));
  const log: string[] = [];
  informer.on('add', (o) => log.push(`add ${o.metadata?.name}`));
  informer.on('update', (o) => log.push(`update ${o.metadata?.name}`));
  informer.on('delete', (o) => log.push(`delete ${o.metadata?.name}`));
  informer.on('error', (e) => log.push(`error ${String(e)}`));
  t.teardown(() => informer.stop());
  await informer.start();
  await api.waitForWatch((w) => w.path === path);
  t.same(log, ['add a']);

  await core.createNamespacedConfigMap({ namespace: 'inf', body: { metadata: { name: 'b' } } });
  await core.patchNamespacedConfigMap({ name: 'a', namespace: 'inf', body: { data: { x: '1' } } }, merge);
  await eventually(() => log.length === 3, 'watch events');
  t.same(log, ['add a', 'add b', 'update a']);

  // The watch ends; before the informer is back, history moves on and is compacted.
  const lists = () => api.requests.filter((r) => r.path === path && r.method === 'GET' && !r.watch).length;
  t.equal(lists(), 1);
  const lastRv = (informer as ListWatch<V1ConfigMap>).latestResourceVersion();
  api.inject({ path, watch: true, delayMs: 300, times: 1 });
  t.equal(api.closeWatches((w) => w.path === path), 1);
  api.delete('v1', 'ConfigMap', 'inf', 'b');
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'inf' } });
  api.compact('v1', 'ConfigMap');

  await eventually(() => lists() === 2, 'a relist');
  await api.waitForWatch((w) => w.path === path && w.query.resourceVersion !== lastRv);
  const expired = api.requests.find((r) => r.path === path && r.watch && r.query.resourceVersion === lastRv && r.seq > 1);
  t.ok(expired, 'the informer came back with its old resourceVersion');
  t.same(expired?.watchEvents, ['ERROR'], 'and was told 410 Gone');
  await eventually(() => log.includes('add c') && log.includes('delete b'), 'relist deltas');
  t.same(informer.list().map((o) => o.metadata?.name).sort(), ['a', 'c']);
  t.notOk(log.some((l) => l.startsWith('error')), 'no error surfaced');

  await core.createNamespacedConfigMap({ namespace: 'inf', body: { metadata: { name: 'd' } } });
  await eventually(() => log.includes('add d'), 'events after the relist');
});

t.test('faults: delay, timeout, 5xx, 429, connection reset, cut watches', async (t) => {
  ns('faults');
  await core.createNamespacedConfigMap({ namespace: 'faults', body: { metadata: { name: 'f' } } });
  const path = '/api/v1/namespaces/faults/configmaps/f';

  const clear = api.inject({ path, method: 'GET', delayMs: 300 });
  let started = Date.now();
  await core.readNamespacedConfigMap({ name: 'f', namespace: 'faults' });
  t.ok(Date.now() - started >= 290, 'delayed');
  clear();
  started = Date.now();
  await core.readNamespacedConfigMap({ name: 'f', namespace: 'faults' });
  t.ok(Date.now() - started < 290, 'cleared');

  api.inject({ path, hang: true, times: 1 });
  const timedOut = await rejection(Promise.race([core.readNamespacedConfigMap({ name: 'f', namespace: 'faults' }), sleep(300).then(() => Promise.reject(new Error('client timeout')))]));
  t.equal(timedOut.message, 'client timeout');
  t.equal(api.requests.filter((r) => r.path === path).at(-1)?.status, 0, 'no answer was written');

  api.inject({ path, status: 503, times: 1 });
  const unavailable = await failure(core.readNamespacedConfigMap({ name: 'f', namespace: 'faults' }));
  t.match(unavailable, { code: 503, status: { kind: 'Status', reason: 'ServiceUnavailable', code: 503 } });
  await core.readNamespacedConfigMap({ name: 'f', namespace: 'faults' });

  api.inject({ path, status: 429, retryAfterSeconds: 2, times: 1 });
  const throttled = await failure(core.readNamespacedConfigMap({ name: 'f', namespace: 'faults' }));
  t.match(throttled, { code: 429, status: { reason: 'TooManyRequests', details: { retryAfterSeconds: 2 } }, headers: { 'retry-after': '2' } });

  api.inject({ path, status: 500, message: 'etcdserver: request timed out', times: 1 });
  t.match(await failure(core.readNamespacedConfigMap({ name: 'f', namespace: 'faults' })), { code: 500, status: { reason: 'InternalError', message: 'etcdserver: request timed out' } });

  api.inject({ path, drop: true, times: 1 });
  const reset = await rejection(core.readNamespacedConfigMap({ name: 'f', namespace: 'faults' }));
  t.notOk(reset instanceof ApiException, 'a transport error, not an HTTP status');
  t.match(String((reset.cause as Error | undefined)?.message ?? reset.message), /other side closed|socket hang up|ECONNRESET|terminated/);
  await core.readNamespacedConfigMap({ name: 'f', namespace: 'faults' });

  const watchPath = '/api/v1/namespaces/faults/configmaps';
  api.inject({ path: watchPath, watch: true, cutWatch: { afterEvents: 1, mode: 'destroy' }, times: 1 });
  const destroyed = await watch(watchPath, {});
  await eventually(() => destroyed.done, 'the cut watch to end');
  t.equal(destroyed.events.length, 1);
  t.ok(destroyed.error, 'a reset stream is an error for the client');

  api.inject({ path: watchPath, watch: true, cutWatch: { afterMs: 100 }, times: 1 });
  const ended = await watch(watchPath, {});
  await eventually(() => ended.done, 'the ended watch');
  t.equal(ended.error, null, 'a cleanly ended stream is not an error');

  api.inject({ path: watchPath, watch: true, status: 500, times: 1 });
  const refused = await watch(watchPath, {});
  await eventually(() => refused.done, 'the refused watch');
  t.equal((refused.error as { statusCode?: number }).statusCode, 500);
});

t.test('authentication: tokens, client certificates, 401', async (t) => {
  const bogus = (await kubeConfig({ token: 'not-a-token' })).makeApiClient(CoreV1Api);
  const denied = await failure(bogus.listNamespace());
  t.equal(denied.code, 401);
  const raw = await httpsGet({ port: api.port, path: '/api/v1/namespaces', ca: api.caPem, headers: [['Authorization', 'Bearer not-a-token']] });
  t.same(raw.json(), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  const badWatch = await watch('/api/v1/namespaces', {}, await kubeConfig({ token: 'not-a-token' }));
  await eventually(() => badWatch.done, 'the refused watch');
  t.equal((badWatch.error as { statusCode?: number }).statusCode, 401);

  api.addToken('static-token', { username: 'ci', groups: ['ops'] });
  await (await kubeConfig({ token: 'static-token' })).makeApiClient(CoreV1Api).listNamespace();
  t.same(api.requests.at(-1)?.user, { username: 'ci', groups: ['ops', 'system:authenticated'] });

  const alice = (await kubeConfig({ user: 'alice', groups: ['devs'] })).makeApiClient(CoreV1Api);
  await alice.listNamespace();
  t.same(api.requests.at(-1)?.user, { username: 'alice', groups: ['devs', 'system:authenticated'] }, 'client certificate CN and O');

  // Impersonation, as kubectl --as (the kubeconfig's `as`).
  const asKc = await kubeConfig();
  asKc.users[0] = { ...asKc.users[0]!, impersonateUser: 'erin' };
  await asKc.makeApiClient(CoreV1Api).listNamespace();
  t.equal(api.requests.at(-1)?.user?.username, 'erin');
  api.setAuthorizer((a) => a.verb !== 'impersonate');
  const noImpersonation = await failure(asKc.makeApiClient(CoreV1Api).listNamespace());
  t.equal(noImpersonation.status.message, 'users "erin" is forbidden: User "admin" cannot impersonate resource "users" in API group "" at the cluster scope');
  api.setAuthorizer(undefined);

  const kubeconfigOnLocalhost = (await kubeConfig({ host: 'localhost' })).makeApiClient(CoreV1Api);
  await kubeconfigOnLocalhost.listNamespace();
  t.equal(api.requests.at(-1)?.user?.username, 'admin');
});

t.test('authorization of callers: real 403 Status', async (t) => {
  const seen: RequestAttributes[] = [];
  api.setAuthorizer((a) => {
    seen.push(a);
    if (a.user.username !== 'bob') return true;
    if (a.resource === 'configmaps' && a.namespace === 'kube-system' && a.name === 'extension-apiserver-authentication') return true;
    return { allowed: false, reason: '' };
  });
  t.teardown(() => api.setAuthorizer(undefined));
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'extension-apiserver-authentication', namespace: 'kube-system' }, data: {} });
  const bob = (await kubeConfig({ user: 'bob' })).makeApiClient(CoreV1Api);

  const secret = await failure(bob.readNamespacedSecret({ name: 's', namespace: 'default' }));
  t.same(secret.status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'secrets "s" is forbidden: User "bob" cannot get resource "secrets" in API group "" in the namespace "default"',
    reason: 'Forbidden',
    details: { name: 's', kind: 'secrets' },
    code: 403,
  });
  const apisvc = await failure((await kubeConfig({ user: 'bob' })).makeApiClient(ApiregistrationV1Api).listAPIService());
  t.equal(apisvc.status.message, 'apiservices.apiregistration.k8s.io is forbidden: User "bob" cannot list resource "apiservices" in API group "apiregistration.k8s.io" at the cluster scope');

  await bob.readNamespacedConfigMap({ name: 'extension-apiserver-authentication', namespace: 'kube-system' });
  await bob.listNamespacedConfigMap({ namespace: 'kube-system', fieldSelector: 'metadata.name=extension-apiserver-authentication' });
  t.match(seen.at(-1), { verb: 'list', name: 'extension-apiserver-authentication', fieldSelector: 'metadata.name=extension-apiserver-authentication' }, 'name from the field selector');
  t.equal((await failure(bob.listNamespacedConfigMap({ namespace: 'kube-system' }))).code, 403);

  const token = await failure(bob.createNamespacedServiceAccountToken({ name: 'x', namespace: 'default', body: { spec: {} } }));
  t.equal(token.status.message, 'serviceaccounts "x" is forbidden: User "bob" cannot create resource "serviceaccounts/token" in API group "" in the namespace "default"');
});

t.test('TokenReview and SubjectAccessReview answered by the test', async (t) => {
  const authn = kc.makeApiClient(AuthenticationV1Api);
  const authz = kc.makeApiClient(AuthorizationV1Api);

  const admin = await authn.createTokenReview({ body: { spec: { token: api.adminToken } } });
  t.match(admin.status, { authenticated: true, user: { username: 'admin' }, audiences: ['https://kubernetes.default.svc.cluster.local'] });
  t.equal(api.requests.at(-1)?.status, 201);
  const unknown = await authn.createTokenReview({ body: { spec: { token: 'who' } } });
  t.notOk(unknown.status?.authenticated);
  t.type(unknown.status?.error, 'string');

  api.onTokenReview((spec) => (spec.token === 'good' ? { authenticated: true, user: { username: 'carol', uid: '42', groups: ['g'], extra: { scopes: ['a'] } }, audiences: spec.audiences } : undefined));
  const carol = await authn.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'good', audiences: ['adapter'] } } });
  t.same(carol.status, { authenticated: true, user: { username: 'carol', uid: '42', groups: ['g'], extra: { scopes: ['a'] } }, audiences: ['adapter'] });
  t.equal(JSON.parse(api.requests.at(-1)!.body).spec.token, 'good', 'the request body is recorded');
  api.onTokenReview(async () => {
    throw new ApiStatusError(503, 'ServiceUnavailable', 'webhook down');
  });
  t.equal((await failure(authn.createTokenReview({ body: { spec: { token: 'x' } } }))).code, 503);
  api.onTokenReview(undefined);

  const spec = { user: 'dave', groups: ['system:authenticated'], resourceAttributes: { namespace: 'keda', verb: 'get', group: 'external.metrics.k8s.io', version: 'v1beta1', resource: 'queue-length' } };
  const denied = await authz.createSubjectAccessReview({ body: { spec } });
  t.same(denied.status, { allowed: false, reason: 'no RBAC policy matched' });
  api.onSubjectAccessReview((s) => (s.user === 'dave' && s.resourceAttributes?.resource === 'queue-length' ? { allowed: true, reason: 'test says so' } : undefined));
  const allowed = await authz.createSubjectAccessReview({ body: { spec } });
  t.same(allowed.status, { allowed: true, reason: 'test says so' });
  t.same(allowed.spec, spec, 'the spec is echoed');
  t.equal(api.requests.filter((r) => r.path === '/apis/authorization.k8s.io/v1/subjectaccessreviews').length, 2);
  api.onSubjectAccessReview(undefined);

  const invalid = await failure(authz.createSubjectAccessReview({ body: { spec: { resourceAttributes: { verb: 'get' } } } }));
  t.match(invalid, { code: 422, status: { message: 'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": at least one of user or group must be specified' } });

  const self = await authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { verb: 'list', resource: 'configmaps', namespace: 'default' } } } });
  t.equal(self.status?.allowed, true, 'self reviews ask the caller authorizer');
});

t.test('LocalSubjectAccessReview namespace check', async (t) => {
  const authz = kc.makeApiClient(AuthorizationV1Api);
  const spec = { user: 'dave', resourceAttributes: { namespace: 'other', verb: 'get', resource: 'pods' } };
  const mismatch = await failure(authz.createNamespacedLocalSubjectAccessReview({ namespace: 'keda', body: { spec } }));
  t.match(mismatch, { code: 400, status: { message: 'spec.resourceAttributes.namespace must match namespace: keda' } });
  const ok = await authz.createNamespacedLocalSubjectAccessReview({ namespace: 'other', body: { spec } });
  t.equal(ok.status?.allowed, false);
});

t.test('the back door: put, get, list, delete, with watch events', async (t) => {
  const w = await watch('/apis/keda.sh/v1alpha1/namespaces/door/scaledobjects', {});
  const so = api.put({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'so', namespace: 'door' }, spec: { a: 1 }, status: { ready: true } });
  t.equal(so.metadata?.generation, 1);
  t.same(so.status, { ready: true }, 'the back door may set status');
  t.ok(api.get('v1', 'Namespace', undefined, 'door'), 'namespace created on demand');
  const again = api.put({ ...so, spec: { a: 2 } });
  t.equal(again.metadata?.generation, 2);
  t.equal(again.metadata?.uid, so.metadata?.uid);
  t.equal(api.put(again).metadata?.resourceVersion, again.metadata?.resourceVersion, 'no-op put writes nothing');
  t.same(api.list('keda.sh/v1alpha1', 'ScaledObject', 'door').map((o) => o.metadata?.name), ['so']);
  t.ok(api.delete('keda.sh/v1alpha1', 'ScaledObject', 'door', 'so'));
  t.notOk(api.delete('keda.sh/v1alpha1', 'ScaledObject', 'door', 'so'));
  await eventually(() => w.events.length === 3, 'back-door events');
  t.same(w.events.map((e) => e.type), ['ADDED', 'MODIFIED', 'DELETED']);
  w.abort();
  t.throws(() => api.put({ apiVersion: 'v1', kind: 'Widget', metadata: { name: 'x' } }), /unknown|no stored resource/);
});
