// The admission webhooks as kube-apiserver meets them: HTTPS over TLS 1.3 to the Service name,
// no client certificate, AdmissionReview v1 bodies shaped as the API server sends them, and the
// serving certificate rotated underneath.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:tls';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createTestPki, type Pair } from '../../helpers/pki.js';
import { writeAtomic } from '../../helpers/certdir.js';
import { eventually } from '../../helpers/loop.js';
import { AdmissionMetrics, CertificateMetrics } from '../../../src/observability/metrics.js';
import { scaledObjectFromApi } from '../../../src/operator/scaledobjects/manifest.js';
import type { ScaledObject } from '../../../src/operator/scaledobjects/types.js';
import { WEBHOOK_PATHS, startWebhookServer } from '../../../src/operator/webhook/server.js';
import { CustomCaTrust } from '../../../src/tls/custom-ca.js';
import { LiveTls } from '../../../src/tls/live-tls.js';
import { tlsPolicy } from '../../../src/tls/policy.js';
import { hasIpv6Loopback } from '../../helpers/ipv6.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
const certDir = join(root, 'certs');
await mkdir(certDir);
const certFile = join(certDir, 'tls.crt');
const keyFile = join(certDir, 'tls.key');
await copyFile(pki.tls.certFile, certFile);
await copyFile(pki.tls.keyFile, keyFile);

const logs: Record<string, unknown>[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
const registry = new Registry();
const tls = new LiveTls({ certFile, keyFile, caFiles: { ca: pki.ca.certFile } }, tlsPolicy('VersionTLS13', []), log, new CertificateMetrics(registry));
await tls.start({ debounceMs: 20 });
t.teardown(() => tls.close());

type Obj = Record<string, unknown>;
let existing: ScaledObject[] = [];
const trust = new CustomCaTrust([], log);
const server = await startWebhookServer({
  bindAddress: '127.0.0.1:0',
  tls,
  store: { list: () => existing },
  log,
  metrics: new AdmissionMetrics(registry),
  trust,
  scalerTimeoutMs: 3000,
});
t.teardown(() => server.close());

// --- kube-apiserver's side ------------------------------------------------------------------

/** The name kube-apiserver verifies: the Service's, from clientConfig.service. */
const SERVICE_NAME = 'keda-admission-webhooks.keda.svc';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = Obj>(): T;
}

function post(path: string, body: string | Buffer | object, o: { method?: string; contentType?: string | null; host?: string; port?: number; client?: Pair; maxVersion?: 'TLSv1.2' | 'TLSv1.3' } = {}): Promise<Answer> {
  const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: o.host ?? '127.0.0.1',
        port: o.port ?? server.port,
        path,
        method: o.method ?? 'POST',
        ca: pki.ca.cert,
        servername: SERVICE_NAME,
        minVersion: 'TLSv1.2',
        maxVersion: o.maxVersion ?? 'TLSv1.3',
        agent: false,
        ...(o.client ? { cert: o.client.cert, key: o.client.key } : {}),
        headers: {
          ...(o.contentType === null ? {} : { 'content-type': o.contentType ?? 'application/json' }),
          accept: 'application/json, */*',
          'content-length': Buffer.byteLength(payload),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

let uidSeq = 0;
const newUid = () => `5e4f0c2a-1b7d-4c3e-9a10-${String(++uidSeq).padStart(12, '0')}`;

const GVK = {
  scaledobjects: { kind: 'ScaledObject', path: WEBHOOK_PATHS.scaledobjects },
  triggerauthentications: { kind: 'TriggerAuthentication', path: WEBHOOK_PATHS.triggerauthentications },
  clustertriggerauthentications: { kind: 'ClusterTriggerAuthentication', path: WEBHOOK_PATHS.clustertriggerauthentications },
} as const;

/** An AdmissionReview as kube-apiserver v1.3x sends it to a validating webhook. */
function review(resource: keyof typeof GVK, operation: 'CREATE' | 'UPDATE' | 'DELETE', object: Obj | null, extra: { oldObject?: Obj | null; namespace?: string; uid?: string; dryRun?: boolean } = {}) {
  const meta = ((object ?? extra.oldObject)?.metadata ?? {}) as Obj;
  const kind = { group: 'keda.sh', version: 'v1alpha1', kind: GVK[resource].kind };
  const res = { group: 'keda.sh', version: 'v1alpha1', resource };
  const namespace = extra.namespace ?? (resource === 'clustertriggerauthentications' ? undefined : ((meta.namespace as string | undefined) ?? 'default'));
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid: extra.uid ?? newUid(),
      kind,
      resource: res,
      requestKind: kind,
      requestResource: res,
      name: meta.name,
      ...(namespace ? { namespace } : {}),
      operation,
      userInfo: { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] },
      object,
      oldObject: extra.oldObject ?? null,
      dryRun: extra.dryRun ?? false,
      options: operation === 'DELETE'
        ? { kind: 'DeleteOptions', apiVersion: 'meta.k8s.io/v1', propagationPolicy: 'Background' }
        : { kind: operation === 'CREATE' ? 'CreateOptions' : 'UpdateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl-client-side-apply', fieldValidation: 'Strict' },
    },
  };
}

const VALID_TRIGGER = { type: 'metrics-api', metadata: { url: 'http://orders-api.default.svc:8080/stats', valueLocation: 'queue.depth', targetValue: '20' } };

/** As stored by the API server: uid, generation, creationTimestamp, managedFields. */
function scaledObject(name: string, spec: Obj = {}, namespace: string | null = 'default'): Obj {
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: {
      name,
      ...(namespace === null ? {} : { namespace }),
      uid: `3c1f${name}`,
      generation: 1,
      creationTimestamp: '2025-06-01T10:00:00Z',
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
      managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'keda.sh/v1alpha1', fieldsType: 'FieldsV1', fieldsV1: {} }],
    },
    spec: {
      scaleTargetRef: { name: 'web' },
      minReplicaCount: 1,
      maxReplicaCount: 10,
      triggers: [VALID_TRIGGER],
      ...spec,
    },
  };
}

const stored = (raw: Obj): ScaledObject => ({ ...scaledObjectFromApi(raw), uid: String((raw.metadata as Obj).uid), generation: 1 });

interface ReviewAnswer {
  apiVersion: string;
  kind: string;
  response: { uid: string; allowed: boolean; status?: { code: number; reason?: string; message: string }; warnings?: string[] };
}
async function admit(body: ReturnType<typeof review>, path = GVK[body.request.resource.resource].path): Promise<ReviewAnswer['response']> {
  const r = await post(path, body);
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text}`);
  const answer = r.json<ReviewAnswer>();
  if (answer.apiVersion !== 'admission.k8s.io/v1' || answer.kind !== 'AdmissionReview') throw new Error(`not an AdmissionReview: ${r.text}`);
  if (answer.response.uid !== body.request.uid) throw new Error(`uid ${answer.response.uid} is not ${body.request.uid}`);
  return answer.response;
}

// --- verdicts -------------------------------------------------------------------------------

t.test('a valid ScaledObject is allowed, the uid echoed', async (t) => {
  const body = review('scaledobjects', 'CREATE', scaledObject('orders'), { uid: '705ab4f5-6393-11e8-b7cc-42010a800002' });
  const r = await post(WEBHOOK_PATHS.scaledobjects, body);
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /^application\/json/);
  t.same(r.json(), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true } });
});

t.test('minReplicaCount > maxReplicaCount is denied, naming the fields', async (t) => {
  const res = await admit(review('scaledobjects', 'CREATE', scaledObject('orders', { minReplicaCount: 5, maxReplicaCount: 2 })));
  t.equal(res.allowed, false);
  t.same(res.status, { code: 403, reason: 'Forbidden', message: 'ScaledObject default/orders: spec.minReplicaCount (5) must not be greater than spec.maxReplicaCount (2)' });
});

t.test('an unknown trigger type is denied, naming the trigger', async (t) => {
  const res = await admit(review('scaledobjects', 'CREATE', scaledObject('orders', { triggers: [VALID_TRIGGER, { type: 'no-such-scaler', metadata: { foo: 'bar' } }] })));
  t.equal(res.allowed, false);
  t.match(res.status?.message, /^ScaledObject default\/orders: spec\.triggers\[1\] \(no-such-scaler\): unsupported trigger type "no-such-scaler"/);
});

t.test('invalid trigger metadata is denied: metrics-api without url, prometheus without serverAddress', async (t) => {
  const res = await admit(review('scaledobjects', 'CREATE', scaledObject('orders', { triggers: [{ type: 'metrics-api', metadata: { valueLocation: 'v', targetValue: '1' } }] })));
  t.equal(res.allowed, false);
  t.equal(res.status?.message, 'ScaledObject default/orders: spec.triggers[0] (metrics-api): no url given in metadata');
  const prom = await admit(review('scaledobjects', 'CREATE', scaledObject('orders', { triggers: [{ type: 'prometheus', metadata: { query: 'sum(rate(http_requests_total[2m]))', threshold: '100' } }] })));
  t.equal(prom.status?.message, 'ScaledObject default/orders: spec.triggers[0] (prometheus): no serverAddress given in metadata');
});

t.test('credentials behind an authenticationRef are not checked (the webhook reads no Secret)', async (t) => {
  const trigger = { type: 'metrics-api', metadata: { url: 'https://orders-api.default.svc/stats', valueLocation: 'n', targetValue: '1', authMode: 'bearer' }, authenticationRef: { name: 'orders-token' } };
  const res = await admit(review('scaledobjects', 'CREATE', scaledObject('orders', { triggers: [trigger] })));
  t.same(res, { uid: res.uid, allowed: true });
});

t.test('one workload, one ScaledObject', async (t) => {
  existing = [stored(scaledObject('orders')), stored(scaledObject('billing', { scaleTargetRef: { name: 'billing', kind: 'StatefulSet', apiVersion: 'apps/v1' } }, 'payments'))];
  t.teardown(() => void (existing = []));

  const dup = await admit(review('scaledobjects', 'CREATE', scaledObject('orders-2')));
  t.equal(dup.allowed, false);
  t.equal(dup.status?.message, "ScaledObject default/orders-2: the workload 'web' of type 'apps/v1.Deployment' is already managed by the ScaledObject 'orders'");

  const sameObject = scaledObject('orders', { maxReplicaCount: 20 });
  t.equal((await admit(review('scaledobjects', 'UPDATE', sameObject, { oldObject: scaledObject('orders') }))).allowed, true, 'the same object, updated');
  t.equal((await admit(review('scaledobjects', 'CREATE', scaledObject('orders', {}, 'team-b')))).allowed, true, 'the same target in another namespace');
  t.equal((await admit(review('scaledobjects', 'CREATE', scaledObject('web-sts', { scaleTargetRef: { name: 'web', kind: 'StatefulSet', apiVersion: 'apps/v1' } })))).allowed, true, 'another kind, same name');

  const sts = await admit(review('scaledobjects', 'CREATE', scaledObject('billing-2', { scaleTargetRef: { name: 'billing', kind: 'StatefulSet' } }, 'payments')));
  t.equal(sts.status?.message, "ScaledObject payments/billing-2: the workload 'billing' of type 'apps/v1.StatefulSet' is already managed by the ScaledObject 'billing'");

  // kube-apiserver may leave metadata.namespace out of the object: the request's namespace counts.
  const noNamespace = await admit(review('scaledobjects', 'CREATE', scaledObject('orders-3', {}, null), { namespace: 'default' }));
  t.match(noNamespace.status?.message, /^ScaledObject default\/orders-3: .*ScaledObject 'orders'$/);
});

t.test('unsupported fields are allowed with a warning', async (t) => {
  const res = await admit(review('scaledobjects', 'CREATE', scaledObject('orders', { scaleTargetRef: { name: 'orders', envSourceContainerName: 'app' }, somethingNew: true })));
  t.equal(res.allowed, true);
  t.equal(res.warnings?.length, 1);
  t.match(res.warnings?.[0], /^spec\.somethingNew is not supported: this field is unknown/);
});

t.test('DELETE is allowed, whatever the object', async (t) => {
  const res = await admit(review('scaledobjects', 'DELETE', null, { oldObject: scaledObject('orders', { minReplicaCount: 9, maxReplicaCount: 1 }) }));
  t.equal(res.allowed, true);
});

t.test('TriggerAuthentication and ClusterTriggerAuthentication', async (t) => {
  const ta = (kind: string, spec: Obj, namespace?: string) => ({ apiVersion: 'keda.sh/v1alpha1', kind, metadata: { name: 'orders-token', ...(namespace ? { namespace } : {}), uid: 'ta-1' }, spec });
  const ok = await admit(review('triggerauthentications', 'CREATE', ta('TriggerAuthentication', { secretTargetRef: [{ parameter: 'token', name: 'orders', key: 'token' }] }, 'default')));
  t.same(ok, { uid: ok.uid, allowed: true });

  const bad = await admit(review('triggerauthentications', 'UPDATE', ta('TriggerAuthentication', { secretTargetRef: [{ parameter: 'token', key: 'token' }] }, 'default'), { oldObject: ta('TriggerAuthentication', {}, 'default') }));
  t.match(bad, { allowed: false, status: { code: 403, message: 'TriggerAuthentication default/orders-token: spec.secretTargetRef[0].name is required' } });

  const vault = await admit(review('clustertriggerauthentications', 'CREATE', ta('ClusterTriggerAuthentication', { hashiCorpVault: { address: 'https://vault:8200', authentication: 'token' } })));
  t.equal(vault.allowed, true);
  t.match(vault.warnings, [/^spec\.hashiCorpVault is not supported/]);

  const clusterBad = await admit(review('clustertriggerauthentications', 'CREATE', ta('ClusterTriggerAuthentication', { boundServiceAccountToken: [{ parameter: 'token', serviceAccountName: 'Not_A_Name' }] })));
  t.match(clusterBad.status?.message, /^ClusterTriggerAuthentication orders-token: spec\.boundServiceAccountToken\[0\]\.serviceAccountName "Not_A_Name" is not a valid/);
});

t.test('each denial is logged at info: object, user and reason, never the object itself', async (t) => {
  const before = logs.length;
  await admit(review('scaledobjects', 'CREATE', scaledObject('logged', { minReplicaCount: 3, maxReplicaCount: 1 }), { dryRun: true }));
  const line = logs.slice(before).find((l) => l.msg === 'ScaledObject denied');
  t.match(line, { level: 30, resource: 'scaledobjects', operation: 'CREATE', namespace: 'default', name: 'logged', user: 'kubernetes-admin', dryRun: true, reason: /minReplicaCount \(3\)/ });
  t.notMatch(JSON.stringify(logs.slice(before)), /orders-api\.default\.svc|managedFields/, 'no object content');
});

// --- HTTP edges -----------------------------------------------------------------------------

t.test('a malformed review is HTTP 400 with a Status saying why', async (t) => {
  const cases: [string, string | object, RegExp][] = [
    ['not JSON', '{"kind": "AdmissionReview",', /JSON/i],
    ['not a review', { hello: 'world' }, /malformed AdmissionReview: apiVersion must be admission\.k8s\.io\/v1/],
    ['v1beta1', { ...review('scaledobjects', 'CREATE', scaledObject('a')), apiVersion: 'admission.k8s.io/v1beta1' }, /only admissionReviewVersions \[v1\]/],
    ['no uid', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { ...review('scaledobjects', 'CREATE', scaledObject('a')).request, uid: undefined } }, /request\.uid is required/],
    ['an empty body', '', /empty|JSON/i],
  ];
  for (const [name, body, message] of cases) {
    const r = await post(WEBHOOK_PATHS.scaledobjects, body);
    t.equal(r.status, 400, name);
    t.match(r.json(), { kind: 'Status', status: 'Failure', code: 400, reason: 'BadRequest', message }, name);
  }
});

t.test('not JSON is 415; too large is 413', async (t) => {
  const text = await post(WEBHOOK_PATHS.scaledobjects, 'hello', { contentType: 'text/plain' });
  t.equal(text.status, 415);
  t.match(text.json(), { code: 415, message: /send the AdmissionReview as application\/json/ });
  const yaml = await post(WEBHOOK_PATHS.scaledobjects, 'kind: AdmissionReview', { contentType: 'application/yaml' });
  t.equal(yaml.status, 415);
  const none = await post(WEBHOOK_PATHS.scaledobjects, '{}', { contentType: null });
  t.equal(none.status, 415, 'no content type');

  const big = Buffer.alloc(8 * 1024 * 1024, 0x20);
  const large = await post(WEBHOOK_PATHS.scaledobjects, big).catch((err: NodeJS.ErrnoException) => ({ status: -1, text: err.code ?? err.message }) as Answer);
  // The server answers 413 as soon as Content-Length says too much; the client may still be writing.
  t.ok(large.status === 413 || large.text === 'EPIPE' || large.text === 'ECONNRESET', `too large: ${large.status} ${large.text.slice(0, 100)}`);
  if (large.status === 413) t.match(large.json(), { reason: 'RequestEntityTooLarge' });
});

t.test('a wrong path is 404, a wrong method 405', async (t) => {
  const wrong = await post('/validate-keda-sh-v1alpha1-scaledwidget', review('scaledobjects', 'CREATE', scaledObject('a')));
  t.equal(wrong.status, 404);
  t.match(wrong.json(), { reason: 'NotFound', message: /\/validate-keda-sh-v1alpha1-scaledobject/ });
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const r = await post(WEBHOOK_PATHS.triggerauthentications, '', { method, contentType: null });
    t.equal(r.status, 405, method);
    t.equal(r.headers.allow, 'POST', `${method}: Allow: POST`);
  }
});

t.test('metrics: reviews by resource, operation and verdict, latency in seconds', async (t) => {
  const text = await registry.metrics();
  const value = (labels: string) => Number(text.split('\n').find((l) => l.startsWith(`keda_webhook_admission_requests_total{${labels}}`))?.split(' ').pop() ?? 0);
  t.ok(value('resource="scaledobjects",operation="CREATE",allowed="true"') >= 5, 'allowed CREATEs');
  t.ok(value('resource="scaledobjects",operation="CREATE",allowed="false"') >= 5, 'denied CREATEs');
  t.ok(value('resource="scaledobjects",operation="DELETE",allowed="true"') >= 1, 'DELETE');
  t.ok(value('resource="triggerauthentications",operation="UPDATE",allowed="false"') >= 1, 'denied TriggerAuthentication UPDATE');
  t.ok(value('resource="scaledobjects",operation="unknown",allowed="error"') >= 5, 'malformed reviews');
  t.match(text, /keda_webhook_admission_duration_seconds_bucket\{le="0\.005",resource="scaledobjects",operation="CREATE"\} \d+/);
  t.notMatch(text, /keda_webhook_admission_requests_total\{[^}]*scaledjob/, 'a wrong path is not a series');
});

// --- TLS ------------------------------------------------------------------------------------

function handshake(o: { maxVersion?: 'TLSv1.2' | 'TLSv1.3'; port?: number; client?: Pair } = {}): Promise<{ protocol: string | null; serial: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(
      {
        host: '127.0.0.1',
        port: o.port ?? server.port,
        servername: SERVICE_NAME,
        ca: pki.ca.cert,
        minVersion: 'TLSv1.2',
        maxVersion: o.maxVersion ?? 'TLSv1.3',
        ...(o.client ? { cert: o.client.cert, key: o.client.key } : {}),
      },
      () => {
        const result = { protocol: s.getProtocol(), serial: s.getPeerX509Certificate()?.serialNumber ?? '' };
        s.end();
        resolve(result);
      },
    );
    s.on('error', reject);
  });
}

t.test('TLS 1.3 without a client certificate, as kube-apiserver calls webhooks; TLS 1.2 refused', async (t) => {
  const ok = await handshake();
  t.equal(ok.protocol, 'TLSv1.3');
  t.equal(ok.serial, new X509Certificate(pki.tls.cert).serialNumber);
  await t.rejects(handshake({ maxVersion: 'TLSv1.2' }), { code: /ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION|EPROTO/ });
  await t.rejects(post(WEBHOOK_PATHS.scaledobjects, review('scaledobjects', 'CREATE', scaledObject('a')), { maxVersion: 'TLSv1.2' }), 'no review over TLS 1.2');
});

t.test('the serving certificate is reloaded: new connections see the new one, TLS 1.3 still only', async (t) => {
  const next = await pki.issue('ca', 'webhook-serving-2', {
    commonName: 'keda-ts',
    dnsNames: ['keda-admission-webhooks.keda.svc', 'keda-admission-webhooks.keda.svc.cluster.local'],
    ipAddresses: ['127.0.0.1'],
    extendedUsages: ['serverAuth'],
  });
  const nextSerial = new X509Certificate(next.cert).serialNumber;
  await writeAtomic(keyFile, next.key);
  await writeAtomic(certFile, next.cert);
  await eventually('the new serving certificate', async () => ((await handshake()).serial === nextSerial ? true : undefined));
  const res = await admit(review('scaledobjects', 'CREATE', scaledObject('after-rotation')));
  t.equal(res.allowed, true, 'reviews are answered over the new certificate');
  await t.rejects(handshake({ maxVersion: 'TLSv1.2' }), 'TLS 1.2 still refused after the reload');
});

t.test('clientTrust: client certificates required when the API server is configured to present one', async (t) => {
  const strict = await startWebhookServer({ bindAddress: '127.0.0.1:0', tls, store: { list: () => [] }, log, trust, scalerTimeoutMs: 3000, clientTrust: ['ca'] });
  t.teardown(() => strict.close());
  const body = review('scaledobjects', 'CREATE', scaledObject('a'));
  const withCert = await post(WEBHOOK_PATHS.scaledobjects, body, { port: strict.port, client: pki.admin });
  t.equal(withCert.status, 200);
  await t.rejects(post(WEBHOOK_PATHS.scaledobjects, body, { port: strict.port }), 'no certificate, no answer');
  await t.rejects(post(WEBHOOK_PATHS.scaledobjects, body, { port: strict.port, client: pki.foreignAdmin }), 'a certificate from another CA, no answer');
});

t.test('`:port` listens on every interface of both address families, as KEDA\'s webhook does', { skip: hasIpv6Loopback() ? false : 'this machine has no IPv6' }, async (t) => {
  const s = await startWebhookServer({ bindAddress: ':0', tls, store: { list: () => [] }, log, scalerTimeoutMs: 3000 });
  t.teardown(() => s.close(1000));
  const body = review('scaledobjects', 'CREATE', scaledObject('a'));
  t.equal((await post(WEBHOOK_PATHS.scaledobjects, body, { port: s.port, host: '127.0.0.1' })).status, 200, 'over IPv4');
  t.equal((await post(WEBHOOK_PATHS.scaledobjects, body, { port: s.port, host: '::1' })).status, 200, 'over IPv6');
});

t.test('close lets the server go', async (t) => {
  const s = await startWebhookServer({ bindAddress: '127.0.0.1:0', tls, store: { list: () => [] }, log, scalerTimeoutMs: 3000 });
  t.equal((await post(WEBHOOK_PATHS.scaledobjects, review('scaledobjects', 'CREATE', scaledObject('a')), { port: s.port })).status, 200, 'without trust: the system roots');
  await s.close(1000);
  await t.rejects(handshake({ port: s.port }), { code: 'ECONNREFUSED' });
});
