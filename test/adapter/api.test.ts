// The API surface the cluster relies on: discovery, metric values, OpenAPI, health, version, and
// a Kubernetes Status for every error. Real TLS 1.3 with client certificates throughout.
import t, { type Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki } from '../helpers/pki.js';
import { pkiFlags, startTestAdapter } from '../helpers/adapter.js';
import { get } from '../helpers/https.js';
import { canonicalQuantity } from '../../src/k8s/quantity.js';

const GV = '/apis/external.metrics.k8s.io/v1beta1';

const dir = t.testdir();
const pki = await createTestPki(dir);
const metricsFile = join(dir, 'metrics.yaml');
await writeFile(
  metricsFile,
  `metrics:
  - {namespace: default, name: s0-queue-depth, labels: {queue: a, scaledobject.keda.sh/name: worker}, value: "1500m", window: 60}
  - {namespace: default, name: s0-queue-depth, labels: {queue: b, scaledobject.keda.sh/name: worker}, value: 2000}
  - {namespace: default, name: s0-memory, labels: null, value: "1Gi"}
  - {name: s1-anywhere, value: 0.25}
`,
);
const adapter = await startTestAdapter([...pkiFlags(pki), '--metrics-source=file', `--metrics-source-file=${metricsFile}`]);
t.teardown(() => adapter.shutdown());

const admin = (path: string, extra: Partial<Parameters<typeof get>[0]> = {}) => get({ port: adapter.port, path, ca: pki.ca.cert, client: pki.admin, ...extra });

t.test('discovery documents', async (t) => {
  const apis = (await admin('/apis')).json();
  t.same(apis, {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [{ name: 'external.metrics.k8s.io', versions: [{ groupVersion: 'external.metrics.k8s.io/v1beta1', version: 'v1beta1' }], preferredVersion: { groupVersion: 'external.metrics.k8s.io/v1beta1', version: 'v1beta1' } }],
  });
  const group = (await admin('/apis/external.metrics.k8s.io')).json();
  t.equal(group.kind, 'APIGroup');
  t.equal(group.name, 'external.metrics.k8s.io');
  const res = await admin(GV);
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  t.same(res.json().resources, [{ name: 'externalmetrics', singularName: '', namespaced: true, kind: 'ExternalMetricValueList', verbs: ['get'] }]);
  t.equal((await admin(`${GV}/`)).status, 200, 'trailing slash is the same document');
});

t.test('aggregated discovery request falls back to the plain document', async (t) => {
  const res = await admin('/apis', { headers: [['Accept', 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json']] });
  t.equal(res.status, 200);
  t.equal(res.json().kind, 'APIGroupList');
});

t.test('metric values: items, labels, window, canonical quantities', async (t) => {
  const res = await admin(`${GV}/namespaces/default/s0-queue-depth?labelSelector=${encodeURIComponent('scaledobject.keda.sh/name=worker')}`);
  t.equal(res.status, 200);
  const body = res.json<{ kind: string; apiVersion: string; metadata: object; items: Record<string, unknown>[] }>();
  t.equal(body.kind, 'ExternalMetricValueList');
  t.equal(body.apiVersion, 'external.metrics.k8s.io/v1beta1');
  t.same(body.metadata, {});
  t.equal(body.items.length, 2);
  t.same(body.items.map((i) => i.value), ['1500m', '2k']);
  t.same(body.items[0]!.metricLabels, { queue: 'a', 'scaledobject.keda.sh/name': 'worker' });
  t.equal(body.items[0]!.window, 60);
  t.notOk('window' in body.items[1]!, 'window omitted when unknown');
  t.match(body.items[0]!.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  for (const item of body.items) t.equal(canonicalQuantity(item.value as string), item.value, 'value is already canonical');
});

t.test('selector narrows the items; metricLabels null stays null', async (t) => {
  const one = (await admin(`${GV}/namespaces/default/s0-queue-depth?labelSelector=${encodeURIComponent('queue in (b),scaledobject.keda.sh/name=worker')}`)).json<{ items: { value: string }[] }>();
  t.same(one.items.map((i) => i.value), ['2k']);
  const mem = (await admin(`${GV}/namespaces/default/s0-memory`)).json<{ items: { value: string; metricLabels: unknown }[] }>();
  t.equal(mem.items[0]!.value, '1Gi');
  t.equal(mem.items[0]!.metricLabels, null);
  const anywhere = (await admin(`${GV}/namespaces/other-ns/s1-anywhere`)).json<{ items: { value: string }[] }>();
  t.equal(anywhere.items[0]!.value, '250m');
});

t.test('unknown query parameters are ignored', async (t) => {
  const res = await admin(`${GV}/namespaces/default/s0-memory?timeout=32s&foo=bar&labelSelector=`);
  t.equal(res.status, 200);
  t.equal((await admin(`${GV}?timeout=32s`)).status, 200);
});

const expectStatus = async (t: Test, path: string, code: number, reason: string, message?: RegExp) => {
  const res = await admin(path);
  t.equal(res.status, code, `${path} -> ${code}`);
  t.match(res.headers['content-type'], /^application\/json/);
  const s = res.json();
  t.match(s, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason, code });
  if (message) t.match(s.message, message);
  return s;
};

t.test('errors are Kubernetes Status objects', async (t) => {
  const nf = await expectStatus(t, `${GV}/namespaces/default/s9-nothing`, 404, 'NotFound', /no metric "s9-nothing"/);
  t.same(nf.details, { group: 'external.metrics.k8s.io', kind: 's9-nothing' });
  await expectStatus(t, `${GV}/namespaces/default/s0-queue-depth?labelSelector=${encodeURIComponent('queue=zzz')}`, 404, 'NotFound');
  await expectStatus(t, '/nope', 404, 'NotFound', /could not find the requested resource/);
  await expectStatus(t, '/apis/other.group/v1', 404, 'NotFound');
  await expectStatus(t, `${GV}/namespaces/default/s0-memory?labelSelector=${encodeURIComponent('a in (b')}`, 400, 'BadRequest', /invalid labelSelector/);
  await expectStatus(t, `${GV}/namespaces/default/s0-memory?labelSelector=${encodeURIComponent('a=b=c')}`, 400, 'BadRequest');
  await expectStatus(t, `${GV}/namespaces/Default/s0-memory`, 400, 'BadRequest', /invalid namespace/);
  await expectStatus(t, `${GV}/namespaces/default/bad%20name`, 400, 'BadRequest', /invalid metric name/);
  await expectStatus(t, `${GV}/namespaces/default/-leading-dash`, 400, 'BadRequest', /invalid metric name/);
});

t.test('write methods are 405 MethodNotAllowed', async (t) => {
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const res = await admin(`${GV}/namespaces/default/s0-memory`, { method });
    t.equal(res.status, 405, method);
    t.equal(res.json().reason, 'MethodNotAllowed');
  }
});

t.test('OpenAPI v2 and v3 describe our types, with ETags', async (t) => {
  const v2 = await admin('/openapi/v2', { headers: [['Accept', 'application/json']] });
  t.equal(v2.status, 200);
  const spec = v2.json<{ swagger: string; paths: Record<string, unknown>; definitions: Record<string, { properties: Record<string, unknown> }> }>();
  t.equal(spec.swagger, '2.0');
  t.ok(spec.paths['/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}']);
  t.same(Object.keys(spec.definitions['io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValue']!.properties).sort(), ['metricLabels', 'metricName', 'timestamp', 'value', 'window']);
  const etag = v2.headers.etag as string;
  t.match(etag, /^"[0-9A-F]{32}"$/);
  const again = await admin('/openapi/v2', { headers: [['If-None-Match', etag]] });
  t.equal(again.status, 304);
  t.equal(again.text, '');

  const v3 = (await admin('/openapi/v3')).json<{ paths: Record<string, { serverRelativeURL: string }> }>();
  const url = v3.paths['apis/external.metrics.k8s.io/v1beta1']!.serverRelativeURL;
  t.match(url, /^\/openapi\/v3\/apis\/external\.metrics\.k8s\.io\/v1beta1\?hash=[0-9A-F]+$/);
  const gv = (await admin(url)).json<{ openapi: string; components: { schemas: Record<string, unknown> } }>();
  t.equal(gv.openapi, '3.0.0');
  t.ok(gv.components.schemas['io.k8s.metrics.pkg.apis.external_metrics.v1beta1.ExternalMetricValueList']);
});

t.test('health endpoints, plain and verbose, and /version', async (t) => {
  for (const p of ['/healthz', '/livez', '/readyz']) {
    const res = await admin(p);
    t.equal(res.status, 200, p);
    t.equal(res.text, 'ok');
  }
  const verbose = await admin('/readyz?verbose');
  t.match(verbose.text, /\[\+\]ping ok\n/);
  t.match(verbose.text, /\[\+\]metrics-source ok\n/);
  t.match(verbose.text, /readyz check passed\n$/);
  t.equal((await admin('/readyz/ping')).text, 'ok');
  t.equal((await admin('/readyz/nonexistent')).status, 404);
  const v = (await admin('/version')).json();
  t.match(v, { major: String, minor: String, gitVersion: /^v\d/, platform: /\// });
});

t.test('the side port serves /metrics and probes without TLS', async (t) => {
  const res = await fetch(`http://127.0.0.1:${adapter.metricsPort}/metrics`);
  const text = await res.text();
  t.equal(res.status, 200);
  t.match(text, /adapter_http_requests_total\{verb="GET",path="metric",code="200",component="adapter"\} \d+/);
  t.match(text, /adapter_http_request_duration_seconds_bucket\{/);
  t.match(text, /adapter_http_requests_in_flight\{component="adapter"\} \d/);
  t.match(text, new RegExp(`certificate_expiration_timestamp_seconds\\{file="${pki.tls.certFile.replace(/[/.]/g, '\\$&')}"`));
  t.match(text, /certificate_reloads_total\{file=/);
  t.match(text, /process_resident_memory_bytes/);
  const ready = await fetch(`http://127.0.0.1:${adapter.metricsPort}/readyz?verbose`);
  t.equal(ready.status, 200);
  t.match(await ready.text(), /\[\+\]serving-certificate ok/);
});
