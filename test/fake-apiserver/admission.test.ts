// The fake kube-apiserver's validating admission webhooks, against a tiny HTTPS webhook run by the
// test: what is called (rules, selectors, matchConditions, exemptions), what it is sent (the
// AdmissionReview as kube-apiserver builds it), and what the client gets back (the write, a
// denial, a call failure under each failurePolicy, Warning headers). What the fake leaves out is
// listed at the top of fake-apiserver.test.ts.
import t, { type Test } from 'tap';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { parseAllDocuments } from 'yaml';
import { createCA, issueCertificate } from '../../src/certs/x509.js';
import { startFakeApiServer, type KubeObject, type Status } from '../helpers/fake-apiserver.js';
import { KNOWN_MATCH_CONDITIONS } from '../helpers/fake-apiserver/admission.js';

// --- a webhook the test scripts ------------------------------------------------------------------
const ca = await createCA({ commonName: 'webhook test CA' });
const otherCa = await createCA({ commonName: 'nobody trusts this CA' });
const serving = await issueCertificate(ca, { commonName: 'hook', dnsNames: ['localhost', 'hook.web.svc'], ipAddresses: ['127.0.0.1'], extendedUsages: ['serverAuth'] });
const caBundle = Buffer.from(ca.certPem).toString('base64');

interface Received {
  url: string;
  headers: IncomingMessage['headers'];
  review: { apiVersion: string; kind: string; request: Record<string, unknown> & { uid: string; object: KubeObject | null; oldObject: KubeObject | null } };
}
type Answer = Record<string, unknown> | 'hang' | { httpStatus: number; body: unknown };
/** path → how to answer (given the review's request); default: allow. */
const behaviour = new Map<string, (req: Received['review']['request']) => Answer>();
const received: Received[] = [];

const hook: Server = createServer({ key: serving.keyPem, cert: serving.certPem, minVersion: 'TLSv1.3' }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['review'];
    received.push({ url: req.url ?? '', headers: req.headers, review });
    const path = (req.url ?? '').split('?')[0]!;
    const answer = (behaviour.get(path) ?? (() => ({ allowed: true })))(review.request);
    if (answer === 'hang') return;
    if ('httpStatus' in answer) {
      res.writeHead(answer.httpStatus as number, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, ...answer } }));
  });
});
await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
const hookPort = (hook.address() as AddressInfo).port;
t.teardown(() => {
  hook.closeAllConnections();
  return new Promise<void>((r) => hook.close(() => r()));
});

// --- the fake -------------------------------------------------------------------------------------
/** Services web/hook (which the certificate names) and web/uncovered (which it does not), port 8443. */
const resolver = (ns: string, name: string, port: number) => (ns === 'web' && (name === 'hook' || name === 'uncovered') && port === 8443 ? `127.0.0.1:${hookPort}` : undefined);
const api = await startFakeApiServer({ serviceResolver: resolver });
t.teardown(() => api.close());
api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'web' } });
api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'guarded', labels: { admission: 'on' } } });
api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'open' } });

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  /** Every Warning header line, as sent (Node joins repeated headers in `headers`). */
  warnings: string[];
  body: KubeObject & Partial<Status>;
}

/** One request to the fake as the admin, raw, so that every response header is visible. */
function call(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Reply> {
  const data = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const headers: OutgoingHttpHeaders = { Authorization: `Bearer ${api.adminToken}`, Accept: 'application/json' };
  if (data) Object.assign(headers, { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(data)) });
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: api.port, path, method, ca: api.caPem, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const warnings: string[] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) if (res.rawHeaders[i]!.toLowerCase() === 'warning') warnings.push(res.rawHeaders[i + 1]!);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, warnings, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Reply['body'] });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

const VWC = 'admissionregistration.k8s.io/v1';
let configSeq = 0;
/** Installs a configuration of one webhook (url form unless clientConfig is given); removed at the end of the test. */
function install(t: Test, webhook: Record<string, unknown>): string {
  const name = `config-${++configSeq}`;
  api.put({
    apiVersion: VWC,
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: `${name}.example.com`,
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        clientConfig: { url: `https://127.0.0.1:${hookPort}/allow`, caBundle },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['*'], resources: ['configmaps'] }],
        ...webhook,
      },
    ],
  });
  t.teardown(() => {
    api.delete(VWC, 'ValidatingWebhookConfiguration', undefined, name);
  });
  return `${name}.example.com`;
}

const configMap = (name: string, extra: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...extra }, data: { a: '1' } });
const cmPath = (ns: string, name = '') => `/api/v1/namespaces/${ns}/configmaps${name ? `/${name}` : ''}`;
const since = () => {
  const n = received.length;
  return () => received.slice(n);
};

// --- tests --------------------------------------------------------------------------------------

t.test('allowed: the AdmissionReview as kube-apiserver sends it, and the write proceeds', async (t) => {
  const name = install(t, {});
  const seen = since();
  const created = await call('POST', `${cmPath('web')}?fieldManager=tester`, configMap('cm1'));
  t.equal(created.status, 201);
  t.equal(seen().length, 1, 'called once');
  const { url, headers, review } = seen()[0]!;
  t.equal(url, '/allow?timeout=10s', 'the path, and the timeout the REST client adds');
  t.equal(headers['content-type'], 'application/json');
  t.equal(headers.host, `127.0.0.1:${hookPort}`);
  t.equal(review.apiVersion, 'admission.k8s.io/v1');
  t.equal(review.kind, 'AdmissionReview');
  const r = review.request;
  t.match(r, {
    uid: /^[0-9a-f-]{36}$/,
    kind: { group: '', version: 'v1', kind: 'ConfigMap' },
    resource: { group: '', version: 'v1', resource: 'configmaps' },
    requestKind: { group: '', version: 'v1', kind: 'ConfigMap' },
    requestResource: { group: '', version: 'v1', resource: 'configmaps' },
    name: 'cm1',
    namespace: 'web',
    operation: 'CREATE',
    userInfo: { username: 'admin', uid: 'admin-uid', groups: ['system:masters', 'system:authenticated'] },
    oldObject: null,
    dryRun: false,
    options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'tester' },
  });
  t.notOk('subResource' in r, 'no subresource');
  t.match(r.object, { metadata: { name: 'cm1', namespace: 'web', uid: created.body.metadata!.uid, creationTimestamp: String }, data: { a: '1' } }, 'the object as it will be stored');
  t.notOk(r.object!.metadata!.resourceVersion, 'no resourceVersion before it is stored');
  t.match(api.admissionCalls.at(-1), { webhook: name, outcome: 'allowed' });
  t.ok(api.get('v1', 'ConfigMap', 'web', 'cm1'), 'stored');

  // UPDATE: PUT, and every patch type after the patch is applied.
  const cur = created.body;
  const updates: [string, string, unknown, string][] = [
    ['PUT', cmPath('web', 'cm1'), { ...cur, data: { a: '2' } }, 'application/json'],
    ['PATCH', cmPath('web', 'cm1'), { data: { a: '3' } }, 'application/merge-patch+json'],
    ['PATCH', cmPath('web', 'cm1'), [{ op: 'replace', path: '/data/a', value: '4' }], 'application/json-patch+json'],
    ['PATCH', cmPath('web', 'cm1'), { data: { a: '5' } }, 'application/strategic-merge-patch+json'],
    ['PATCH', `${cmPath('web', 'cm1')}?fieldManager=ssa`, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm1}\ndata: {a: "6"}\n', 'application/apply-patch+yaml'],
  ];
  let before = '1';
  for (const [method, path, body, ct] of updates) {
    const s = since();
    const out = await call(method, path, body, ct);
    t.equal(out.status, 200, `${method} ${ct}`);
    const req = s()[0]!.review.request;
    t.equal(req.operation, 'UPDATE');
    t.match(req.options, { kind: 'UpdateOptions', apiVersion: 'meta.k8s.io/v1' }, 'PATCH too is admitted with UpdateOptions');
    t.equal((req.oldObject as { data: Record<string, string> }).data.a, before, 'oldObject: the stored object');
    t.equal((req.object as { data: Record<string, string> }).data.a, out.body.data && (out.body.data as Record<string, string>).a, 'object: the result of the patch');
    t.equal(req.object!.metadata!.resourceVersion, req.oldObject!.metadata!.resourceVersion, 'the resourceVersion being updated');
    before = (out.body.data as Record<string, string>).a!;
  }

  // An apply that creates is a CREATE.
  const s = since();
  const applied = await call('PATCH', `${cmPath('web', 'cm-applied')}?fieldManager=ssa`, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-applied}\n', 'application/apply-patch+yaml');
  t.equal(applied.status, 201);
  t.match(s()[0]!.review.request, { operation: 'CREATE', name: 'cm-applied', options: { kind: 'CreateOptions', fieldManager: 'ssa' } });

  // DELETE: no object, the old one, DeleteOptions.
  const d = since();
  t.equal((await call('DELETE', cmPath('web', 'cm1'), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' })).status, 200);
  t.match(d()[0]!.review.request, { operation: 'DELETE', name: 'cm1', object: null, oldObject: { metadata: { name: 'cm1' } }, options: { kind: 'DeleteOptions', apiVersion: 'meta.k8s.io/v1', propagationPolicy: 'Background' } });
  t.notOk(api.get('v1', 'ConfigMap', 'web', 'cm1'));

  // generateName: no name in the request, the generated one in the object.
  const g = since();
  const generated = await call('POST', cmPath('web'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'gen-' } });
  t.equal(generated.status, 201);
  t.notOk('name' in g()[0]!.review.request, 'request.name is empty on a generateName create');
  t.equal(g()[0]!.review.request.object!.metadata!.name, generated.body.metadata!.name);
});

t.test('deletecollection: one DELETE review per item, a refusal stops it', async (t) => {
  behaviour.set('/deny-keep', (r) => (r.name === 'dc-keep' ? { allowed: false, status: { message: 'keep it' } } : { allowed: true }));
  install(t, { clientConfig: { url: `https://127.0.0.1:${hookPort}/deny-keep`, caBundle }, rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['DELETE'], resources: ['configmaps'] }] });
  for (const [ns, name] of [['web', 'dc-1'], ['open', 'dc-2']]) await call('POST', cmPath(ns!), configMap(name!, { labels: { dc: 'yes' } }));
  const s = since();
  const out = await call('DELETE', '/api/v1/configmaps?labelSelector=dc%3Dyes');
  t.equal(out.status, 200);
  t.strictSame(
    s().map((r) => [r.review.request.operation, r.review.request.namespace, r.review.request.name]),
    [
      ['DELETE', 'open', 'dc-2'],
      ['DELETE', 'web', 'dc-1'],
    ],
    'each item with its own namespace',
  );
  await call('POST', cmPath('web'), configMap('dc-keep', { labels: { dc: 'yes' } }));
  const refused = await call('DELETE', `${cmPath('web')}?labelSelector=dc%3Dyes`);
  t.match(refused, { status: 403, body: { message: /denied the request: keep it$/ } });
  t.ok(api.get('v1', 'ConfigMap', 'web', 'dc-keep'));
});

t.test('denied: the Status kube-apiserver builds, nothing written, warnings still delivered', async (t) => {
  behaviour.set('/deny', (r) =>
    r.operation === 'CREATE' && (r.object as KubeObject).metadata!.name === 'plain'
      ? { allowed: false, status: { message: 'ConfigMaps named plain are not welcome' }, warnings: ['first warning', 'a "quoted" one'] }
      : r.operation === 'CREATE' && (r.object as KubeObject).metadata!.name === 'coded'
        ? { allowed: false, status: { code: 422, reason: 'Invalid', message: 'spec is wrong', details: { name: 'coded', kind: 'configmaps' } } }
        : r.operation === 'CREATE' && (r.object as KubeObject).metadata!.name === 'low'
          ? { allowed: false, status: { code: 200, reason: 'NotAnError' } }
          : { allowed: false },
  );
  const name = install(t, { clientConfig: { url: `https://127.0.0.1:${hookPort}/deny`, caBundle }, failurePolicy: 'Ignore' });

  const plain = await call('POST', cmPath('web'), configMap('plain'));
  t.equal(plain.status, 403, 'default code 403');
  t.match(plain.body, { kind: 'Status', status: 'Failure', code: 403, message: `admission webhook "${name}" denied the request: ConfigMaps named plain are not welcome` });
  t.notOk(plain.body.reason, 'no reason unless the webhook gave one');
  t.strictSame(plain.warnings, ['299 - "first warning"', '299 - "a \\"quoted\\" one"'], 'warnings of a denial reach the client');
  t.notOk(api.get('v1', 'ConfigMap', 'web', 'plain'), 'not written');
  t.match(api.admissionCalls.at(-1), { webhook: name, outcome: 'denied', warnings: ['first warning', 'a "quoted" one'] });

  const coded = await call('POST', cmPath('web'), configMap('coded'));
  t.match(coded, { status: 422, body: { code: 422, reason: 'Invalid', message: `admission webhook "${name}" denied the request: spec is wrong`, details: { name: 'coded', kind: 'configmaps' } } });
  const low = await call('POST', cmPath('web'), configMap('low'));
  t.match(low, { status: 403, body: { code: 403, reason: 'NotAnError', message: `admission webhook "${name}" denied the request: NotAnError` } }, 'a code below 400 becomes 403; the reason stands in for a message');
  const bare = await call('POST', cmPath('web'), configMap('bare'));
  t.equal(bare.body.message, `admission webhook "${name}" denied the request without explanation`);
  t.strictSame(bare.warnings, [], 'no warnings, no header');
});

t.test('allowed with warnings: Warning headers on the success', async (t) => {
  behaviour.set('/warn', () => ({ allowed: true, warnings: ['spec.fallback is not supported', 'spec.fallback is not supported', 'line\nbreak'] }));
  install(t, { clientConfig: { url: `https://localhost:${hookPort}/warn`, caBundle } });
  const out = await call('POST', cmPath('web'), configMap('warned'));
  t.equal(out.status, 201);
  t.strictSame(out.warnings, ['299 - "spec.fallback is not supported"', '299 - "line break"'], 'deduplicated, one line each');
});

t.test('call failures: failurePolicy Fail fails the write with 500, Ignore lets it through', async (t) => {
  behaviour.set('/hang', () => 'hang');
  behaviour.set('/bad-uid', () => ({ allowed: true, uid: 'someone-else' }));
  behaviour.set('/http-500', () => ({ httpStatus: 500, body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'the webhook broke', code: 500 } }));
  behaviour.set('/wrong-kind', () => ({ httpStatus: 200, body: { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', response: { allowed: true } } }));
  const url = (path: string, host = '127.0.0.1') => `https://${host}:${hookPort}${path}`;
  const cases: { what: string; webhook: Record<string, unknown>; message: (name: string) => string | RegExp }[] = [
    {
      what: 'timeout',
      webhook: { clientConfig: { url: url('/hang'), caBundle }, timeoutSeconds: 1 },
      message: (n) => `Internal error occurred: failed calling webhook "${n}": failed to call webhook: Post "${url('/hang')}?timeout=1s": context deadline exceeded`,
    },
    {
      what: 'caBundle of another CA',
      webhook: { clientConfig: { url: url('/allow'), caBundle: Buffer.from(otherCa.certPem).toString('base64') } },
      message: (n) => `Internal error occurred: failed calling webhook "${n}": failed to call webhook: Post "${url('/allow')}?timeout=10s": tls: failed to verify certificate: x509: certificate signed by unknown authority`,
    },
    {
      what: 'no caBundle (system roots)',
      webhook: { clientConfig: { url: url('/allow') } },
      message: (n) => `Internal error occurred: failed calling webhook "${n}": failed to call webhook: Post "${url('/allow')}?timeout=10s": tls: failed to verify certificate: x509: certificate signed by unknown authority`,
    },
    {
      what: 'a service whose name the certificate does not cover',
      webhook: { clientConfig: { service: { namespace: 'web', name: 'uncovered', port: 8443, path: '/allow' }, caBundle } },
      message: (n) =>
        `Internal error occurred: failed calling webhook "${n}": failed to call webhook: Post "https://uncovered.web.svc:8443/allow?timeout=10s": tls: failed to verify certificate: x509: certificate is valid for localhost, hook.web.svc, 127.0.0.1, not uncovered.web.svc`,
    },
    {
      what: 'an unknown service',
      webhook: { clientConfig: { service: { namespace: 'web', name: 'missing', path: '/allow' }, caBundle } },
      message: (n) => `Internal error occurred: failed calling webhook "${n}": failed to call webhook: Post "https://missing.web.svc:443/allow?timeout=10s": service "missing" not found`,
    },
    {
      what: 'connection refused',
      webhook: { clientConfig: { url: 'https://127.0.0.1:1/allow', caBundle } },
      message: (n) => `Internal error occurred: failed calling webhook "${n}": failed to call webhook: Post "https://127.0.0.1:1/allow?timeout=10s": dial tcp 127.0.0.1:1: connect: connection refused`,
    },
    {
      what: 'a response for another request',
      webhook: { clientConfig: { url: url('/bad-uid'), caBundle } },
      message: (n) => new RegExp(`^Internal error occurred: failed calling webhook "${n.replace(/\./g, '\\.')}": received invalid webhook response: expected response\\.uid="[0-9a-f-]{36}", got "someone-else"$`),
    },
    {
      what: 'a v1beta1 answer',
      webhook: { clientConfig: { url: url('/wrong-kind'), caBundle } },
      message: (n) => new RegExp(`^Internal error occurred: failed calling webhook "${n.replace(/\./g, '\\.')}": received invalid webhook response: expected response\\.uid="[0-9a-f-]{36}", got ""$`),
    },
    {
      what: 'HTTP 500 from the webhook',
      webhook: { clientConfig: { url: url('/http-500'), caBundle } },
      message: (n) => `Internal error occurred: failed calling webhook "${n}": failed to call webhook: the webhook broke`,
    },
    {
      what: 'only v1beta1 reviews accepted',
      webhook: { clientConfig: { url: url('/allow'), caBundle }, admissionReviewVersions: ['v1beta1'] },
      message: (n) => `Internal error occurred: failed calling webhook "${n}": webhook does not accept known AdmissionReview versions (v1)`,
    },
  ];
  let i = 0;
  for (const c of cases) {
    await t.test(c.what, async (t) => {
      const fail = install(t, { ...c.webhook, failurePolicy: 'Fail' });
      const failName = `failing-${++i}`;
      const out = await call('POST', cmPath('web'), configMap(failName));
      t.equal(out.status, 500);
      t.equal(out.body.reason, 'InternalError');
      const expected = c.message(fail);
      if (typeof expected === 'string') t.equal(out.body.message, expected);
      else t.match(out.body.message, expected);
      t.match(out.body.details, { causes: [{ message: out.body.message!.replace(/^Internal error occurred: /, '') }] });
      t.notOk(api.get('v1', 'ConfigMap', 'web', failName), 'not written');
      t.match(api.admissionCalls.at(-1), { webhook: fail, outcome: 'failed' });
      api.delete(VWC, 'ValidatingWebhookConfiguration', undefined, fail.replace(/\.example\.com$/, ''));

      const ignore = install(t, { ...c.webhook, failurePolicy: 'Ignore' });
      const okName = `ignored-${i}`;
      const passed = await call('POST', cmPath('web'), configMap(okName));
      t.equal(passed.status, 201, 'failurePolicy Ignore: written');
      t.match(api.admissionCalls.at(-1), { webhook: ignore, outcome: 'failed-open' });
    });
  }
});

t.test('the service form: dialled through the resolver, verified for <svc>.<ns>.svc, path from the service', async (t) => {
  const seen = since();
  const name = install(t, { clientConfig: { service: { namespace: 'web', name: 'hook', port: 8443, path: '/allow' }, caBundle } });
  const out = await call('POST', cmPath('web'), configMap('via-service'));
  t.equal(out.status, 201);
  t.equal(seen().length, 1);
  t.equal(seen()[0]!.url, '/allow?timeout=10s');
  t.equal(seen()[0]!.headers.host, 'hook.web.svc:8443', 'Host is the service name');
  t.match(api.admissionCalls.at(-1), { webhook: name, outcome: 'allowed' });
  api.setServiceResolver(undefined);
  t.teardown(() => api.setServiceResolver(resolver));
  const unresolved = await call('POST', cmPath('web'), configMap('no-resolver'));
  t.match(unresolved.body.message, /service "hook" not found$/, 'without a resolver every service is not found');
});

t.test('rules: operations, groups, versions, resources, subresources, scope; not matching → not called', async (t) => {
  const deployment = (name: string) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
  });
  const dep = await call('POST', '/apis/apps/v1/namespaces/web/deployments', deployment('d1'));
  t.equal(dep.status, 201);
  const scalePath = '/apis/apps/v1/namespaces/web/deployments/d1/scale';
  const statusPath = '/apis/apps/v1/namespaces/web/deployments/d1/status';
  const writes = async () => {
    const s = since();
    await call('POST', cmPath('web'), configMap(`rules-${Math.random().toString(36).slice(2, 8)}`));
    await call('PATCH', scalePath, { spec: { replicas: Math.floor(Math.random() * 100) + 2 } }, 'application/merge-patch+json');
    await call('PATCH', statusPath, { status: { replicas: Math.floor(Math.random() * 100) } }, 'application/merge-patch+json');
    await call('PATCH', '/apis/apps/v1/namespaces/web/deployments/d1', { metadata: { labels: { n: Math.random().toString(36).slice(2, 8) } } }, 'application/merge-patch+json');
    await call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${Math.random().toString(36).slice(2, 8)}` } });
    return s().map((r) => `${r.review.request.operation} ${(r.review.request.resource as { resource: string }).resource}${r.review.request.subResource ? `/${String(r.review.request.subResource)}` : ''}`);
  };
  const cases: [string, Record<string, unknown>[], string[]][] = [
    ['configmaps only', [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }], ['CREATE configmaps']],
    ['wrong operation', [{ apiGroups: [''], apiVersions: ['v1'], operations: ['DELETE'], resources: ['configmaps'] }], []],
    ['wrong group', [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['*'], resources: ['configmaps'] }], []],
    ['wrong version', [{ apiGroups: [''], apiVersions: ['v2'], operations: ['*'], resources: ['configmaps'] }], []],
    ['deployments: the main resource only', [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments'] }], ['UPDATE deployments']],
    ['deployments/status only', [{ apiGroups: ['apps'], apiVersions: ['*'], operations: ['UPDATE'], resources: ['deployments/status'] }], ['UPDATE deployments/status']],
    // rules.Matcher: `res/*` matches any subresource, and (sub "*" matching "") the resource itself.
    ['deployments/*', [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments/*'] }], ['UPDATE deployments/scale', 'UPDATE deployments/status', 'UPDATE deployments']],
    ['* is every main resource', [{ apiGroups: ['*'], apiVersions: ['*'], operations: ['*'], resources: ['*'] }], ['CREATE configmaps', 'UPDATE deployments', 'CREATE namespaces']],
    ['*/* is everything', [{ apiGroups: ['*'], apiVersions: ['*'], operations: ['*'], resources: ['*/*'] }], ['CREATE configmaps', 'UPDATE deployments/scale', 'UPDATE deployments/status', 'UPDATE deployments', 'CREATE namespaces']],
    ['scope Namespaced', [{ apiGroups: ['*'], apiVersions: ['*'], operations: ['*'], resources: ['*'], scope: 'Namespaced' }], ['CREATE configmaps', 'UPDATE deployments']],
    ['scope Cluster', [{ apiGroups: ['*'], apiVersions: ['*'], operations: ['*'], resources: ['*'], scope: 'Cluster' }], ['CREATE namespaces']],
    ['no rules', [], []],
  ];
  for (const [what, rules, expected] of cases) {
    await t.test(what, async (t) => {
      install(t, { rules });
      t.strictSame(await writes(), expected);
    });
  }

  await t.test('the scale subresource is reviewed as an autoscaling/v1 Scale', async (t) => {
    install(t, { rules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments/scale'] }] });
    const s = since();
    t.equal((await call('PATCH', scalePath, { spec: { replicas: 7 } }, 'application/merge-patch+json')).status, 200);
    t.match(s()[0]!.review.request, {
      kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      subResource: 'scale',
      requestSubResource: 'scale',
      name: 'd1',
      object: { kind: 'Scale', apiVersion: 'autoscaling/v1', spec: { replicas: 7 } },
      oldObject: { kind: 'Scale', apiVersion: 'autoscaling/v1' },
    });
  });

  await t.test('a Namespace: its own name as request.namespace once it exists', async (t) => {
    install(t, { rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['*'], resources: ['namespaces'] }] });
    const s = since();
    await call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns-lifecycle' } });
    await call('PATCH', '/api/v1/namespaces/ns-lifecycle', { metadata: { labels: { x: 'y' } } }, 'application/merge-patch+json');
    await call('DELETE', '/api/v1/namespaces/ns-lifecycle');
    t.strictSame(
      s().map((r) => [r.review.request.operation, r.review.request.name, r.review.request.namespace]),
      [
        ['CREATE', 'ns-lifecycle', undefined],
        ['UPDATE', 'ns-lifecycle', 'ns-lifecycle'],
        ['DELETE', 'ns-lifecycle', 'ns-lifecycle'],
      ],
    );
  });

  await t.test('token requests and reviews are creates too', async (t) => {
    install(t, { rules: [{ apiGroups: ['*'], apiVersions: ['*'], operations: ['CREATE'], resources: ['serviceaccounts/token', 'tokenreviews'] }] });
    await call('POST', '/api/v1/namespaces/web/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sa' } });
    const s = since();
    t.equal((await call('POST', '/api/v1/namespaces/web/serviceaccounts/sa/token', { spec: {} })).status, 201);
    t.equal((await call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'x' } })).status, 201);
    t.match(
      s().map((r) => r.review.request),
      [
        { kind: { group: 'authentication.k8s.io', kind: 'TokenRequest' }, resource: { resource: 'serviceaccounts' }, subResource: 'token', name: 'sa', namespace: 'web', object: { spec: { audiences: Array } } },
        { kind: { group: 'authentication.k8s.io', kind: 'TokenReview' }, resource: { resource: 'tokenreviews' }, object: { spec: { token: 'x' } } },
      ],
    );
  });
});

t.test('webhook configurations themselves are never sent to webhooks', async (t) => {
  behaviour.set('/deny-all', () => ({ allowed: false, status: { message: 'no' } }));
  install(t, { clientConfig: { url: `https://127.0.0.1:${hookPort}/deny-all`, caBundle }, rules: [{ apiGroups: ['*'], apiVersions: ['*'], operations: ['*'], resources: ['*/*'] }] });
  const s = since();
  const vwc = await call('POST', '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations', { apiVersion: VWC, kind: 'ValidatingWebhookConfiguration', metadata: { name: 'exempt' }, webhooks: [] });
  t.equal(vwc.status, 201, 'so that a broken webhook can always be removed');
  t.equal((await call('DELETE', '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/exempt')).status, 200);
  t.equal(s().length, 0);
  t.equal((await call('POST', cmPath('web'), configMap('denied-by-all'))).status, 403, 'everything else is');
});

t.test('namespaceSelector and objectSelector', async (t) => {
  await t.test('namespaceSelector: the labels of the namespace', async (t) => {
    install(t, { namespaceSelector: { matchLabels: { admission: 'on' } } });
    const s = since();
    await call('POST', cmPath('guarded'), configMap('ns-sel'));
    await call('POST', cmPath('open'), configMap('ns-sel'));
    t.strictSame(s().map((r) => r.review.request.namespace), ['guarded']);
  });
  await t.test('namespaceSelector with expressions; the built-in kubernetes.io/metadata.name label', async (t) => {
    install(t, { namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['guarded'] }, { key: 'admission', operator: 'DoesNotExist' }] } });
    const s = since();
    await call('POST', cmPath('guarded'), configMap('ns-expr'));
    await call('POST', cmPath('open'), configMap('ns-expr'));
    t.strictSame(s().map((r) => r.review.request.namespace), ['open']);
  });
  await t.test('a Namespace being created is judged by its own labels', async (t) => {
    install(t, { namespaceSelector: { matchLabels: { team: 'a' } }, rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['namespaces'] }] });
    const s = since();
    await call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a', labels: { team: 'a' } } });
    await call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-b', labels: { team: 'b' } } });
    t.strictSame(s().map((r) => r.review.request.name), ['team-a']);
  });
  await t.test('objectSelector: the object or the old object', async (t) => {
    install(t, { objectSelector: { matchLabels: { watched: 'yes' } } });
    const s = since();
    await call('POST', cmPath('web'), configMap('obj-plain'));
    await call('POST', cmPath('web'), configMap('obj-watched', { labels: { watched: 'yes' } }));
    // Removing the label: the old object still matches.
    await call('PATCH', cmPath('web', 'obj-watched'), { metadata: { labels: { watched: null } } }, 'application/merge-patch+json');
    // Now neither does.
    await call('PATCH', cmPath('web', 'obj-watched'), { data: { b: '2' } }, 'application/merge-patch+json');
    t.strictSame(
      s().map((r) => `${String(r.review.request.operation)} ${String(r.review.request.name)}`),
      ['CREATE obj-watched', 'UPDATE obj-watched'],
    );
  });
});

t.test('matchConditions: the known expressions are evaluated, any other CEL fails the request', async (t) => {
  const [expression] = Object.keys(KNOWN_MATCH_CONDITIONS);
  const so = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name }, spec });
  const soPath = (name = '') => `/apis/keda.sh/v1alpha1/namespaces/web/scaledobjects${name ? `/${name}` : ''}`;
  await t.test('spec-changed', async (t) => {
    const name = install(t, { rules: [{ apiGroups: ['keda.sh'], apiVersions: ['v1alpha1'], operations: ['*'], resources: ['scaledobjects'] }], matchConditions: [{ name: 'spec-changed', expression }] });
    const s = since();
    t.equal((await call('POST', soPath(), so('so1', { scaleTargetRef: { name: 'a' } }))).status, 201);
    await call('PATCH', soPath('so1'), { metadata: { labels: { l: '1' } } }, 'application/merge-patch+json');
    await call('PATCH', soPath('so1'), { metadata: { finalizers: ['keep'] } }, 'application/merge-patch+json');
    await call('PATCH', soPath('so1'), { spec: { scaleTargetRef: { name: 'b' } } }, 'application/merge-patch+json');
    await call('DELETE', soPath('so1'));
    await call('PATCH', soPath('so1'), { spec: { scaleTargetRef: { name: 'c' } } }, 'application/merge-patch+json');
    t.strictSame(
      s().map((r) => r.review.request.operation),
      ['CREATE', 'UPDATE', 'DELETE'],
      'CREATE, the spec change and DELETE; not the label, the finalizer, nor the update of a deleting object',
    );
    t.match(
      api.admissionCalls.filter((c) => c.webhook === name).map((c) => c.outcome),
      ['allowed', 'skipped', 'skipped', 'allowed', 'allowed', 'skipped'],
    );
  });
  await t.test('any other expression: 500, whatever the failurePolicy', async (t) => {
    install(t, { failurePolicy: 'Ignore', matchConditions: [{ name: 'other', expression: "object.metadata.name != 'x'" }] });
    const out = await call('POST', cmPath('web'), configMap('cel'));
    t.equal(out.status, 500);
    t.match(out.body.message, /^Internal error occurred: fake apiserver cannot evaluate CEL expression "object\.metadata\.name != 'x'" \(matchCondition "other" of webhook "config-\d+\.example\.com"/);
    t.notOk(api.get('v1', 'ConfigMap', 'web', 'cel'));
  });
  await t.test('every matchCondition of deploy/base/admission-webhook.yaml is known', async (t) => {
    const docs = parseAllDocuments(await readFile(new URL('../../deploy/base/admission-webhook.yaml', import.meta.url), 'utf8')).map((d) => d.toJS() as { kind?: string; webhooks?: { matchConditions?: { expression: string }[] }[] });
    const expressions = docs.filter((d) => d.kind === 'ValidatingWebhookConfiguration').flatMap((d) => (d.webhooks ?? []).flatMap((w) => (w.matchConditions ?? []).map((c) => c.expression)));
    t.ok(expressions.length > 0);
    for (const e of expressions) t.ok(KNOWN_MATCH_CONDITIONS[e], `known: ${e}`);
  });
});

t.test('dry run: only webhooks without side effects are called, with dryRun: true', async (t) => {
  await t.test('sideEffects None', async (t) => {
    install(t, {});
    const s = since();
    const out = await call('POST', `${cmPath('web')}?dryRun=All`, configMap('dry'));
    t.equal(out.status, 201);
    t.match(s()[0]!.review.request, { dryRun: true, options: { dryRun: ['All'] } });
    t.notOk(api.get('v1', 'ConfigMap', 'web', 'dry'), 'not stored');
  });
  await t.test('sideEffects Some: the request is refused, the webhook not called', async (t) => {
    const name = install(t, { sideEffects: 'Some', failurePolicy: 'Ignore' });
    const s = since();
    const out = await call('POST', `${cmPath('web')}?dryRun=All`, configMap('dry-some'));
    t.match(out, { status: 400, body: { reason: 'BadRequest', message: `admission webhook "${name}" does not support dry run` } });
    t.equal(s().length, 0);
    t.equal((await call('POST', cmPath('web'), configMap('wet-some'))).status, 201, 'a real write calls it');
  });
});

t.test('several webhooks: all called; the first refusal in configuration order is reported', async (t) => {
  behaviour.set('/deny-a', () => ({ allowed: false, status: { message: 'a says no' } }));
  behaviour.set('/deny-b', () => ({ allowed: false, status: { message: 'b says no' } }));
  const b = install(t, { clientConfig: { url: `https://127.0.0.1:${hookPort}/deny-a`, caBundle } });
  install(t, { clientConfig: { url: `https://127.0.0.1:${hookPort}/deny-b`, caBundle } });
  install(t, {});
  const s = since();
  const out = await call('POST', cmPath('web'), configMap('many'));
  t.equal(s().length, 3);
  t.equal(out.body.message, `admission webhook "${b}" denied the request: a says no`);
});
