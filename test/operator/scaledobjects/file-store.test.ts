// The file-backed ScaledObject store: KEDA manifests as a user would `kubectl apply` them, every
// validation message, secret resolution, live reload with stable uids and honest generations, and
// not one secret value in any log line.
import t, { type Test } from 'tap';
import { pino } from 'pino';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { FileScaledObjectStore, parseKedaManifests, scaledObjectUid, type FileScaledObjectStoreOptions } from '../../../src/operator/scaledobjects/file-store.js';
import { eventually } from '../../helpers/loop.js';
import { resolveAuth } from '../../../src/operator/scaledobjects/resolve-auth.js';
import type { AuthenticationRef } from '../../../src/operator/scaledobjects/types.js';

/** The parameters an authenticationRef resolves to, as the metrics engine gets them. */
const auth = async (store: FileScaledObjectStore, namespace: string, ref: AuthenticationRef) => (await resolveAuth(store, undefined, namespace, ref)).params;

// Every secret value used below; the last test checks that none reached a log line.
const API_KEY = 'sk-live-7Hq2ZpX9-not-for-logs';
const PASSWORD = 'pa55w0rd-Kx81-never-logged';
const CLUSTER_TOKEN = 'cluster-tok-QmV3-top-secret';
const IN_SYNTAX_ERROR = 'hunter2-Zz19-in-a-broken-line';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const SECRETS = [API_KEY, PASSWORD, CLUSTER_TOKEN, IN_SYNTAX_ERROR];
const allLines: string[] = [];

type LogLine = { level: number; msg: string } & Record<string, unknown>;
const WARN = 40;
const ERROR = 50;
const DEBUG = 20;

function setup(t: Test, text: string, opts: FileScaledObjectStoreOptions = {}) {
  const dir = t.testdir({ 'keda.yaml': text });
  const file = join(dir, 'keda.yaml');
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void (lines.push(l), allLines.push(l)) });
  const store = new FileScaledObjectStore(file, log, { watch: { debounceMs: 30 }, ...opts });
  t.teardown(() => store.close());
  let changes = 0;
  store.onChange(() => void changes++);
  return {
    file,
    store,
    lines,
    logs: () => lines.map((l) => JSON.parse(l) as LogLine),
    changes: () => changes,
    /** Writes the file atomically and waits for the store to take it. */
    async edit(content: string): Promise<void> {
      const before = changes;
      await writeAtomic(file, content);
      await eventually('the store to reload', async () => (changes > before ? true : undefined));
    },
  };
}

async function writeAtomic(path: string, content: string): Promise<void> {
  await writeFile(`${path}.tmp`, content);
  await rename(`${path}.tmp`, path);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const docs = (...objects: unknown[]) => objects.map((o) => stringify(o)).join('---\n');

// The shape of KEDA's metrics-api documentation example: Secret, TriggerAuthentication and
// ScaledObject in one file, plus the `advanced` and `fallback` blocks KEDA users keep.
const KEDA_EXAMPLE = `
apiVersion: v1
kind: Secret
metadata:
  name: keda-metric-api-secret
  namespace: default
data:
  apiKey: ${b64(API_KEY)}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: keda-metric-api-creds
  namespace: default
spec:
  secretTargetRef:
    - parameter: apiKey
      name: keda-metric-api-secret
      key: apiKey
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: http-scaledobject
  namespace: default
  labels:
    deploymentName: dummy
spec:
  maxReplicaCount: 12
  scaleTargetRef:
    name: dummy
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 60
  fallback:
    failureThreshold: 3
    replicas: 2
  triggers:
    - type: metrics-api
      metadata:
        targetValue: "8.8"
        activationTargetValue: "3.8"
        url: "http://api:3232/components/stats"
        valueLocation: 'components.worker.tasks'
        authMode: "apiKey"
        method: "query"
        keyParamName: "QUERY_KEY"
      authenticationRef:
        name: keda-metric-api-creds
`;

/** A minimal valid ScaledObject, as a plain object a test can break. */
function scaledObject(name = 'web', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name, namespace: 'default' },
    spec: { scaleTargetRef: { name }, triggers: [{ type: 'metrics-api', metadata: { url: 'http://api/stats', valueLocation: 'v', targetValue: '5' } }] },
    ...extra,
  };
}
const secret = (name: string, namespace: string, data: Record<string, string>, stringData?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  ...(stringData ? { stringData } : {}),
});
const triggerAuth = (name: string, namespace: string, refs: { parameter: string; name: string; key: string }[], kind = 'TriggerAuthentication') => ({
  apiVersion: 'keda.sh/v1alpha1',
  kind,
  metadata: kind === 'TriggerAuthentication' ? { name, namespace } : { name },
  spec: { secretTargetRef: refs },
});

t.test('the KEDA metrics-api example parses to the model', async (t) => {
  const { store, logs } = setup(t, KEDA_EXAMPLE);
  await store.start();
  t.strictSame(store.list(), [
    {
      namespace: 'default',
      name: 'http-scaledobject',
      uid: scaledObjectUid('default', 'http-scaledobject'),
      generation: 1,
      spec: {
        scaleTargetRef: { name: 'dummy' },
        pollingInterval: 30,
        cooldownPeriod: 300,
        initialCooldownPeriod: 0,
        minReplicaCount: 0,
        maxReplicaCount: 12,
        triggers: [
          {
            type: 'metrics-api',
            metadata: {
              targetValue: '8.8',
              activationTargetValue: '3.8',
              url: 'http://api:3232/components/stats',
              valueLocation: 'components.worker.tasks',
              authMode: 'apiKey',
              method: 'query',
              keyParamName: 'QUERY_KEY',
            },
            authenticationRef: { name: 'keda-metric-api-creds' },
          },
        ],
        fallback: { failureThreshold: 3, replicas: 2, behavior: 'static' },
        advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 60 } } } },
      },
      unsupported: [],
    },
  ]);
  t.equal(store.get('default', 'http-scaledobject'), store.list()[0]);
  t.equal(store.get('other', 'http-scaledobject'), undefined);
  t.strictSame(await auth(store, 'default', { name: 'keda-metric-api-creds' }), { apiKey: API_KEY });
  t.match(store.list()[0]?.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUID');
  t.ok(Object.isFrozen(store.list()[0]?.spec.triggers[0]?.metadata), 'served objects are read-only');
  t.strictSame(
    logs()
      .filter((l) => l.level >= WARN)
      .map((l) => l.msg),
    [],
    'advanced and fallback are taken, without a warning',
  );
});

t.test('defaults, optional fields, and every field carried over', async (t) => {
  const parsed = parseKedaManifests(
    docs(
      scaledObject('bare'),
      {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'ScaledObject',
        metadata: { name: 'full', namespace: 'shop' },
        spec: {
          scaleTargetRef: { name: 'cart', kind: 'StatefulSet', apiVersion: 'apps/v1', envSourceContainerName: 'x' },
          pollingInterval: 5,
          cooldownPeriod: 0,
          minReplicaCount: 1,
          maxReplicaCount: 1,
          idleReplicaCount: 0,
          initialCooldownPeriod: 20,
          advanced: { restoreToOriginalReplicaCount: true },
          triggers: [
            { type: 'cpu', metricType: 'Utilization', metadata: { value: '60' } },
            { type: 'prometheus', name: 'rps', metricType: 'AverageValue', useCachedMetrics: true, metadata: {}, authenticationRef: { name: 'prom', kind: 'ClusterTriggerAuthentication' } },
          ],
        },
      },
    ),
  );
  const bare = parsed.scaledObjects.get('default/bare');
  t.strictSame(bare?.spec, {
    scaleTargetRef: { name: 'bare' },
    pollingInterval: 30,
    cooldownPeriod: 300,
    initialCooldownPeriod: 0,
    minReplicaCount: 0,
    maxReplicaCount: 100,
    triggers: [{ type: 'metrics-api', metadata: { url: 'http://api/stats', valueLocation: 'v', targetValue: '5' } }],
  });
  t.strictSame(parsed.scaledObjects.get('shop/full'), {
    namespace: 'shop',
    name: 'full',
    spec: {
      scaleTargetRef: { name: 'cart', kind: 'StatefulSet', apiVersion: 'apps/v1', envSourceContainerName: 'x' },
      pollingInterval: 5,
      cooldownPeriod: 0,
      initialCooldownPeriod: 20,
      minReplicaCount: 1,
      maxReplicaCount: 1,
      triggers: [
        { type: 'cpu', metadata: { value: '60' }, metricType: 'Utilization' },
        { type: 'prometheus', metadata: {}, name: 'rps', metricType: 'AverageValue', useCachedMetrics: true, authenticationRef: { name: 'prom', kind: 'ClusterTriggerAuthentication' } },
      ],
      idleReplicaCount: 0,
      advanced: { restoreToOriginalReplicaCount: true },
    },
    unsupported: [],
  });
  t.strictSame([...parsed.scaledObjects.keys()], ['default/bare', 'shop/full'], 'file order');
});

t.test('kind: List with items, and empty documents', async (t) => {
  const { store } = setup(
    t,
    `---\n` +
      stringify({ apiVersion: 'v1', kind: 'List', items: [scaledObject('a'), secret('s', 'default', { k: 'v' }), { apiVersion: 'v1', kind: 'List', items: [scaledObject('b')] }] }) +
      `---\n---\n` +
      stringify(triggerAuth('ta', 'default', [{ parameter: 'p', name: 's', key: 'k' }])) +
      `---\n`,
  );
  await store.start();
  t.strictSame(store.list().map((o) => o.name), ['a', 'b']);
  t.strictSame(await auth(store, 'default', { name: 'ta' }), { p: 'v' });
  t.strictSame(parseKedaManifests(stringify({ apiVersion: 'v1', kind: 'List', items: [] })).scaledObjects.size, 0, 'an empty List is a valid empty set');
  const typed = parseKedaManifests(stringify({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObjectList', items: [scaledObject('c')] }));
  t.ok(typed.scaledObjects.has('default/c'), 'a typed list (what the API server returns) works too');
});

t.test('numbers and booleans in string maps are coerced as written, with a warning each', async (t) => {
  const { store, logs } = setup(
    t,
    `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web}
spec:
  scaleTargetRef: {name: web}
  triggers:
    - type: metrics-api
      metadata:
        url: http://api/stats
        targetValue: 8.50
        activationTargetValue: 0x10
        unsafeSsl: true
      authenticationRef: {name: auth}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData:
  pin: 987654321012
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: auth}
spec:
  secretTargetRef: [{parameter: pin, name: creds, key: pin}]
`,
  );
  await store.start();
  t.strictSame(store.get('default', 'web')?.spec.triggers[0]?.metadata, { url: 'http://api/stats', targetValue: '8.50', activationTargetValue: '0x10', unsafeSsl: 'true' });
  t.strictSame(await auth(store, 'default', { name: 'auth' }), { pin: '987654321012' });
  const warnings = logs().filter((l) => l.level === WARN).map((l) => l.msg);
  t.strictSame(warnings, [
    'document 1 (ScaledObject default/web): spec.triggers[0].metadata.targetValue is a number, but Kubernetes requires a string here (quote it); used as a string',
    'document 1 (ScaledObject default/web): spec.triggers[0].metadata.activationTargetValue is a number, but Kubernetes requires a string here (quote it); used as a string',
    'document 1 (ScaledObject default/web): spec.triggers[0].metadata.unsafeSsl is a boolean, but Kubernetes requires a string here (quote it); used as a string',
    'document 2 (Secret default/creds): stringData.pin is a number, but Kubernetes requires a string here (quote it); used as a string',
  ]);
  t.notOk(logs().some((l) => JSON.stringify(l).includes('987654321012')), 'the coerced secret value is not logged');
});

t.test('every validation error names document, object and field', async (t) => {
  const so = scaledObject;
  const withSpec = (spec: Record<string, unknown>) => so('web', { spec: { ...(so().spec as object), ...spec } });
  const withTrigger = (trigger: Record<string, unknown>) => withSpec({ triggers: [{ type: 'metrics-api', metadata: { url: 'u' }, ...trigger }] });
  const ta = (spec: unknown) => ({ apiVersion: 'keda.sh/v1alpha1', kind: 'TriggerAuthentication', metadata: { name: 'auth' }, spec });
  const sec = (extra: Record<string, unknown>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'ns1' }, ...extra });
  const SO = 'document 1 (ScaledObject default/web)';
  const cases: [string, string, string][] = [
    ['empty file', '', 'the file holds no Kubernetes object (for an empty set, write `apiVersion: v1`, `kind: List`, `items: []`)'],
    ['comments only', '# nothing yet\n---\n', 'the file holds no Kubernetes object (for an empty set, write `apiVersion: v1`, `kind: List`, `items: []`)'],
    ['not a mapping', '- a\n- b\n', 'document 1: expected a Kubernetes object (a mapping with apiVersion and kind)'],
    ['no kind', 'apiVersion: v1\n', 'document 1: kind is required'],
    ['kind not a string', 'apiVersion: v1\nkind: [a]\n', 'document 1: kind must be a string'],
    ['no apiVersion', 'kind: ScaledObject\n', 'document 1 (ScaledObject): apiVersion is required'],
    ['no metadata', docs(so('web', { metadata: undefined })), 'document 1 (ScaledObject): metadata is required'],
    ['metadata not a mapping', docs(so('web', { metadata: 'web' })), 'document 1 (ScaledObject): metadata must be a mapping'],
    ['no name', docs(so('web', { metadata: { namespace: 'default' } })), 'document 1 (ScaledObject): metadata.name is required'],
    ['bad name', docs(so('Web_1')), 'document 1 (ScaledObject): metadata.name "Web_1" is not a valid object name (lowercase RFC 1123 subdomain)'],
    ['bad namespace', docs(so('web', { metadata: { name: 'web', namespace: 'Prod' } })), 'document 1 (ScaledObject): metadata.namespace "Prod" is not a valid namespace (lowercase RFC 1123 label)'],
    ['no spec', docs(so('web', { spec: undefined })), `${SO}: spec is required`],
    ['no scaleTargetRef', docs(withSpec({ scaleTargetRef: undefined })), `${SO}: spec.scaleTargetRef is required`],
    ['no scaleTargetRef.name', docs(withSpec({ scaleTargetRef: { kind: 'Deployment' } })), `${SO}: spec.scaleTargetRef.name is required`],
    ['scaleTargetRef.kind not a string', docs(withSpec({ scaleTargetRef: { name: 'web', kind: 3 } })), `${SO}: spec.scaleTargetRef.kind must be a string`],
    ['scaleTargetRef.apiVersion not a string', docs(withSpec({ scaleTargetRef: { name: 'web', apiVersion: true } })), `${SO}: spec.scaleTargetRef.apiVersion must be a string`],
    ['pollingInterval 0', docs(withSpec({ pollingInterval: 0 })), `${SO}: spec.pollingInterval must be an integer >= 1`],
    ['pollingInterval as a string', docs(withSpec({ pollingInterval: '30' })), `${SO}: spec.pollingInterval must be an integer >= 1`],
    ['cooldownPeriod negative', docs(withSpec({ cooldownPeriod: -1 })), `${SO}: spec.cooldownPeriod must be an integer >= 0`],
    ['minReplicaCount fractional', docs(withSpec({ minReplicaCount: 1.5 })), `${SO}: spec.minReplicaCount must be an integer >= 0`],
    ['maxReplicaCount 0', docs(withSpec({ maxReplicaCount: 0 })), `${SO}: spec.maxReplicaCount must be an integer >= 1`],
    ['maxReplicaCount beyond int32', docs(withSpec({ maxReplicaCount: 2 ** 31 })), `${SO}: spec.maxReplicaCount must be an integer >= 1`],
    ['min above max', docs(withSpec({ minReplicaCount: 5, maxReplicaCount: 3 })), `${SO}: spec.minReplicaCount (5) must not be greater than spec.maxReplicaCount (3)`],
    ['min above default max', docs(withSpec({ minReplicaCount: 101 })), `${SO}: spec.minReplicaCount (101) must not be greater than spec.maxReplicaCount (100)`],
    ['no triggers', docs(withSpec({ triggers: undefined })), `${SO}: spec.triggers is required`],
    ['triggers not a list', docs(withSpec({ triggers: { type: 'cpu' } })), `${SO}: spec.triggers must be a list`],
    ['empty triggers', docs(withSpec({ triggers: [] })), `${SO}: spec.triggers must hold at least one trigger`],
    ['trigger not a mapping', docs(withSpec({ triggers: ['cpu'] })), `${SO}: spec.triggers[0] must be a mapping`],
    ['trigger null', docs(withSpec({ triggers: [null] })), `${SO}: spec.triggers[0] is required`],
    ['no type', docs(withTrigger({ type: undefined })), `${SO}: spec.triggers[0].type is required`],
    ['empty type', docs(withTrigger({ type: '' })), `${SO}: spec.triggers[0].type is required`],
    ['type not a string', docs(withTrigger({ type: 7 })), `${SO}: spec.triggers[0].type must be a string`],
    ['no metadata', docs(withTrigger({ metadata: undefined })), `${SO}: spec.triggers[0].metadata is required`],
    ['metadata a list', docs(withTrigger({ metadata: ['a'] })), `${SO}: spec.triggers[0].metadata must be a mapping`],
    ['metadata value a mapping', docs(withTrigger({ metadata: { url: { a: 1 } } })), `${SO}: spec.triggers[0].metadata.url must be a string`],
    ['metadata value null', docs(withTrigger({ metadata: { url: null } })), `${SO}: spec.triggers[0].metadata.url must be a string`],
    ['name not a string', docs(withTrigger({ name: 1 })), `${SO}: spec.triggers[0].name must be a string`],
    [
      'duplicate trigger names',
      docs(withSpec({ triggers: [{ type: 'cpu', name: 'a', metadata: {} }, { type: 'memory', name: 'b', metadata: {} }, { type: 'cron', name: 'a', metadata: {} }] })),
      `${SO}: spec.triggers[2].name "a" is already used by spec.triggers[0]; trigger names must be unique`,
    ],
    ['bad metricType', docs(withTrigger({ metricType: 'Average' })), `${SO}: spec.triggers[0].metricType must be one of AverageValue, Value, Utilization (got "Average")`],
    ['useCachedMetrics not a boolean', docs(withTrigger({ useCachedMetrics: 'yes' })), `${SO}: spec.triggers[0].useCachedMetrics must be true or false`],
    ['useCachedMetrics on cpu', docs(withTrigger({ type: 'cpu', useCachedMetrics: true })), `${SO}: spec.triggers[0].useCachedMetrics is not supported for the "cpu" trigger`],
    ['authenticationRef not a mapping', docs(withTrigger({ authenticationRef: 'auth' })), `${SO}: spec.triggers[0].authenticationRef must be a mapping`],
    ['authenticationRef without name', docs(withTrigger({ authenticationRef: { kind: 'TriggerAuthentication' } })), `${SO}: spec.triggers[0].authenticationRef.name is required`],
    [
      'authenticationRef bad kind',
      docs(withTrigger({ authenticationRef: { name: 'a', kind: 'Secret' } })),
      `${SO}: spec.triggers[0].authenticationRef.kind must be one of TriggerAuthentication, ClusterTriggerAuthentication (got "Secret")`,
    ],
    ['TriggerAuthentication without spec', docs(so('ok'), ta(undefined)), 'document 2 (TriggerAuthentication default/auth): spec is required'],
    ['secretTargetRef not a list', docs(so('ok'), ta({ secretTargetRef: { parameter: 'p' } })), 'document 2 (TriggerAuthentication default/auth): spec.secretTargetRef must be a list'],
    ['secretTargetRef entry not a mapping', docs(so('ok'), ta({ secretTargetRef: ['x'] })), 'document 2 (TriggerAuthentication default/auth): spec.secretTargetRef[0] must be a mapping'],
    ['secretTargetRef without parameter', docs(so('ok'), ta({ secretTargetRef: [{ name: 's', key: 'k' }] })), 'document 2 (TriggerAuthentication default/auth): spec.secretTargetRef[0].parameter is required'],
    ['secretTargetRef without name', docs(so('ok'), ta({ secretTargetRef: [{ parameter: 'p', key: 'k' }] })), 'document 2 (TriggerAuthentication default/auth): spec.secretTargetRef[0].name is required'],
    ['secretTargetRef without key', docs(so('ok'), ta({ secretTargetRef: [{ parameter: 'p', name: 's' }] })), 'document 2 (TriggerAuthentication default/auth): spec.secretTargetRef[0].key is required'],
    [
      'ClusterTriggerAuthentication entry without key',
      docs({ apiVersion: 'keda.sh/v1alpha1', kind: 'ClusterTriggerAuthentication', metadata: { name: 'shared' }, spec: { secretTargetRef: [{ parameter: 'p', name: 's' }] } }),
      'document 1 (ClusterTriggerAuthentication shared): spec.secretTargetRef[0].key is required',
    ],
    ['Secret data not a mapping', docs(sec({ data: ['a'] })), 'document 1 (Secret ns1/creds): data must be a mapping'],
    ['Secret data not base64', docs(sec({ data: { token: PASSWORD } })), 'document 1 (Secret ns1/creds): data.token is not valid base64 (use stringData for plain text)'],
    ['Secret data not a string', docs(sec({ data: { token: 12 } })), 'document 1 (Secret ns1/creds): data.token must be a base64 string'],
    ['Secret bad key', docs(sec({ data: { 'a/b': b64('x') } })), 'document 1 (Secret ns1/creds): data.a/b is not a valid key (letters, digits, "-", "_" and "." only)'],
    ['Secret stringData value a list', docs(sec({ stringData: { token: ['x'] } })), 'document 1 (Secret ns1/creds): stringData.token must be a string'],
    ['Secret stringData bad key', docs(sec({ stringData: { 'a b': 'x' } })), 'document 1 (Secret ns1/creds): stringData.a b is not a valid key (letters, digits, "-", "_" and "." only)'],
    ['List items not a list', docs({ apiVersion: 'v1', kind: 'List', items: 'x' }), 'document 1 (List): items must be a list'],
    ['an error inside a List item', docs(so('ok'), { apiVersion: 'v1', kind: 'List', items: [so('fine'), withTrigger({ type: undefined })] }), 'document 2, items[1] (ScaledObject default/web): spec.triggers[0].type is required'],
    ['the example in the brief', docs(secret('s', 'default', { k: 'v' }), withTrigger({ type: undefined })), 'document 2 (ScaledObject default/web): spec.triggers[0].type is required'],
  ];
  for (const [name, text, message] of cases) {
    t.throws(() => parseKedaManifests(text), { name: 'ManifestError', message }, name);
  }

  t.test('YAML syntax errors give line and column, and never quote the source', async (t) => {
    const text = `${docs(so('ok'))}---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  token: ${IN_SYNTAX_ERROR}: oops\n`;
    const err = t.throws(() => parseKedaManifests(text)) as Error;
    t.match(err.message, /^document 2: YAML syntax error at line \d+, column \d+: .+ \([A-Z_]+\)$/);
    t.notMatch(err.message, IN_SYNTAX_ERROR);
    t.throws(() => parseKedaManifests('a: 1\na: 2\n'), { message: /^document 1: YAML syntax error at line 2, column 1: Map keys must be unique \(DUPLICATE_KEY\)$/ });
  });

  t.test('at start(), an invalid file throws with the file and the message', async (t) => {
    const { store, file } = setup(t, docs(secret('s', 'default', { k: 'v' }), withTrigger({ type: undefined })));
    await t.rejects(store.start(), { message: `${file}: document 2 (ScaledObject default/web): spec.triggers[0].type is required` });
    t.throws(() => store.list(), { message: /has not been loaded/ });
  });

  t.test('at start(), a missing file throws', async (t) => {
    const { store, file } = setup(t, '');
    const missing = new FileScaledObjectStore(join(file, '..', 'nope.yaml'), pino({ level: 'silent' }));
    await t.rejects(missing.start(), { message: /nope\.yaml: file does not exist$/ });
    await missing.close();
    await t.rejects(store.start(), { message: /keda\.yaml: the file holds no Kubernetes object/ });
  });
});

t.test('duplicates', async (t) => {
  t.throws(() => parseKedaManifests(docs(scaledObject('web'), scaledObject('api'), scaledObject('web'))), {
    message: 'document 3 (ScaledObject default/web): metadata.name duplicates document 1: ScaledObject default/web is defined twice',
  });
  t.throws(() => parseKedaManifests(docs(scaledObject('api'), { apiVersion: 'v1', kind: 'List', items: [scaledObject('web'), scaledObject('web')] })), {
    message: 'document 2, items[1] (ScaledObject default/web): metadata.name duplicates document 2, items[0]: ScaledObject default/web is defined twice',
  });
  t.throws(() => parseKedaManifests(docs(scaledObject('web', { metadata: { name: 'web' } }), scaledObject('web'))), { message: /^document 2 \(ScaledObject default\/web\): metadata.name duplicates document 1/ }, 'the default namespace counts');
  t.throws(() => parseKedaManifests(docs(secret('s', 'a', {}), secret('s', 'a', {}))), { message: 'document 2 (Secret a/s): metadata.name duplicates document 1: Secret a/s is defined twice' });
  t.throws(() => parseKedaManifests(docs(triggerAuth('t', 'a', []), triggerAuth('t', 'a', []))), { message: /^document 2 \(TriggerAuthentication a\/t\): metadata.name duplicates document 1/ });
  t.throws(() => parseKedaManifests(docs(triggerAuth('t', '', [], 'ClusterTriggerAuthentication'), triggerAuth('t', '', [], 'ClusterTriggerAuthentication'))), {
    message: 'document 2 (ClusterTriggerAuthentication t): metadata.name duplicates document 1: ClusterTriggerAuthentication t is defined twice',
  });

  const fine = parseKedaManifests(docs(scaledObject('web'), scaledObject('web', { metadata: { name: 'web', namespace: 'other' } }), secret('web', 'default', {}), triggerAuth('web', 'default', [])));
  t.strictSame([...fine.scaledObjects.keys()], ['default/web', 'other/web'], 'the same name in another namespace, or for another kind, is fine');
  t.equal(scaledObjectUid('default', 'web') === scaledObjectUid('other', 'web'), false, 'and gets another uid');
});

t.test('resolveAuth', async (t) => {
  const { store } = setup(
    t,
    docs(
      scaledObject('web'),
      secret('api-creds', 'default', { token: API_KEY, user: 'svc' }, { password: PASSWORD, user: 'from-stringData' }),
      triggerAuth('api-auth', 'default', [
        { parameter: 'bearerToken', name: 'api-creds', key: 'token' },
        { parameter: 'password', name: 'api-creds', key: 'password' },
        { parameter: 'username', name: 'api-creds', key: 'user' },
      ]),
      triggerAuth('wrong-key', 'default', [{ parameter: 'bearerToken', name: 'api-creds', key: 'tokn' }]),
      triggerAuth('no-secret', 'default', [{ parameter: 'bearerToken', name: 'api-cred', key: 'token' }]),
      triggerAuth('both', 'default', [
        { parameter: 'a', name: 'gone', key: 'x' },
        { parameter: 'b', name: 'api-creds', key: 'nope' },
        { parameter: 'c', name: 'api-creds', key: 'token' },
      ]),
      triggerAuth('empty', 'default', []),
      triggerAuth('elsewhere', 'team-b', [{ parameter: 'bearerToken', name: 'api-creds', key: 'token' }]),
      secret('shared-creds', 'keda', { token: CLUSTER_TOKEN }),
      secret('shared-creds', 'default', { token: 'not-this-one' }),
      triggerAuth('shared', '', [{ parameter: 'bearerToken', name: 'shared-creds', key: 'token' }], 'ClusterTriggerAuthentication'),
    ),
  );
  await store.start();
  t.strictSame(await auth(store, 'default', { name: 'api-auth' }), { bearerToken: API_KEY, password: PASSWORD, username: 'from-stringData' }, 'data and stringData, stringData winning on a shared key');
  t.strictSame(await auth(store, 'default', { name: 'api-auth', kind: 'TriggerAuthentication' }), { bearerToken: API_KEY, password: PASSWORD, username: 'from-stringData' });
  t.strictSame(await auth(store, 'default', { name: 'empty' }), {});

  const failures: [string, [string, AuthenticationRef], string][] = [
    ['no TriggerAuthentication', ['default', { name: 'nope' }], 'TriggerAuthentication default/nope not found'],
    ['TriggerAuthentication in another namespace', ['default', { name: 'elsewhere' }], 'TriggerAuthentication default/elsewhere not found'],
    ['no Secret', ['default', { name: 'no-secret' }], 'TriggerAuthentication default/no-secret: secret default/api-cred not found'],
    ['no key', ['default', { name: 'wrong-key' }], 'TriggerAuthentication default/wrong-key: secret default/api-creds has no key "tokn"'],
    ['every problem at once', ['default', { name: 'both' }], 'TriggerAuthentication default/both: secret default/gone not found; secret default/api-creds has no key "nope"'],
    ['Secret in another namespace', ['team-b', { name: 'elsewhere' }], 'TriggerAuthentication team-b/elsewhere: secret team-b/api-creds not found'],
    ['no ClusterTriggerAuthentication', ['default', { name: 'api-auth', kind: 'ClusterTriggerAuthentication' }], 'ClusterTriggerAuthentication api-auth not found'],
  ];
  for (const [name, args, message] of failures) {
    const err = (await auth(store, ...args).then(() => undefined, (e: unknown) => e)) as Error | undefined;
    t.equal(err?.message, message, name);
    for (const s of SECRETS) t.notMatch(err?.message ?? '', s);
  }

  t.test('ClusterTriggerAuthentication reads Secrets in the operator namespace', async (t) => {
    t.strictSame(await auth(store, 'default', { name: 'shared', kind: 'ClusterTriggerAuthentication' }), { bearerToken: CLUSTER_TOKEN });
    t.strictSame(await auth(store, 'anything', { name: 'shared', kind: 'ClusterTriggerAuthentication' }), { bearerToken: CLUSTER_TOKEN }, 'from any namespace');
    const other = setup(t, docs(triggerAuth('shared', '', [{ parameter: 'bearerToken', name: 'shared-creds', key: 'token' }], 'ClusterTriggerAuthentication'), secret('shared-creds', 'keda', { token: CLUSTER_TOKEN })), {
      clusterObjectNamespace: 'ops',
    });
    await other.store.start();
    await t.rejects(auth(other.store, 'default', { name: 'shared', kind: 'ClusterTriggerAuthentication' }), { message: 'ClusterTriggerAuthentication shared: secret ops/shared-creds not found' });
  });
});

t.test('unsupported TriggerAuthentication sources and foreign kinds are reported, not rejected', async (t) => {
  const { store, logs } = setup(
    t,
    docs(
      scaledObject('web'),
      {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'TriggerAuthentication',
        metadata: { name: 'mixed' },
        spec: { env: [{ parameter: 'x', name: 'X' }], podIdentity: { provider: 'azure-workload' }, secretTargetRef: [{ parameter: 'p', name: 's', key: 'k' }] },
      },
      { apiVersion: 'keda.sh/v1alpha1', kind: 'TriggerAuthentication', metadata: { name: 'env-only' }, spec: { env: [{ parameter: 'x', name: 'X' }] } },
      secret('s', 'default', { k: 'v' }),
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: {} },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { a: 'b' } },
      { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledJob', metadata: { name: 'job' }, spec: {} },
      { apiVersion: 'keda.k8s.io/v1alpha1', kind: 'ScaledObject', metadata: { name: 'old' }, spec: {} },
    ),
  );
  await store.start();
  t.strictSame(await auth(store, 'default', { name: 'mixed' }), { p: 'v' });
  t.strictSame(await auth(store, 'default', { name: 'env-only' }), {});
  const at = (level: number) => logs().filter((l) => l.level === level).map((l) => l.msg);
  t.strictSame(at(WARN), [
    'document 2 (TriggerAuthentication default/mixed): spec.env is not supported (only spec.secretTargetRef and spec.boundServiceAccountToken are resolved); parameters from it will be missing',
      'document 2 (TriggerAuthentication default/mixed): spec.podIdentity is not supported (only spec.secretTargetRef and spec.boundServiceAccountToken are resolved); parameters from it will be missing',
    'document 3 (TriggerAuthentication default/env-only): spec.env is not supported (only spec.secretTargetRef and spec.boundServiceAccountToken are resolved); parameters from it will be missing',
    'document 7 (ScaledJob): ignored: keda.sh/v1alpha1 ScaledJob is not supported (only keda.sh/v1alpha1 ScaledObject, TriggerAuthentication and ClusterTriggerAuthentication)',
    'document 8 (ScaledObject): ignored: keda.k8s.io/v1alpha1 ScaledObject is not supported (only keda.sh/v1alpha1 ScaledObject, TriggerAuthentication and ClusterTriggerAuthentication)',
  ]);
  t.strictSame(at(DEBUG), ['document 5 (Deployment): ignored: apps/v1 Deployment is not a kind this store reads', 'document 6 (ConfigMap): ignored: v1 ConfigMap is not a kind this store reads']);
});

t.test('live reload: generations move only for changed specs, uids never move', async (t) => {
  const v1 = docs(scaledObject('a'), scaledObject('b'));
  const s = setup(t, v1);
  let calledAtStart = 0;
  s.store.onChange(() => void calledAtStart++);
  await s.store.start();
  t.equal(calledAtStart, 1, 'listeners registered before start() hear the initial load');
  const uidA = s.store.get('default', 'a')?.uid;
  const uidB = s.store.get('default', 'b')?.uid;
  t.equal(uidA, scaledObjectUid('default', 'a'));
  const gens = () => Object.fromEntries(s.store.list().map((o) => [o.name, o.generation]));
  t.strictSame(gens(), { a: 1, b: 1 });

  const changedA = scaledObject('a');
  (changedA.spec as { triggers: { metadata: Record<string, string> }[] }).triggers[0]!.metadata.targetValue = '50';
  await s.edit(docs(changedA, scaledObject('b')));
  t.strictSame(gens(), { a: 2, b: 1 }, 'only the edited object moves');
  t.equal(s.store.get('default', 'a')?.spec.triggers[0]?.metadata.targetValue, '50');
  t.equal(s.store.get('default', 'a')?.uid, uidA);
  t.equal(s.store.get('default', 'b')?.uid, uidB);

  await s.edit(`# a comment, and an explicit default\n${docs(changedA, scaledObject('b', { spec: { ...(scaledObject('b').spec as object), pollingInterval: 30 } }))}`);
  t.strictSame(gens(), { a: 2, b: 1 }, 'a change that leaves the spec equal moves nothing');

  await s.edit(docs(scaledObject('b'), scaledObject('c')));
  t.strictSame(gens(), { b: 1, c: 1 }, 'a removed, c added');
  await s.edit(docs(scaledObject('a'), scaledObject('b'), scaledObject('c')));
  t.strictSame(gens(), { a: 3, b: 1, c: 1 }, 'a generation never goes back, even through a removal');
  t.equal(s.store.get('default', 'a')?.uid, uidA);

  await s.edit(docs(scaledObject('b'), scaledObject('a'), scaledObject('c'), secret('new', 'default', { k: 'v2' }), triggerAuth('t', 'default', [{ parameter: 'p', name: 'new', key: 'k' }])));
  t.strictSame(gens(), { b: 1, a: 3, c: 1 }, 'reordering and auth changes do not move generations');
  t.strictSame(await auth(s.store, 'default', { name: 't' }), { p: 'v2' }, 'new auth objects are served');
  t.strictSame(s.store.list().map((o) => o.name), ['b', 'a', 'c'], 'list() follows the file order');
});

t.test('a bad edit keeps the last good content and logs once', async (t) => {
  const good = docs(scaledObject('web'), secret('creds', 'default', { token: API_KEY }), triggerAuth('auth', 'default', [{ parameter: 'token', name: 'creds', key: 'token' }]));
  const s = setup(t, good);
  await s.store.start();
  const changesBefore = s.changes();
  const errors = () => s.logs().filter((l) => l.level >= ERROR);

  const dup = docs(scaledObject('web'), scaledObject('web'));
  await writeAtomic(s.file, dup);
  await eventually('the error line', async () => (errors().length > 0 ? true : undefined));
  await sleep(300);
  t.equal(errors().length, 1, 'one line');
  t.equal(errors()[0]?.msg, `invalid ScaledObjects file, keeping the last good one: ${s.file}: document 2 (ScaledObject default/web): metadata.name duplicates document 1: ScaledObject default/web is defined twice`);
  t.equal(s.changes(), changesBefore, 'no change announced');
  t.strictSame(s.store.list().map((o) => o.name), ['web']);
  t.strictSame(await auth(s.store, 'default', { name: 'auth' }), { token: API_KEY }, 'secrets still served');

  // A bad write whose broken line holds a secret: the message says where, not what.
  await writeAtomic(s.file, `${good}---\napiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData:\n  token: ${IN_SYNTAX_ERROR}: oops\n`);
  await eventually('the second error line', async () => (errors().length > 1 ? true : undefined));
  await sleep(300);
  t.equal(errors().length, 2, 'again one line for the second bad write');
  t.match(errors()[1]?.msg, /keeping the last good one: .*keda\.yaml: document 4: YAML syntax error at line \d+, column \d+/);
  t.equal(s.changes(), changesBefore);

  // An empty file (a non-atomic writer caught mid-way) is not an empty set.
  await writeFile(s.file, '');
  await eventually('the third error line', async () => (errors().length > 2 ? true : undefined));
  t.strictSame(s.store.list().map((o) => o.name), ['web'], 'still served');

  const fixed = docs(scaledObject('web'), scaledObject('api'));
  await s.edit(fixed);
  t.strictSame(s.store.list().map((o) => o.name), ['web', 'api'], 'the next good write is taken');
  t.equal(s.store.get('default', 'web')?.generation, 1, 'and web did not change');
  t.equal(errors().length, 3);
});

t.test('a listener that throws neither breaks reloads nor silences other listeners', async (t) => {
  const s = setup(t, docs(scaledObject('a')));
  s.store.onChange(() => {
    throw new Error('listener bug');
  });
  await s.store.start();
  await s.edit(docs(scaledObject('a'), scaledObject('b')));
  await s.edit(docs(scaledObject('a'), scaledObject('b'), scaledObject('c')));
  t.strictSame(s.store.list().map((o) => o.name), ['a', 'b', 'c']);
  t.ok(s.logs().some((l) => l.level === ERROR && l.msg === 'a ScaledObject store listener failed' && l.err === 'listener bug'));
});

t.test('no secret value appears in any log line', async (t) => {
  t.ok(allLines.length > 10, `${allLines.length} lines captured`);
  for (const s of SECRETS) {
    for (const form of [s, b64(s)]) {
      const leaked = allLines.filter((l) => l.includes(form));
      t.strictSame(leaked, [], `no line holds ${form === s ? 'the value' : 'its base64'} of a secret`);
    }
  }
});
