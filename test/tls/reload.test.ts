// Live certificate reload under a running client loop: the kubelet's `..data` swap, plain
// replacement, a client-CA change, and every kind of bad write (which must change nothing).
import t from 'tap';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { Agent } from 'node:https';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki, type Pair } from '../helpers/pki.js';
import { startTestAdapter, type TestAdapter } from '../helpers/adapter.js';
import { get, expectNoResponse } from '../helpers/https.js';
import { ProjectedDir, writeAtomic, writeInPlace } from '../helpers/certdir.js';
import { clientLoop, eventually } from '../helpers/loop.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
const SERVING = { dnsNames: ['localhost', 'keda-metrics-apiserver.keda.svc', 'keda-metrics-apiserver.keda.svc.cluster.local'], ipAddresses: ['127.0.0.1'] };
let serial = 0;
const newServing = (extra: Partial<Parameters<typeof pki.issue>[2]> = {}) =>
  pki.issue('ca', `serving-${++serial}`, { commonName: 'keda-ts', extendedUsages: ['serverAuth', 'clientAuth'], ...SERVING, ...extra });

function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.cert, cert: pki.admin.cert, key: pki.admin.key, minVersion: 'TLSv1.3' }, () => {
      const sn = s.getPeerX509Certificate()?.serialNumber ?? '';
      s.end();
      resolve(sn);
    });
    s.on('error', reject);
  });
}
const serialOf = (p: Pair) => new X509Certificate(p.cert).serialNumber;

async function metricsText(a: TestAdapter): Promise<string> {
  return (await fetch(`http://127.0.0.1:${a.metricsPort}/metrics`)).text();
}
function counter(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').pop()) : 0;
}

const metricPath = '/apis/external.metrics.k8s.io/v1beta1/namespaces/default/demo-sine';
/** The HPA's view: front-proxy certificate, new TLS connection per call so each sees the current material. */
const hpaCall = (a: TestAdapter) => () =>
  get({ port: a.port, path: metricPath, ca: pki.ca.cert, client: pki.frontProxyClient, headers: [['X-Remote-User', 'hpa'], ['X-Remote-Group', 'system:masters']] }).then((r) => r.status);

// --- the kubelet layout ---------------------------------------------------------------------
const projected = new ProjectedDir(join(root, 'projected'));
await projected.write({ 'tls.crt': pki.tls.cert, 'tls.key': pki.tls.key, 'ca.crt': pki.ca.cert });
const clientCaDir = join(root, 'client-ca');
await mkdir(clientCaDir);
const clientCaFile = join(clientCaDir, 'ca.crt');
await writeFile(clientCaFile, pki.ca.cert);

const adapter = await startTestAdapter([
  `--cert-dir=${projected.dir}`,
  `--client-ca-file=${clientCaFile}`,
  `--requestheader-client-ca-file=${pki.frontProxyCa.certFile}`,
]);
t.teardown(() => adapter.shutdown());
const certFile = join(projected.dir, 'tls.crt');

t.test('kubelet ..data swap: new certificate served, open connections keep working, zero failures', async (t) => {
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => keepAlive.destroy());
  const viaKeepAlive = () => get({ port: adapter.port, path: metricPath, ca: pki.ca.cert, client: pki.admin, agent: keepAlive });
  t.equal((await viaKeepAlive()).status, 200);

  const loop = clientLoop(hpaCall(adapter));
  const next = await newServing();
  await projected.write({ 'tls.crt': next.cert, 'tls.key': next.key, 'ca.crt': pki.ca.cert });
  await eventually('the new serving certificate', async () => ((await servedSerial(adapter.port)) === serialOf(next) ? true : undefined));
  const after = await viaKeepAlive();
  t.equal(after.status, 200, 'the connection opened before the swap still serves');
  t.ok(after.reusedSocket, 'over the same TLS connection');
  const result = await loop.stop();
  t.equal(result.failed, 0, `no failed request (${result.errors.slice(0, 3).join('; ')})`);
  t.ok(result.ok > 0, `the loop ran (${result.ok} requests)`);
  t.ok(counter(await metricsText(adapter), 'certificate_reloads_total', `file="${certFile}"`) >= 2, 'reload counted');
});

const badWrites: [string, () => Promise<Record<string, string>>, string][] = [
  ['half-written certificate', async () => { const n = await newServing(); return { 'tls.crt': n.cert.slice(0, n.cert.length / 2), 'tls.key': n.key }; }, 'malformed'],
  ['key that does not match the certificate', async () => { const a = await newServing(); const b = await newServing(); return { 'tls.crt': a.cert, 'tls.key': b.key }; }, 'key_mismatch'],
  ['expired certificate', async () => { const n = await newServing({ notBefore: new Date(Date.now() - 86_400_000 * 3), notAfter: new Date(Date.now() - 86_400_000) }); return { 'tls.crt': n.cert, 'tls.key': n.key }; }, 'expired'],
  ['not-yet-valid certificate', async () => { const n = await newServing({ notBefore: new Date(Date.now() + 86_400_000), notAfter: new Date(Date.now() + 86_400_000 * 3) }); return { 'tls.crt': n.cert, 'tls.key': n.key }; }, 'not_yet_valid'],
  ['garbage PEM', async () => ({ 'tls.crt': '-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n', 'tls.key': 'garbage' }), 'malformed'],
  ['empty files', async () => ({ 'tls.crt': '', 'tls.key': '' }), 'empty'],
];

for (const [name, make, problem] of badWrites) {
  t.test(`bad write (${name}): last good certificate keeps serving, one clear log line, counted`, async (t) => {
    const good = await servedSerial(adapter.port);
    const failuresBefore = counter(await metricsText(adapter), 'certificate_reload_failures_total', `problem="${problem}"`);
    const logsBefore = adapter.logs.length;
    const loop = clientLoop(hpaCall(adapter));
    await projected.write({ ...(await make()), 'ca.crt': pki.ca.cert });
    await eventually('the failure to be counted', async () =>
      counter(await metricsText(adapter), 'certificate_reload_failures_total', `problem="${problem}"`) > failuresBefore ? true : undefined);
    t.equal(await servedSerial(adapter.port), good, 'still serving the last good certificate');
    const errors = adapter.logs.slice(logsBefore).filter((l) => l.level === 50);
    t.equal(errors.length, 1, 'exactly one error line');
    t.match(errors[0], { problem, msg: /keeping the last good one/ });
    t.ok(String(errors[0]?.file).endsWith(problem === 'key_mismatch' ? 'tls.key' : 'tls.crt'), `names the file (${String(errors[0]?.file)})`);
    t.notMatch(JSON.stringify(errors), /PRIVATE KEY/, 'no key material in the log');

    const next = await newServing();
    await projected.write({ 'tls.crt': next.cert, 'tls.key': next.key, 'ca.crt': pki.ca.cert });
    await eventually('the next good write', async () => ((await servedSerial(adapter.port)) === serialOf(next) ? true : undefined));
    const result = await loop.stop();
    t.equal(result.failed, 0, `no failed request (${result.errors.slice(0, 3).join('; ')})`);
  });
}

t.test('client CA change: old client certificates refused on new connections, new ones accepted', async (t) => {
  const loop = clientLoop(hpaCall(adapter));
  t.equal((await get({ port: adapter.port, path: metricPath, ca: pki.ca.cert, client: pki.admin })).status, 200);
  t.equal((await get({ port: adapter.port, path: metricPath, ca: pki.ca.cert, client: pki.foreignAdmin }).catch(() => ({ status: 0 }))).status, 0);
  await writeAtomic(clientCaFile, pki.otherCa.cert);
  await eventually('the new client CA', async () => {
    const r = await get({ port: adapter.port, path: metricPath, ca: pki.ca.cert, client: pki.foreignAdmin }).catch(() => undefined);
    return r?.status === 200 ? true : undefined;
  });
  const e = await expectNoResponse({ port: adapter.port, path: metricPath, ca: pki.ca.cert, client: pki.admin });
  t.equal(e.code, 'ECONNRESET', 'a certificate from the old client CA is refused');
  const result = await loop.stop();
  t.equal(result.failed, 0, `front-proxy traffic unaffected (${result.errors.slice(0, 3).join('; ')})`);
  await writeAtomic(clientCaFile, pki.ca.cert);
  await eventually('the original client CA', async () => {
    const r = await get({ port: adapter.port, path: metricPath, ca: pki.ca.cert, client: pki.admin }).catch(() => undefined);
    return r?.status === 200 ? true : undefined;
  });
});

t.test('plain in-place writes in an ordinary folder are picked up too', async (t) => {
  const dir = join(root, 'plain');
  await mkdir(dir);
  await writeFile(join(dir, 'tls.crt'), pki.tls.cert);
  await writeFile(join(dir, 'tls.key'), pki.tls.key);
  const plain = await startTestAdapter([`--cert-dir=${dir}`, `--client-ca-file=${pki.ca.certFile}`]);
  t.teardown(() => plain.shutdown());
  const loop = clientLoop(() => get({ port: plain.port, path: metricPath, ca: pki.ca.cert, client: pki.admin }).then((r) => r.status));
  const next = await newServing();
  // Key first, then certificate, non-atomically: in between the pair does not match and must be skipped.
  await writeInPlace(join(dir, 'tls.key'), next.key);
  await new Promise((r) => setTimeout(r, 150));
  await writeInPlace(join(dir, 'tls.crt'), next.cert);
  await eventually('the replaced certificate', async () => ((await servedSerial(plain.port)) === serialOf(next) ? true : undefined));
  const result = await loop.stop();
  t.equal(result.failed, 0, `no failed request (${result.errors.slice(0, 3).join('; ')})`);
});
