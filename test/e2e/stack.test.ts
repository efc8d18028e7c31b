// The whole path with real parts: kubectl -> adapter (TLS 1.3, client certificate) -> gRPC (mutual
// TLS 1.3) -> operator -> metrics-api scaler -> an HTTPS upstream whose CA only the --ca-dir knows.
import t from 'tap';
import { createServer, type Server } from 'node:https';
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createCA, issueCertificate } from '../../src/certs/x509.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import { startTestOperator, type TestOperator } from '../helpers/operator.js';
import { ProjectedDir } from '../helpers/certdir.js';
import { get } from '../helpers/https.js';
import { clientLoop, eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));

// The upstream: HTTPS with a certificate from a CA that is in no system store.
const upstreamCa = await createCA({ commonName: 'upstream private CA' });
const upstreamCert = await issueCertificate(upstreamCa, { commonName: 'upstream', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedUsages: ['serverAuth'] });
const caDir = join(root, 'custom-ca');
await mkdir(caDir);
await writeFile(join(caDir, 'upstream-ca.crt'), upstreamCa.certPem);
let upstreamValue: unknown = 17.5;
let upstreamDelayMs = 0;
let upstreamBody: string | undefined;
const upstream: Server = createServer({ cert: upstreamCert.certPem, key: upstreamCert.keyPem }, (req, res) => {
  setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(upstreamBody ?? JSON.stringify({ data: { value: upstreamValue } })), upstreamDelayMs);
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
t.teardown(() => upstream.close());
const upstreamPort = (upstream.address() as AddressInfo).port;

const scaledObjects = join(root, 'scaledobjects.yaml');
await writeFile(
  scaledObjects,
  `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {name: web}
  triggers:
    - type: metrics-api
      metadata:
        url: "https://localhost:${upstreamPort}/stats"
        valueLocation: "data.value"
        targetValue: "10"
`,
);

// One certificate folder for both components, in the kubelet's layout (KEDA's deployment shape).
const certs = new ProjectedDir(join(root, 'certs'));
await certs.write({ 'tls.crt': pki.tls.cert, 'tls.key': pki.tls.key, 'ca.crt': pki.ca.cert });

let operator: TestOperator = await startTestOperator([`--cert-dir=${certs.dir}`, `--scaled-objects-file=${scaledObjects}`, `--ca-dir=${caDir}`]);
const grpcPort = operator.grpcPort;
t.teardown(() => operator.shutdown());
const adapter: TestAdapter = await startTestAdapter([
  `--cert-dir=${certs.dir}`,
  `--client-ca-file=${pki.ca.certFile}`,
  `--requestheader-client-ca-file=${pki.frontProxyCa.certFile}`,
  '--metrics-source=operator',
  `--metrics-service-address=localhost:${grpcPort}`,
  '--metrics-service-timeout=1s',
  '--metrics-service-readiness-grace=300ms',
]);
t.teardown(() => adapter.shutdown());

const METRIC = '/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-metric-api-data-value?labelSelector=scaledobject.keda.sh%2Fname%3Dweb';
const kube = (path: string) =>
  kubectl([`--server=https://127.0.0.1:${adapter.port}`, `--certificate-authority=${pki.ca.certFile}`, `--client-certificate=${pki.admin.certFile}`, `--client-key=${pki.admin.keyFile}`, 'get', '--raw', path]);
/** What the aggregator trusts: the APIService caBundle, which the lifecycle updates during a CA rollover. */
let caBundle = pki.ca.cert;
const hpa = () =>
  get({ port: adapter.port, path: METRIC, ca: caBundle, client: pki.frontProxyClient, headers: [['X-Remote-User', 'hpa'], ['X-Remote-Group', 'system:masters']] });

t.test('kubectl reads the upstream value through adapter and operator', async (t) => {
  const r = await kube(METRIC);
  t.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout);
  t.equal(list.kind, 'ExternalMetricValueList');
  t.equal(list.items[0].metricName, 's0-metric-api-data-value');
  t.equal(list.items[0].value, '17500m');
  upstreamValue = 3;
  t.equal(JSON.parse((await kube(METRIC)).stdout).items[0].value, '3', 'a new upstream value is read on the next query');
});

t.test('errors arrive as Status: unknown scaled object, unknown metric, no selector', async (t) => {
  const unknownSo = await hpa().then(() => get({ port: adapter.port, path: METRIC.replace('%3Dweb', '%3Dnope'), ca: pki.ca.cert, client: pki.admin }));
  t.equal(unknownSo.status, 404);
  t.match(unknownSo.json().message, /scaledobject shop\/nope not found/);
  const unknownMetric = await get({ port: adapter.port, path: METRIC.replace('s0-metric-api-data-value', 's1-other'), ca: pki.ca.cert, client: pki.admin });
  t.equal(unknownMetric.status, 404);
  t.match(unknownMetric.json().message, /has no metric "s1-other" \(its metrics: s0-metric-api-data-value\)/);
  const noSelector = await get({ port: adapter.port, path: METRIC.split('?')[0]!, ca: pki.ca.cert, client: pki.admin });
  t.equal(noSelector.status, 400);
  t.match(noSelector.json().message, /must name the scaled object/);
});

t.test('a malformed upstream is a clear 500, never a made-up value', async (t) => {
  t.teardown(() => {
    upstreamBody = undefined;
    upstreamValue = 3;
  });
  upstreamBody = '<html>oops</html>';
  const garbage = await hpa();
  t.equal(garbage.status, 500);
  t.match(garbage.json().message, /metrics-api https:\/\/localhost:\d+\/stats: .*JSON/i);
  upstreamBody = undefined;
  upstreamValue = 'lots';
  const notNumber = await hpa();
  t.equal(notNumber.status, 500);
  t.match(notNumber.json().message, /data\.value/);
  t.notMatch(garbage.text + notNumber.text, /"items"/);
});

t.test('operator slow: 504 within the adapter deadline', async (t) => {
  upstreamDelayMs = 2_500;
  t.teardown(() => (upstreamDelayMs = 0));
  const started = Date.now();
  const r = await hpa();
  t.equal(r.status, 504);
  t.equal(r.json().reason, 'Timeout');
  t.ok(Date.now() - started < 2_400, `answered at the deadline (${Date.now() - started} ms), not when the upstream did`);
});

t.test('operator stopped: 503, readiness flips; it returns: recovers by itself', async (t) => {
  await operator.shutdown();
  const r = await hpa();
  t.equal(r.status, 503);
  t.equal(r.json().reason, 'ServiceUnavailable');
  await eventually('readiness to flip', async () => ((await fetch(`http://127.0.0.1:${adapter.metricsPort}/readyz`)).status === 500 ? true : undefined));
  const verbose = await (await fetch(`http://127.0.0.1:${adapter.metricsPort}/readyz?verbose`)).text();
  t.match(verbose, /\[-\]metrics-source failed: operator: channel to localhost:\d+ down for \d+s/);
  operator = await startTestOperator([`--cert-dir=${certs.dir}`, `--scaled-objects-file=${scaledObjects}`, `--ca-dir=${caDir}`], grpcPort);
  await eventually('the adapter to recover', async () => ((await hpa()).status === 200 ? true : undefined), 15_000);
  await eventually('readiness to recover', async () => ((await fetch(`http://127.0.0.1:${adapter.metricsPort}/readyz`)).status === 200 ? true : undefined));
});

t.test('certificates rotated on both sides, CA included, under a client loop: zero failed queries', async (t) => {
  const loop = clientLoop(() => hpa().then((r) => r.status));
  const SANS = { dnsNames: ['localhost', 'keda-operator.keda.svc', 'keda-metrics-apiserver.keda.svc'], ipAddresses: ['127.0.0.1'] };
  const settle = () => new Promise((r) => setTimeout(r, 600));
  // 1. A new leaf from the same CA.
  const leaf2 = await issueCertificate({ certPem: pki.ca.cert, keyPem: pki.ca.key }, { commonName: 'keda-ts', extendedUsages: ['serverAuth', 'clientAuth'], ...SANS });
  await certs.write({ 'tls.crt': leaf2.certPem, 'tls.key': leaf2.keyPem, 'ca.crt': pki.ca.cert });
  await settle();
  // 2. CA rollover: publish the new CA next to the old, move the leaf, drop the old CA.
  const ca2 = await createCA({ commonName: 'rotated CA' });
  caBundle = pki.ca.cert + ca2.certPem;
  await certs.write({ 'tls.crt': leaf2.certPem, 'tls.key': leaf2.keyPem, 'ca.crt': pki.ca.cert + ca2.certPem });
  await settle();
  const leaf3 = await issueCertificate(ca2, { commonName: 'keda-ts', extendedUsages: ['serverAuth', 'clientAuth'], ...SANS });
  await certs.write({ 'tls.crt': leaf3.certPem, 'tls.key': leaf3.keyPem, 'ca.crt': pki.ca.cert + ca2.certPem });
  await settle();
  await certs.write({ 'tls.crt': leaf3.certPem, 'tls.key': leaf3.keyPem, 'ca.crt': ca2.certPem });
  await settle();
  const result = await loop.stop();
  t.equal(result.failed, 0, `no failed query (${result.errors.slice(0, 3).join('; ')})`);
  t.ok(result.ok > 20, `the loop kept querying (${result.ok} queries)`);
  t.equal((await hpa()).status, 200, 'still serving on the new CA alone');
});
