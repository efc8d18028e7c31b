// `keda-ts doctor` on a real control plane (envtest v1.28): a healthy install (deploy/overlays/
// rotation applied, the operator and the adapter running as their ServiceAccounts behind the real
// aggregator, a ScaledObject scaled by the real HPA controller) is all OK and exits 0; then each
// check is broken the way users break it and says FAIL (or WARN) with the fix, exit 1.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createCA, issueCertificate } from '../../src/certs/x509.js';
import type { CheckResult } from '../../src/doctor/checks.js';
import { startControlPlane } from '../helpers/envtest.js';
import { componentKubeconfigs, installDeploy, kubectlApply, routeWebhooksToLocal, startAggregatedAdapter } from '../helpers/keda-cluster.js';
import { Kube, deployment, namespace, scaledObject } from '../helpers/kube.js';
import { mountSecret } from '../helpers/kubelet.js';
import { freePort } from '../helpers/adapter.js';
import { startTestOperator } from '../helpers/operator.js';
import { eventually } from '../helpers/loop.js';
import { run } from '../helpers/tools.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const root = t.testdir();
const upstream: Server = createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ queue: { depth: 20 } }));
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));

const cp = await startControlPlane(t);
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms`);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root, ['crds', 'rbac', 'apiservice', 'webhook']);
const kc = await componentKubeconfigs(cp);
const operatorCerts = mountSecret(kube, 'keda', 'kedaorg-certs', join(root, 'operator-certs'));
const adapterCerts = mountSecret(kube, 'keda', 'kedaorg-certs', join(root, 'adapter-certs'));
t.teardown(() => {
  operatorCerts.stop();
  adapterCerts.stop();
});
const webhookPort = await freePort();
await routeWebhooksToLocal(kube, webhookPort);
const operator = await startTestOperator([`--kubeconfig=${kc.operator}`, '--namespace=keda', `--cert-dir=${operatorCerts.dir}`, '--enable-cert-rotation=true', '--extra-san=localhost', `--webhook-port=${webhookPort}`]);
let operatorRunning = true;
t.teardown(() => operatorRunning && operator.shutdown());
await eventually('the adapter\'s certificates', async () => (adapterCerts.syncs > 0 ? true : undefined));
const { adapter } = await startAggregatedAdapter(kube, { certDir: adapterCerts.dir, operatorPort: operator.grpcPort, adapterKubeconfig: kc.adapter });
let adapterRunning = true;
t.teardown(() => adapterRunning && adapter.shutdown());
await kube.create(namespace('shop'));
await kube.create(deployment('shop', 'orders', 1));
const applied = await kubectlApply(cp.adminKubeconfig, root, scaledObject('shop', 'orders', { scaleTargetRef: { name: 'orders' }, minReplicaCount: 1, maxReplicaCount: 5, triggers: [{ type: 'metrics-api', metadata: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/q`, valueLocation: 'queue.depth', targetValue: '10' } }] }));
if (applied.code !== 0) throw new Error(applied.stderr);

async function doctor(...extra: string[]) {
  const r = await run(process.execPath, [CLI, 'doctor', `--kubeconfig=${cp.adminKubeconfig}`, '-o', 'json', ...extra], '', process.env, 60_000);
  let results: CheckResult[] = [];
  try {
    results = (JSON.parse(r.stdout) as { results: CheckResult[] }).results;
  } catch {
    throw new Error(`doctor printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
  return { code: r.code, results, of: (check: string) => results.filter((x) => x.check === check) };
}
const b64 = (s: string) => Buffer.from(s).toString('base64');
const apiService = () => kube.get('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io');

t.test('a healthy install: every check OK, exit 0, one line per check', async (t) => {
  await eventually('the HPA reads the metric', async () => {
    const h = await kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-orders');
    return (h?.status?.conditions as { type: string; status: string }[] | undefined)?.some((c) => c.type === 'ScalingActive' && c.status === 'True') ? true : undefined;
  }, 60_000);
  const d = await doctor();
  t.equal(d.code, 0, JSON.stringify(d.results.filter((r) => r.verdict !== 'OK')));
  t.strictSame(d.results.filter((r) => r.verdict !== 'OK'), [], 'nothing to report');
  for (const check of ['apiservice.owner', 'apiservice.tls', 'apiservice.available', 'apiservice.reachable', 'apiservice.service', 'certificate.parse', 'certificate.names', 'certificate.expiry', 'cabundle.apiservice', 'cabundle.webhook', 'front-proxy', 'rbac.operator', 'rbac.adapter', 'rbac.hpa', 'rbac.tokens', 'hpa']) {
    t.ok(d.of(check).length > 0, `${check} checked`);
  }
  t.match(d.of('certificate.expiry')[0]?.message, /valid for \d+ more days; renewal due in \d+ days/);
  t.match(d.of('hpa')[0]?.message, /1 HPA\(s\) of ScaledObjects, none failing/);
  const text = await run(process.execPath, [CLI, 'doctor', `--kubeconfig=${cp.adminKubeconfig}`], '', process.env, 60_000);
  t.equal(text.code, 0);
  const lines = text.stdout.trimEnd().split('\n');
  t.equal(lines.length, d.results.length, 'one line per check');
  t.ok(lines.every((l) => /^(OK {2}|WARN|FAIL) {2}[a-z.-]+ +\S/.test(l)), 'verdict, check, message');
});

t.test('the certificate close to expiry is a warning, not a failure', async (t) => {
  const d = await doctor('--cert-renew-before=100000h');
  t.equal(d.code, 0, 'WARN alone exits 0');
  t.match(d.of('certificate.expiry'), [{ verdict: 'WARN', message: /within the renewal window/, fix: /renew/ }]);
});

t.test('broken the way users break it: FAIL with the fix', async (t) => {
  // Without the operator, nothing undoes what follows.
  await operator.shutdown();
  operatorRunning = false;
  const secret = (await kube.get('v1', 'Secret', 'keda', 'kedaorg-certs'))!;
  const caPem = Buffer.from(secret.data!['ca.crt']!, 'base64').toString();
  const caKey = Buffer.from(secret.data!['ca.key']!, 'base64').toString();

  t.test('another adapter owns the APIService', async (t) => {
    const before = (await apiService())!.spec!.service;
    await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', { spec: { service: { namespace: 'monitoring', name: 'prometheus-adapter', port: 443 } } });
    const d = await doctor();
    t.equal(d.code, 1);
    t.match(d.of('apiservice.owner'), [{ verdict: 'FAIL', message: /points at Service monitoring\/prometheus-adapter, another adapter's/, fix: /remove the other adapter's APIService, or re-apply ours/ }]);
    await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', { spec: { service: before } });
  });

  t.test('a caBundle from another CA: x509 unknown authority, as kube-apiserver sees it', async (t) => {
    const good = (await apiService())!.spec!.caBundle as string;
    const other = await createCA({ commonName: 'someone else' });
    await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', { spec: { caBundle: b64(other.certPem) } });
    const d = await eventually('the aggregator to use the new caBundle', async () => {
      const r = await doctor();
      return r.of('apiservice.reachable')[0]?.verdict === 'FAIL' ? r : undefined;
    }, 30_000);
    t.equal(d.code, 1);
    t.match(d.of('cabundle.apiservice'), [{ verdict: 'FAIL', message: /does not contain the CA that signed the certificate/, fix: /inject ca\.crt of Secret keda\/kedaorg-certs/ }]);
    t.match(d.of('apiservice.reachable'), [{ verdict: 'FAIL', message: /x509: certificate signed by unknown authority/, fix: /caBundle is not the CA that signed/ }]);
    // A stale CA next to the right one is a warning.
    await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', { spec: { caBundle: b64(Buffer.from(good, 'base64').toString() + other.certPem) } });
    t.match((await doctor()).of('cabundle.apiservice'), [{ verdict: 'WARN', message: /also trusts 1 CA\(s\) no longer in the Secret/ }]);
    await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', { spec: { caBundle: good } });
  });

  t.test('insecureSkipTLSVerify', async (t) => {
    const good = (await apiService())!.spec!.caBundle as string;
    await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', { spec: { caBundle: null, insecureSkipTLSVerify: true } });
    t.match((await doctor()).of('apiservice.tls'), [{ verdict: 'FAIL', message: /insecureSkipTLSVerify is on/, fix: /remove insecureSkipTLSVerify/ }]);
    await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', { spec: { caBundle: good, insecureSkipTLSVerify: null } });
  });

  t.test('a certificate that does not cover the Services', async (t) => {
    const narrow = await issueCertificate({ certPem: caPem, keyPem: caKey }, { commonName: 'keda', dnsNames: ['keda-operator.keda.svc'], extendedUsages: ['serverAuth', 'clientAuth'] });
    const saved = { 'tls.crt': secret.data!['tls.crt'], 'tls.key': secret.data!['tls.key'] };
    await kube.mergePatch('v1', 'Secret', 'keda', 'kedaorg-certs', { data: { 'tls.crt': b64(narrow.certPem), 'tls.key': b64(narrow.keyPem) } });
    const d = await doctor();
    t.equal(d.code, 1);
    t.match(d.of('certificate.names'), [{ verdict: 'FAIL', message: /does not cover keda-metrics-apiserver, keda-metrics-apiserver\.keda, keda-metrics-apiserver\.keda\.svc/, fix: /reissue the certificate/ }]);
    t.equal(new X509Certificate(narrow.certPem).checkHost('keda-operator.keda.svc'), 'keda-operator.keda.svc');
    // And a key that does not match it.
    const stranger = await issueCertificate({ certPem: caPem, keyPem: caKey }, { commonName: 'x', extendedUsages: ['serverAuth'] });
    await kube.mergePatch('v1', 'Secret', 'keda', 'kedaorg-certs', { data: { 'tls.key': b64(stranger.keyPem) } });
    t.match((await doctor()).of('certificate.parse'), [{ verdict: 'FAIL', message: /tls\.key does not match tls\.crt/ }]);
    await kube.mergePatch('v1', 'Secret', 'keda', 'kedaorg-certs', { data: saved });
  });

  t.test('missing RBAC, and a token grant for any ServiceAccount', async (t) => {
    await kube.delete('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', undefined, 'keda-metrics-apiserver:system:auth-delegator');
    await kube.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'keda-ts-tokens-for-everyone', labels: { 'app.kubernetes.io/part-of': 'keda-ts' } },
      rules: [{ apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] }],
    });
    const d = await doctor();
    t.equal(d.code, 1);
    t.match(d.of('rbac.adapter'), [{ verdict: 'FAIL', message: /system:serviceaccount:keda:keda-metrics-server may not: create authentication\.k8s\.io\/tokenreviews \(delegate authentication\), create authorization\.k8s\.io\/subjectaccessreviews/, fix: /apply deploy\/base\/adapter-auth-rbac\.yaml/ }]);
    t.match(d.of('rbac.operator'), [{ verdict: 'OK' }]);
    t.match(d.of('rbac.tokens'), [{ verdict: 'FAIL', message: /ClusterRole keda-ts-tokens-for-everyone may create tokens for any ServiceAccount/, fix: /resourceNames/ }]);
  });

  t.test('an HPA that cannot read its metric, next to its ScaledObject\'s condition', async (t) => {
    await adapter.shutdown();
    adapterRunning = false;
    const d = await eventually('the HPA controller to fail', async () => {
      const r = await doctor();
      return r.of('hpa')[0]?.verdict === 'FAIL' ? r : undefined;
    }, 60_000);
    t.match(d.of('hpa'), [{ verdict: 'FAIL', message: /HPA shop\/keda-hpa-orders cannot read its metric .*ScaledObject shop\/orders Ready=True/, fix: /check the apiservice lines above/ }]);
    t.match(d.of('apiservice.reachable'), [{ verdict: 'FAIL', message: /connection refused/, fix: /no ready adapter Pod/ }], 'and kube-apiserver cannot reach the adapter either');
  });

  t.test('nothing installed', async (t) => {
    await kube.delete('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io');
    await kube.delete('v1', 'Secret', 'keda', 'kedaorg-certs');
    const d = await doctor();
    t.equal(d.code, 1);
    t.match(d.of('apiservice'), [{ verdict: 'FAIL', message: /APIService v1beta1\.external\.metrics\.k8s\.io not found/, fix: /kubectl apply -k deploy\/overlays\/rotation/ }]);
    t.match(d.of('certificate'), [{ verdict: 'FAIL', message: /Secret keda\/kedaorg-certs not found/ }]);
  });
});

t.test('a cluster without the aggregation layer\'s front-proxy settings', async (t) => {
  // kube-apiserver rewrites extension-apiserver-authentication from its flags (and only ever adds
  // to it), so this is a second cluster, started without them.
  const bare = await startControlPlane(t, { controllerManager: false, aggregation: false });
  const r = await run(process.execPath, [CLI, 'doctor', `--kubeconfig=${bare.adminKubeconfig}`, '-o', 'json'], '', process.env, 60_000);
  t.equal(r.code, 1);
  const results = (JSON.parse(r.stdout) as { results: CheckResult[] }).results;
  t.match(results.filter((x) => x.check === 'front-proxy'), [{ verdict: 'FAIL', message: /has no requestheader-client-ca-file/, fix: /--requestheader-client-ca-file, --requestheader-allowed-names and --proxy-client-cert-file/ }]);
});
