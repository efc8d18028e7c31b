// The TLS front door, checked with real clients: openssl s_client for every rejection (each
// must end in a TLS alert with no HTTP response), kubectl for the happy path.
import t, { type Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki } from '../helpers/pki.js';
import { pkiFlags, startTestAdapter } from '../helpers/adapter.js';
import { kubectl, sClient } from '../helpers/tools.js';
import { expectNoResponse } from '../helpers/https.js';
import type { Pair } from '../helpers/pki.js';
import { parseQuantity, formatQuantity } from '../../src/k8s/quantity.js';

const dir = t.testdir();
const pki = await createTestPki(dir);
const metricsFile = join(dir, 'metrics.yaml');
await writeFile(metricsFile, 'metrics:\n  - {name: s0-metric-api-value, labels: {scaledobject.keda.sh/name: web}, value: "1500m"}\n  - {name: s0-big, value: "12Gi"}\n');
const adapter = await startTestAdapter([...pkiFlags(pki), '--metrics-source=file', `--metrics-source-file=${metricsFile}`]);
t.teardown(() => adapter.shutdown());

const certArgs = (p: { certFile: string; keyFile: string }) => ['-cert', p.certFile, '-key', p.keyFile];
const noHttp = (t: Test, out: string) => t.notMatch(out, /HTTP\/1\.1 \d{3}/, 'no HTTP response was served');

t.test('openssl: TLS 1.3 with the admin certificate gets an HTTP answer (control case)', async (t) => {
  const r = await sClient(adapter.port, ['-tls1_3', '-CAfile', pki.ca.certFile, ...certArgs(pki.admin)]);
  t.match(r.stdout, /Protocol\s*: TLSv1\.3/);
  t.match(r.stdout, /HTTP\/1\.1 200 OK/);
});

t.test('openssl: TLS 1.2 is refused during the handshake', async (t) => {
  const r = await sClient(adapter.port, ['-tls1_2', '-CAfile', pki.ca.certFile, ...certArgs(pki.admin)]);
  t.not(r.code, 0);
  t.match(r.stdout + r.stderr, /alert protocol version|unsupported protocol|wrong version number/i);
  noHttp(t, r.stdout);
});

t.test('openssl: TLS 1.3 without a client certificate ends in the certificate_required alert', async (t) => {
  const r = await sClient(adapter.port, ['-tls1_3', '-CAfile', pki.ca.certFile]);
  t.match(r.stdout + r.stderr, /alert certificate required/i);
  noHttp(t, r.stdout);
  const e = await expectNoResponse({ port: adapter.port, path: '/apis', ca: pki.ca.cert });
  t.match(e.message, /certificate required/);
});

// Node verifies a presented client certificate once the TLS 1.3 handshake is done and then drops
// the connection without an alert, so the client sees the server hang up before any response.
const refusedCertificates: [string, Pair][] = [
  ['a certificate from another CA', pki.foreignAdmin],
  ['an expired client certificate', pki.expiredUser],
  ['a not-yet-valid client certificate', pki.futureUser],
  ['a client certificate without clientAuth usage', pki.noClientAuthUser],
];
for (const [name, client] of refusedCertificates) {
  t.test(`TLS 1.3 with ${name}: the connection is dropped and nothing is served`, async (t) => {
    const r = await sClient(adapter.port, ['-tls1_3', '-CAfile', pki.ca.certFile, ...certArgs(client)]);
    t.match(r.stdout, /Verification: OK/, 'the server certificate itself was fine');
    noHttp(t, r.stdout);
    const e = await expectNoResponse({ port: adapter.port, path: '/apis', ca: pki.ca.cert, client });
    t.equal(e.code, 'ECONNRESET');
  });
}

const kube = (client: { certFile: string; keyFile: string }, extra: string[] = []) => [
  `--server=https://127.0.0.1:${adapter.port}`,
  `--certificate-authority=${pki.ca.certFile}`,
  `--client-certificate=${client.certFile}`,
  `--client-key=${client.keyFile}`,
  ...extra,
];

t.test('kubectl get --raw reads discovery and metric values', async (t) => {
  const disc = await kubectl([...kube(pki.admin), 'get', '--raw', '/apis/external.metrics.k8s.io/v1beta1']);
  t.equal(disc.code, 0, disc.stderr);
  t.equal(JSON.parse(disc.stdout).resources[0].name, 'externalmetrics');

  const metric = await kubectl([
    ...kube(pki.admin),
    'get', '--raw', '/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-metric-api-value?labelSelector=scaledobject.keda.sh%2Fname%3Dweb',
  ]);
  t.equal(metric.code, 0, metric.stderr);
  const list = JSON.parse(metric.stdout);
  t.equal(list.kind, 'ExternalMetricValueList');
  const value = list.items[0].value as string;
  t.equal(value, '1500m');
  t.equal(formatQuantity(parseQuantity(value)), value, 'round-trips as a Kubernetes quantity');

  const big = JSON.parse((await kubectl([...kube(pki.admin), 'get', '--raw', '/apis/external.metrics.k8s.io/v1beta1/namespaces/x/s0-big'])).stdout);
  t.equal(big.items[0].value, '12Gi');
});

t.test('kubectl verifies the serving certificate against the Service DNS name, as the aggregator does', async (t) => {
  const ok = await kubectl([...kube(pki.admin, ['--tls-server-name=keda-metrics-apiserver.keda.svc']), 'get', '--raw', '/apis']);
  t.equal(ok.code, 0, ok.stderr);
  const wrong = await kubectl([...kube(pki.admin, ['--tls-server-name=other-service.keda.svc']), 'get', '--raw', '/apis']);
  t.not(wrong.code, 0);
  t.match(wrong.stderr, /certificate is valid for .*not other-service\.keda\.svc|x509/);
});

t.test('kubectl as an unprivileged user sees the Forbidden Status', async (t) => {
  const r = await kubectl([...kube(pki.user), 'get', '--raw', '/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-metric-api-value']);
  t.not(r.code, 0);
  t.match(r.stderr, /Forbidden.*User "user" cannot list resource "s0-metric-api-value"/);
});

t.test('kubectl with a foreign certificate is refused at the TLS layer', async (t) => {
  const r = await kubectl([...kube(pki.foreignAdmin), 'get', '--raw', '/apis']);
  t.not(r.code, 0);
  t.match(r.stderr, /Unable to connect to the server: (EOF|.*connection reset)/);
  t.notMatch(r.stdout, /APIGroupList/);
});
