// The admission rules as pure functions: the object under review, the ScaledObjects already there.
import t from 'tap';
import { pino } from 'pino';
import { CustomCaTrust } from '../../../src/tls/custom-ca.js';
import { scaledObjectFromApi } from '../../../src/operator/scaledobjects/manifest.js';
import type { ScaledObject } from '../../../src/operator/scaledobjects/types.js';
import type { AdmissionRequest } from '../../../src/operator/webhook/admission.js';
import { validateRequest, validateScaledObject, validateTriggerAuthentication, type ValidationDeps } from '../../../src/operator/webhook/validate.js';

const log = pino({ level: 'silent' });
const scalers = { trust: new CustomCaTrust([], log), timeoutMs: 3000, log };

type Obj = Record<string, unknown>;
const metricsApi = (metadata: Record<string, string> = {}, extra: Obj = {}) => ({
  type: 'metrics-api',
  metadata: { url: 'http://api.default.svc:8080/metrics', valueLocation: 'value', targetValue: '5', ...metadata },
  ...extra,
});
const so = (name: string, namespace: string | undefined, spec: Obj = {}): Obj => ({
  apiVersion: 'keda.sh/v1alpha1',
  kind: 'ScaledObject',
  metadata: { name, ...(namespace ? { namespace } : {}) },
  spec: { scaleTargetRef: { name: 'web' }, triggers: [metricsApi()], ...spec },
});
const stored = (raw: Obj): ScaledObject => ({ ...scaledObjectFromApi(raw), uid: `uid-${String((raw.metadata as Obj).name)}`, generation: 1 });
const view = (...objects: Obj[]) => ({ list: () => objects.map(stored) });
const deps = (...objects: Obj[]): ValidationDeps => ({ existing: view(...objects), scalers });

const request = (operation: AdmissionRequest['operation'], object: unknown, extra: Partial<AdmissionRequest> = {}): AdmissionRequest => ({
  uid: 'u-1',
  kind: { group: 'keda.sh', version: 'v1alpha1', kind: 'ScaledObject' },
  resource: { group: 'keda.sh', version: 'v1alpha1', resource: 'scaledobjects' },
  namespace: 'default',
  operation,
  userInfo: { username: 'admin' },
  object,
  oldObject: null,
  dryRun: false,
  ...extra,
});

t.test('a valid ScaledObject is allowed', async (t) => {
  t.same(validateScaledObject(so('a', 'default'), view(), scalers), { allowed: true, warnings: [] });
});

t.test('every trigger that does not build is named, by index and type', async (t) => {
  const v = validateScaledObject(
    so('a', 'default', { triggers: [metricsApi(), metricsApi({ url: '' }), { type: 'no-such-scaler', metadata: {} }, { type: 'prometheus', metadata: { query: 'up', threshold: '1' } }] }),
    view(),
    scalers,
  );
  t.equal(v.allowed, false);
  t.match(v.message, /^ScaledObject default\/a: /);
  t.match(v.message, /spec\.triggers\[1\] \(metrics-api\): no url given in metadata/);
  t.match(v.message, /spec\.triggers\[2\] \(no-such-scaler\): unsupported trigger type "no-such-scaler" \(supported: .*metrics-api/);
  t.match(v.message, /spec\.triggers\[3\] \(prometheus\): no serverAddress given in metadata/);
  t.notMatch(v.message, /spec\.triggers\[0\]/, 'the good trigger is not mentioned');
  t.notMatch(v.message, /metrics-api: metrics-api:/, 'the type is said once');
});

t.test('credentials behind an authenticationRef are not the webhook\'s to check', async (t) => {
  const v = validateScaledObject(so('a', 'default', { triggers: [metricsApi({ authMode: 'bearer' }, { authenticationRef: { name: 'api-token' } })] }), view(), scalers);
  t.same(v, { allowed: true, warnings: [] });
  const bad = validateScaledObject(so('a', 'default', { triggers: [metricsApi({ authMode: 'kerberos' }, { authenticationRef: { name: 'api-token' } })] }), view(), scalers);
  t.match(bad.message, /spec\.triggers\[0\] \(metrics-api\): authMode "kerberos" is not supported/, 'invalid metadata still is');
});

t.test('one workload, one ScaledObject per namespace', async (t) => {
  const other = so('first', 'default');
  t.match(validateScaledObject(so('second', 'default'), view(other), scalers), {
    allowed: false,
    message: "ScaledObject default/second: the workload 'web' of type 'apps/v1.Deployment' is already managed by the ScaledObject 'first'",
  });
  const explicit = so('second', 'default', { scaleTargetRef: { name: 'web', kind: 'Deployment', apiVersion: 'apps/v1' } });
  t.equal(validateScaledObject(explicit, view(other), scalers).allowed, false, 'the defaults are Deployment and apps/v1');
  const otherVersion = so('second', 'default', { scaleTargetRef: { name: 'web', kind: 'Deployment', apiVersion: 'apps/v1beta2' } });
  t.equal(validateScaledObject(otherVersion, view(other), scalers).allowed, false, 'another version of the same group is the same workload');
  t.equal(validateScaledObject(so('first', 'default', { maxReplicaCount: 7 }), view(other), scalers).allowed, true, 'the object itself (an UPDATE)');
  t.equal(validateScaledObject(so('second', 'team-b'), view(other), scalers).allowed, true, 'another namespace');
  const statefulSet = so('second', 'default', { scaleTargetRef: { name: 'web', kind: 'StatefulSet' } });
  t.equal(validateScaledObject(statefulSet, view(other), scalers).allowed, true, 'another kind of the same name');
  const otherGroup = so('second', 'default', { scaleTargetRef: { name: 'web', kind: 'Deployment', apiVersion: 'example.com/v1' } });
  t.equal(validateScaledObject(otherGroup, view(other), scalers).allowed, true, 'another group');
  const both = validateScaledObject(so('second', 'default', { triggers: [{ type: 'nope', metadata: {} }] }), view(other), scalers);
  t.match(both.message, /spec\.triggers\[0\] \(nope\).*; the workload 'web'/, 'every problem at once');
});

t.test('unsupported fields are accepted with a warning each', async (t) => {
  const v = validateScaledObject(so('a', 'default', { fallback: { failureThreshold: 3, replicas: 6 }, idleReplicaCount: 0 }), view(), scalers);
  t.equal(v.allowed, true);
  t.equal(v.warnings.length, 2);
  t.ok(v.warnings.some((w) => /^spec\.fallback is not supported/.test(w)), 'fallback');
  t.ok(v.warnings.some((w) => /^spec\.idleReplicaCount is not supported/.test(w)), 'idleReplicaCount');
  const denied = validateScaledObject(so('a', 'default', { fallback: { failureThreshold: 3, replicas: 6 }, minReplicaCount: 5, maxReplicaCount: 2 }), view(), scalers);
  t.equal(denied.allowed, false);
  t.match(denied.message, /spec\.minReplicaCount \(5\) must not be greater than spec\.maxReplicaCount \(2\)/);
});

t.test('TriggerAuthentication and ClusterTriggerAuthentication', async (t) => {
  const ta = (spec: Obj) => ({ apiVersion: 'keda.sh/v1alpha1', kind: 'TriggerAuthentication', metadata: { name: 'auth', namespace: 'default' }, spec });
  t.same(validateTriggerAuthentication(ta({ secretTargetRef: [{ parameter: 'token', name: 's', key: 'k' }] }), 'TriggerAuthentication'), { allowed: true, warnings: [] });
  const vault = validateTriggerAuthentication(ta({ hashiCorpVault: { address: 'https://vault' } }), 'ClusterTriggerAuthentication');
  t.equal(vault.allowed, true);
  t.match(vault.warnings, [/^spec\.hashiCorpVault is not supported/]);
  const bad = validateTriggerAuthentication(ta({ secretTargetRef: [{ parameter: 'token', name: 's' }] }), 'TriggerAuthentication');
  t.match(bad, { allowed: false, message: 'TriggerAuthentication default/auth: spec.secretTargetRef[0].key is required' });
});

t.test('the review: namespace from the request, operations and kinds not checked', async (t) => {
  const existing = deps(so('first', 'team-a'));
  const noNamespace = so('second', undefined);
  t.match(validateRequest('scaledobjects', request('CREATE', noNamespace, { namespace: 'team-a' }), existing), { allowed: false, message: /^ScaledObject team-a\/second: .*ScaledObject 'first'/ });
  t.equal(validateRequest('scaledobjects', request('CREATE', noNamespace, { namespace: 'team-b' }), existing).allowed, true);
  const generated = so('', 'default');
  t.equal(validateRequest('scaledobjects', request('CREATE', generated, { name: 'web-x7k2p' }), deps()).allowed, true, 'a generated name from the request');

  const invalid = so('a', 'default', { minReplicaCount: 5, maxReplicaCount: 2 });
  t.equal(validateRequest('scaledobjects', request('DELETE', null, { oldObject: invalid }), deps()).allowed, true, 'DELETE');
  t.equal(validateRequest('scaledobjects', request('CONNECT', null), deps()).allowed, true, 'CONNECT');
  t.equal(validateRequest('scaledobjects', request('CREATE', invalid, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }), deps()).allowed, true, 'another kind');
  t.equal(validateRequest('triggerauthentications', request('CREATE', invalid), deps()).allowed, true, 'a ScaledObject sent to the TriggerAuthentication webhook');
  t.equal(validateRequest('scaledobjects', request('UPDATE', invalid, { oldObject: so('a', 'default') }), deps()).allowed, false, 'an UPDATE that breaks the spec');
});

t.test('an UPDATE that leaves the spec alone is allowed (finalizer removal never blocks)', async (t) => {
  // Admitted before a rule existed, or while the webhook was down: still removable.
  const invalid = so('a', 'default', { minReplicaCount: 5, maxReplicaCount: 2 });
  const withFinalizer = { ...invalid, metadata: { ...(invalid.metadata as Obj), finalizers: ['finalizer.keda.sh'] } };
  t.equal(validateRequest('scaledobjects', request('UPDATE', invalid, { oldObject: withFinalizer }), deps()).allowed, true, 'finalizer removed');
  const deleting = { ...invalid, metadata: { ...(invalid.metadata as Obj), deletionTimestamp: '2025-01-01T00:00:00Z' } };
  t.equal(validateRequest('scaledobjects', request('UPDATE', deleting, { oldObject: so('a', 'default') }), deps()).allowed, true, 'being deleted');
});

t.test('TriggerAuthentication reviews: cluster-scoped ones ignore the namespace', async (t) => {
  const cta = { apiVersion: 'keda.sh/v1alpha1', kind: 'ClusterTriggerAuthentication', metadata: { name: 'shared' }, spec: { secretTargetRef: [{ parameter: 'p', name: 's' }] } };
  const v = validateRequest('clustertriggerauthentications', request('CREATE', cta, { namespace: undefined, kind: { group: 'keda.sh', version: 'v1alpha1', kind: 'ClusterTriggerAuthentication' } }), deps());
  t.match(v, { allowed: false, message: 'ClusterTriggerAuthentication shared: spec.secretTargetRef[0].key is required' });
});
