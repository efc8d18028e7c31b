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

t.test('nor values in the workload\'s environment (*FromEnv); a value that can come from nowhere is missing', async (t) => {
  const check = (...triggers: Obj[]) => validateScaledObject(so('a', 'default', { triggers }), view(), scalers);
  const redis = (metadata: Record<string, string>, extra: Obj = {}) => ({ type: 'redis', metadata: { listName: 'jobs', ...metadata }, ...extra });
  t.same(check(redis({ addressFromEnv: 'REDIS_ADDRESS', passwordFromEnv: 'REDIS_PASSWORD' })), { allowed: true, warnings: [] }, 'address from the environment');
  t.same(check(redis({}, { authenticationRef: { name: 'redis-auth' } })), { allowed: true, warnings: [] }, 'address from the trigger authentication');
  t.same(check(redis({ hostFromEnv: 'REDIS_HOST', port: '6379' })), { allowed: true, warnings: [] }, 'host from the environment, port given');
  t.match(check(redis({})).message, /spec\.triggers\[0\] \(redis\): no address given \(host:port\), nor host and port/);
  t.match(check(redis({ host: 'cache' })).message, /host given without port/, 'a port that can come from nowhere');
  t.match(check(redis({ addressFromEnv: 'A', listLength: 'many' })).message, /listLength "many" is not a number/, 'the rest is still checked');
  const rabbitmq = (metadata: Record<string, string>, extra: Obj = {}) => ({ type: 'rabbitmq', metadata: { queueName: 'q', ...metadata }, ...extra });
  t.same(check(rabbitmq({ hostFromEnv: 'RABBITMQ_URL' })), { allowed: true, warnings: [] });
  t.match(check(rabbitmq({})).message, /\(rabbitmq\): no host given in metadata, the trigger authentication or hostFromEnv/);
  t.same(check({ type: 'postgresql', metadata: { query: 'select 1', targetQueryValue: '1', connectionFromEnv: 'PG_URL' } }), { allowed: true, warnings: [] });
  t.same(check({ type: 'mysql', metadata: { query: 'select 1', queryValue: '1', connectionStringFromEnv: 'MYSQL_DSN' } }), { allowed: true, warnings: [] });
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
  const v = validateScaledObject(so('a', 'default', { scaleTargetRef: { name: 'web', envSourceContainerName: 'app' }, triggers: [metricsApi({ urlFromEnv: 'API_URL' })], somethingNew: 1 }), view(), scalers);
  t.equal(v.allowed, true);
  t.equal(v.warnings.length, 2, 'envSourceContainerName is acted on');
  t.ok(v.warnings.some((w) => w === "spec.triggers[0].metadata.urlFromEnv is not supported: metrics-api does not read url from the workload's environment (as in KEDA); give the value itself"), 'a *FromEnv the scaler does not read');
  t.ok(v.warnings.some((w) => /^spec\.somethingNew is not supported: this field is unknown/.test(w)), 'an unknown field');
  const denied = validateScaledObject(so('a', 'default', { somethingNew: 1, minReplicaCount: 5, maxReplicaCount: 2 }), view(), scalers);
  t.equal(denied.allowed, false);
  t.match(denied.message, /spec\.minReplicaCount \(5\) must not be greater than spec\.maxReplicaCount \(2\)/);
});

t.test('fallback, idleReplicaCount and restoreToOriginalReplicaCount: KEDA\'s rules, each refusal naming the field', async (t) => {
  const ok = validateScaledObject(
    so('a', 'default', { fallback: { failureThreshold: 3, replicas: 6, behavior: 'currentReplicasIfHigher' }, idleReplicaCount: 0, minReplicaCount: 1, initialCooldownPeriod: 30, advanced: { restoreToOriginalReplicaCount: true } }),
    view(),
    scalers,
  );
  t.strictSame([ok.allowed, ok.warnings], [true, []], 'accepted, and nothing said to be ignored');
  const refused: [Obj, RegExp][] = [
    [{ fallback: { replicas: 6 } }, /spec\.fallback\.failureThreshold is required/],
    [{ fallback: { failureThreshold: 3 } }, /spec\.fallback\.replicas is required/],
    [{ fallback: { failureThreshold: -1, replicas: 6 } }, /spec\.fallback\.failureThreshold must be an integer >= 0/],
    [{ fallback: { failureThreshold: 3, replicas: 6, behavior: 'sometimes' } }, /spec\.fallback\.behavior must be one of static, currentReplicas, currentReplicasIfHigher, currentReplicasIfLower \(got "sometimes"\)/],
    [{ fallback: { failureThreshold: 3, replicas: 6 }, triggers: [{ type: 'cpu', metricType: 'Utilization', metadata: { value: '50' } }] }, /spec\.triggers\[0\]\.type is "cpu", but spec\.fallback is not supported by the cpu and memory scalers/],
    [{ fallback: { failureThreshold: 3, replicas: 6 }, triggers: [metricsApi({}, { metricType: 'Utilization' })] }, /spec\.triggers\[0\]\.metricType is "Utilization", but spec\.fallback works only with the AverageValue and Value metric types/],
    [{ idleReplicaCount: 1, minReplicaCount: 3 }, /spec\.idleReplicaCount \(1\) must be 0: at any other count the HPA scales the workload straight back to minReplicaCount/],
    [{ idleReplicaCount: 0 }, /spec\.idleReplicaCount \(0\) must be less than spec\.minReplicaCount \(0\)/],
    [{ initialCooldownPeriod: -5 }, /spec\.initialCooldownPeriod must be an integer >= 0/],
    [{ advanced: { restoreToOriginalReplicaCount: 'yes' } }, /spec\.advanced\.restoreToOriginalReplicaCount must be true or false/],
  ];
  for (const [spec, message] of refused) {
    const v = validateScaledObject(so('a', 'default', spec), view(), scalers);
    t.equal(v.allowed, false, JSON.stringify(spec));
    t.match(v.message, message);
  }
});

t.test('scalingModifiers: the formula compiled against the named triggers, refusals saying where', async (t) => {
  const named = [metricsApi({}, { name: 'queue' }), metricsApi({ valueLocation: 'other' }, { name: 'backlog' })];
  const modifiers = (m: Obj, triggers: unknown[] = named) => validateScaledObject(so('a', 'default', { triggers, advanced: { scalingModifiers: m } }), view(), scalers);
  const ok = modifiers({ formula: 'queue > 10 ? queue + backlog : 0', target: '5', activationTarget: '1', metricType: 'Value' });
  t.strictSame([ok.allowed, ok.warnings], [true, []]);
  const refused: [Obj, RegExp, unknown[]?][] = [
    [{ target: '5' }, /spec\.advanced\.scalingModifiers\.formula is required/],
    [{ formula: 'queue' }, /spec\.advanced\.scalingModifiers\.target is required/],
    [{ formula: 'queue', target: '0' }, /spec\.advanced\.scalingModifiers\.target must be a number greater than 0 \(got "0"\)/],
    [{ formula: 'queue', target: 'five' }, /target must be a number greater than 0 \(got "five"\)/],
    [{ formula: 'queue', target: '5', activationTarget: '-1' }, /activationTarget must be a number at least 0 \(got "-1"\)/],
    [{ formula: 'queue', target: '5', metricType: 'Utilization' }, /metricType must be AverageValue or Value for the composite metric \(got "Utilization"\)/],
    [{ formula: 'queue + lag', target: '5' }, /spec\.advanced\.scalingModifiers\.formula is invalid: unknown name lag \(the named triggers: queue, backlog\) \(1:9\)/],
    [{ formula: 'queue +* 2', target: '5' }, /formula is invalid: unexpected "\*" \(1:8\)/],
    [{ formula: 'queue', target: '5' }, /formula is invalid: unknown name queue \(no trigger has a name\) \(1:1\)/, [metricsApi()]],
  ];
  for (const [m, message, triggers] of refused) {
    const v = modifiers(m, triggers);
    t.equal(v.allowed, false, JSON.stringify(m));
    t.match(v.message, message);
  }
});

t.test('ScaledJobs: KEDA\'s fields and rules, triggers built in validate-only mode', async (t) => {
  const sj = (spec: Obj = {}, metadata: Obj = {}) => ({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledJob',
    metadata: { name: 'consumer', namespace: 'default', ...metadata },
    spec: { jobTargetRef: { template: { spec: { containers: [{ name: 'c', image: 'x' }] } } }, triggers: [metricsApi()], ...spec },
  });
  const review = (object: Obj) => validateRequest('scaledjobs', request('CREATE', object, { kind: { group: 'keda.sh', version: 'v1alpha1', kind: 'ScaledJob' }, resource: { group: 'keda.sh', version: 'v1alpha1', resource: 'scaledjobs' } }), deps());
  t.strictSame(review(sj({ scalingStrategy: { strategy: 'custom', customScalingQueueLengthDeduction: 1, customScalingRunningJobPercentage: '0.5' }, rollout: { strategy: 'gradual' } })), { allowed: true, warnings: [] });
  t.strictSame(review(sj({ envSourceContainerName: 'c' })), { allowed: true, warnings: [] }, 'envSourceContainerName is acted on');
  t.match(review(sj({ triggers: [metricsApi({ valueLocationFromEnv: 'V' })] })), { allowed: true, warnings: [/^spec\.triggers\[0\]\.metadata\.valueLocationFromEnv is not supported: metrics-api does not read valueLocation/] });
  const refused: [Obj, RegExp][] = [
    [sj({ jobTargetRef: {} }), /spec\.jobTargetRef\.template is required/],
    [sj({ minReplicaCount: 5, maxReplicaCount: 2 }), /spec\.minReplicaCount \(5\) must not be greater than spec\.maxReplicaCount \(2\)/],
    [sj({ scalingStrategy: { strategy: 'greedy' } }), /spec\.scalingStrategy\.strategy must be one of default, custom, accurate, eager \(got "greedy"\)/],
    [sj({ scalingStrategy: { strategy: 'custom', customScalingQueueLengthDeduction: 1 } }), /spec\.scalingStrategy\.customScalingRunningJobPercentage is required with the custom strategy/],
    [sj({ scalingStrategy: { strategy: 'custom', customScalingQueueLengthDeduction: 1, customScalingRunningJobPercentage: 'half' } }), /customScalingRunningJobPercentage must be a number at least 0, such as "0\.5" \(got "half"\)/],
    [sj({ scalingStrategy: { multipleScalersCalculation: 'median' } }), /multipleScalersCalculation must be one of max, min, avg, sum/],
    [sj({ rollout: { strategy: 'canary' } }), /spec\.rollout\.strategy must be one of default, gradual \(got "canary"\)/],
    [sj({ triggers: [{ type: 'no-such-scaler', metadata: {} }] }), /ScaledJob default\/consumer: spec\.triggers\[0\] \(no-such-scaler\): unsupported trigger type/],
    [sj({}, { annotations: { 'autoscaling.keda.sh/paused': 'yes' } }), /metadata\.annotations\[autoscaling\.keda\.sh\/paused\] must be "true" or "false"/],
  ];
  for (const [object, message] of refused) {
    const v = review(object);
    t.equal(v.allowed, false, JSON.stringify(object.spec));
    t.match(v.message, message);
  }
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
