// The operator's certificate lifecycle against the fake kube-apiserver: the Secret is created,
// mounted by a (simulated) kubelet into both components' cert dir, rotated and rolled over to a new
// CA under load with zero failed queries; caBundles injected, conflicts retried, drift restored,
// corrupt Secrets replaced; one writer among replicas; rotation off and cert-manager respected.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startFakeApiServer, type FakeApiServer } from '../helpers/fake-apiserver.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestOperator, type TestOperator } from '../helpers/operator.js';
import { startTestAdapter } from '../helpers/adapter.js';
import { mountSecret } from '../helpers/kubelet.js';
import { get } from '../helpers/https.js';
import { clientLoop, eventually } from '../helpers/loop.js';
import { issueCertificate } from '../../src/certs/x509.js';
import { ChannelClient } from '../../src/channel/client.js';
import { CertificateMetrics, GrpcMetrics } from '../../src/observability/metrics.js';
import { LiveTls } from '../../src/tls/live-tls.js';
import { tlsPolicy } from '../../src/tls/policy.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
const scaledObjects = join(root, 'so.yaml');
// No scaled objects: the queries below get the operator's "not found", which is a full round trip.
await writeFile(scaledObjects, 'kind: List\napiVersion: v1\nitems: []\n');

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

function installTargets(api: FakeApiServer, apiServiceAnnotations: Record<string, string> = {}) {
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'keda' } });
  api.put({
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name: 'v1beta1.external.metrics.k8s.io', annotations: apiServiceAnnotations },
    spec: { group: 'external.metrics.k8s.io', version: 'v1beta1', service: { namespace: 'keda', name: 'keda-metrics-apiserver', port: 443 }, insecureSkipTLSVerify: true, groupPriorityMinimum: 100, versionPriority: 100 },
  });
  api.put({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: 'keda-admission' },
    webhooks: ['vscaledobject.kb.io', 'vtriggerauthentication.kb.io'].map((name) => ({
      name,
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      clientConfig: { service: { namespace: 'keda', name: 'keda-admission-webhooks', path: '/validate' } },
      rules: [{ apiGroups: ['keda.sh'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE'], resources: ['scaledobjects'] }],
    })),
  });
}

const apiService = (api: FakeApiServer) => api.get<{ spec: { caBundle?: string; insecureSkipTLSVerify?: boolean } }>('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io')!;
const webhooks = (api: FakeApiServer) => api.get<{ webhooks: { clientConfig: { caBundle?: string } }[] }>('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission')!.webhooks;
const secret = (api: FakeApiServer) => api.get<{ data?: Record<string, string>; metadata: { annotations?: Record<string, string> } }>('v1', 'Secret', 'keda', 'kedaorg-certs');
const metricsOf = async (op: TestOperator) => (await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`)).text();
const counter = (text: string, name: string, labels: string) => Number(text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels))?.split(' ').pop() ?? 0);

const leaderFlags = ['--leader-election-lease-duration=2s', '--leader-election-renew-deadline=1500ms', '--leader-election-retry-period=200ms'];
const shortLife = ['--ca-validity=30s', '--cert-validity=10s', '--cert-renew-before=4s', '--ca-rollover-overlap=2s'];

t.test('rotation on: fresh install, renewal and a full CA rollover under load, old CA rejected at the end', async (t) => {
  const api = await startFakeApiServer();
  t.teardown(() => api.close());
  installTargets(api);
  const kc = await api.writeKubeconfig(join(root, 'kc1'));
  const mount = mountSecret(api, 'keda', 'kedaorg-certs', join(root, 'certs1'));
  t.teardown(() => mount.stop());

  const operator = await startTestOperator([`--kubeconfig=${kc}`, '--namespace=keda', `--cert-dir=${mount.dir}`, `--scaled-objects-file=${scaledObjects}`, '--enable-cert-rotation=true', '--extra-san=localhost', ...leaderFlags, ...shortLife]);
  t.teardown(() => operator.shutdown());

  // Fresh install: Secret created, both bundles injected, insecureSkipTLSVerify turned off.
  const created = secret(api)!;
  t.same(Object.keys(created.data ?? {}).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
  const firstCa = unb64(created.data!['ca.crt']);
  const firstCaKey = unb64(created.data!['ca.key']);
  await eventually('caBundles injected', async () => (apiService(api).spec.caBundle === b64(firstCa) && webhooks(api).every((w) => w.clientConfig.caBundle === b64(firstCa)) ? true : undefined));
  t.equal(apiService(api).spec.insecureSkipTLSVerify, false, 'never insecureSkipTLSVerify');
  t.equal(counter(await metricsOf(operator), 'certificate_rotations_total', 'kind="create"'), 1);
  t.match(await metricsOf(operator), /leader_election_is_leader\{component="operator"\} 1/);
  await eventually('an Event on the Secret', async () => (api.list('v1', 'Event', 'keda').some((e) => (e as { reason?: string }).reason === 'CertificateRotated') ? true : undefined));

  // The adapter on the same mounted Secret, dialing the operator by a name the certificate covers.
  const adapter = await startTestAdapter([
    `--cert-dir=${mount.dir}`,
    `--requestheader-client-ca-file=${pki.frontProxyCa.certFile}`,
    '--metrics-source=operator',
    `--metrics-service-address=localhost:${operator.grpcPort}`,
    '--metrics-service-timeout=2s',
  ]);
  t.teardown(() => adapter.shutdown());
  // The HPA's view through the aggregator: it trusts whatever the APIService caBundle says now.
  const query = () =>
    get({
      port: adapter.port,
      path: '/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-x?labelSelector=scaledobject.keda.sh%2Fname%3Dnope',
      ca: unb64(apiService(api).spec.caBundle),
      client: pki.frontProxyClient,
      servername: 'localhost',
      headers: [['X-Remote-User', 'hpa'], ['X-Remote-Group', 'system:masters']],
    }).then((r) => (r.status === 404 && r.json().message === 'scaledobject default/nope not found' ? 200 : r.status));
  t.equal(await query(), 200, 'the full path answers (404 from the operator, through gRPC)');

  const loop = clientLoop(query);
  await eventually('a leaf renewal and a completed CA rollover', async () => {
    const m = await metricsOf(operator);
    return counter(m, 'certificate_rotations_total', 'kind="rollover-finish"') >= 1 && counter(m, 'certificate_rotations_total', 'kind="renew-leaf"') >= 1 ? true : undefined;
  }, 45_000);
  await new Promise((r) => setTimeout(r, 1_500));
  const result = await loop.stop();
  t.equal(result.failed, 0, `zero failed queries (${result.errors.slice(0, 3).join('; ')})`);
  t.ok(result.ok > 50, `the loop ran throughout (${result.ok} queries)`);

  const finalCa = unb64(secret(api)!.data!['ca.crt']);
  t.notOk(finalCa.includes(firstCa.trim()), 'the old CA has left the bundle');
  t.equal((finalCa.match(/BEGIN CERTIFICATE/g) ?? []).length, 1, 'one CA after the rollover');
  t.equal(apiService(api).spec.caBundle, b64(finalCa), 'APIService follows');

  // A client holding a certificate from the old CA is now refused by the operator.
  const oldLeaf = await issueCertificate({ certPem: firstCa, keyPem: firstCaKey }, { commonName: 'old-client', dnsNames: ['localhost'], extendedUsages: ['clientAuth', 'serverAuth'] });
  await writeFile(join(root, 'old-client.crt'), oldLeaf.certPem);
  await writeFile(join(root, 'old-client.key'), oldLeaf.keyPem);
  const oldTls = new LiveTls({ certFile: join(root, 'old-client.crt'), keyFile: join(root, 'old-client.key'), caFiles: { ca: join(mount.dir, 'ca.crt') } }, tlsPolicy('VersionTLS13', []), pino({ level: 'silent' }), new CertificateMetrics(new Registry()));
  await oldTls.start();
  t.teardown(() => oldTls.close());
  const oldClient = new ChannelClient({ address: `localhost:${operator.grpcPort}`, tls: oldTls, trust: ['ca'], timeoutMs: 1_500, readinessGraceMs: 0, metrics: new GrpcMetrics(new Registry(), 'client'), log: pino({ level: 'silent' }) });
  t.teardown(() => oldClient.close());
  await t.rejects(oldClient.getMetrics({ name: 'a', namespace: 'b', metricName: 'c' }, new AbortController().signal), { code: status.UNAVAILABLE });
});

t.test('conflicts are retried, drift is restored, a corrupt Secret is replaced', async (t) => {
  const api = await startFakeApiServer();
  t.teardown(() => api.close());
  installTargets(api);
  const kc = await api.writeKubeconfig(join(root, 'kc2'));
  const mount = mountSecret(api, 'keda', 'kedaorg-certs', join(root, 'certs2'));
  t.teardown(() => mount.stop());
  const operator = await startTestOperator([`--kubeconfig=${kc}`, '--namespace=keda', `--cert-dir=${mount.dir}`, `--scaled-objects-file=${scaledObjects}`, '--enable-cert-rotation=true', ...leaderFlags]);
  t.teardown(() => operator.shutdown());
  const ca = () => unb64(secret(api)!.data!['ca.crt']);
  await eventually('caBundle injected', async () => (apiService(api).spec.caBundle === b64(ca()) ? true : undefined));

  // Drift plus a conflict on the first write back.
  const clear = api.inject({ method: 'PUT', path: '/apis/apiregistration.k8s.io/v1/apiservices/', status: 409, times: 1 });
  t.teardown(clear);
  api.modify('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', (o: { spec: { caBundle?: string } }) => {
    o.spec.caBundle = b64('someone else');
  });
  await eventually('drift restored after a conflict', async () => (apiService(api).spec.caBundle === b64(ca()) ? true : undefined), 10_000);
  const m = await metricsOf(operator);
  t.ok(counter(m, 'cabundle_patch_conflicts_total', 'target="APIService"') >= 1, 'the conflict was counted and retried');
  // Events are written best effort, after the fact: wait for them rather than race them.
  await eventually('a drift Event', async () => (api.list('v1', 'Event', 'default').some((e) => (e as { reason?: string }).reason === 'CABundleDrift') ? true : undefined));

  api.modify('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission', (o: { webhooks: { clientConfig: { caBundle?: string } }[] }) => {
    o.webhooks[1]!.clientConfig.caBundle = b64('drifted');
  });
  await eventually('webhook drift restored', async () => (webhooks(api).every((w) => w.clientConfig.caBundle === b64(ca())) ? true : undefined), 10_000);

  // A failed write is reported and tried again until it lands.
  const clearFailure = api.inject({ method: 'PUT', path: '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/', status: 500, times: 1 });
  t.teardown(clearFailure);
  api.modify('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission', (o: { webhooks: { clientConfig: { caBundle?: string } }[] }) => {
    o.webhooks[0]!.clientConfig.caBundle = b64('drifted again');
  });
  await eventually('a Warning Event for the failed write', async () => (api.list('v1', 'Event', 'default').some((e) => (e as { reason?: string }).reason === 'CABundlePatchFailed') ? true : undefined), 10_000);
  await eventually('the write retried and landed', async () => (webhooks(api).every((w) => w.clientConfig.caBundle === b64(ca())) ? true : undefined), 15_000);

  // A corrupt Secret is replaced, with a Warning Event saying why.
  const before = ca();
  api.modify('v1', 'Secret', 'keda', 'kedaorg-certs', (o: { data: Record<string, string> }) => {
    o.data['tls.key'] = b64('-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n');
  });
  await eventually('the corrupt Secret replaced', async () => (ca() !== before ? true : undefined), 10_000);
  await eventually('a Warning Event saying why', async () =>
    api.list('v1', 'Event', 'keda').some((e) => (e as { reason?: string; type?: string }).reason === 'CertificateSecretReplaced' && (e as { type?: string }).type === 'Warning') ? true : undefined);
  await eventually('bundles follow the new CA', async () => (apiService(api).spec.caBundle === b64(ca()) ? true : undefined), 10_000);
});

t.test('two replicas: only the leader writes; kill it, the other takes over', async (t) => {
  const api = await startFakeApiServer();
  t.teardown(() => api.close());
  installTargets(api);
  const kc = await api.writeKubeconfig(join(root, 'kc3'));
  const mount = mountSecret(api, 'keda', 'kedaorg-certs', join(root, 'certs3'));
  t.teardown(() => mount.stop());
  const flags = [`--kubeconfig=${kc}`, '--namespace=keda', `--cert-dir=${mount.dir}`, `--scaled-objects-file=${scaledObjects}`, '--enable-cert-rotation=true', ...leaderFlags, '--cert-validity=8s', '--cert-renew-before=3s'];
  const [a, b] = await Promise.all([startTestOperator(flags), startTestOperator(flags)]);
  t.teardown(() => Promise.all([a.shutdown(), b.shutdown()]));
  const leaders = async () => (await Promise.all([a, b].map(async (op) => /leader_election_is_leader\{component="operator"\} 1/.test(await metricsOf(op))))).filter(Boolean).length;
  await eventually('one leader', async () => ((await leaders()) === 1 ? true : undefined));
  const aLeads = /leader_election_is_leader\{component="operator"\} 1/.test(await metricsOf(a));
  const [leader, follower] = aLeads ? [a, b] : [b, a];
  await new Promise((r) => setTimeout(r, 6_000));
  t.equal(await leaders(), 1, 'still exactly one leader');
  t.equal(counter(await metricsOf(follower), 'certificate_rotations_total', 'kind='), 0, 'the follower wrote nothing');
  t.ok(counter(await metricsOf(leader), 'certificate_rotations_total', 'kind="renew-leaf"') >= 1, 'the leader renewed');
  await leader.shutdown();
  await eventually('the follower takes over', async () => (/leader_election_is_leader\{component="operator"\} 1/.test(await metricsOf(follower)) ? true : undefined), 10_000);
  await eventually('and writes', async () => (counter(await metricsOf(follower), 'certificate_rotations_total', 'kind="renew-leaf"') >= 1 ? true : undefined), 15_000);
});

t.test('rotation off: no Secret is written; ca.crt from the cert dir is injected; cert-manager objects are left alone', async (t) => {
  const api = await startFakeApiServer();
  t.teardown(() => api.close());
  installTargets(api, { 'cert-manager.io/inject-ca-from': 'keda/keda-metrics-apiserver' });
  api.modify('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', (o: { spec: { caBundle?: string; insecureSkipTLSVerify?: boolean } }) => {
    o.spec.caBundle = b64('injected by cert-manager');
    delete o.spec.insecureSkipTLSVerify;
  });
  const kc = await api.writeKubeconfig(join(root, 'kc4'));
  const operator = await startTestOperator([`--kubeconfig=${kc}`, '--namespace=keda', `--cert-dir=${pki.dir}`, `--scaled-objects-file=${scaledObjects}`, '--enable-cert-rotation=false', ...leaderFlags]);
  t.teardown(() => operator.shutdown());
  await eventually('webhook bundle injected from ca.crt', async () => (webhooks(api).every((w) => w.clientConfig.caBundle === b64(pki.ca.cert)) ? true : undefined));
  await new Promise((r) => setTimeout(r, 500));
  t.equal(secret(api), undefined, 'no Secret written');
  t.equal(apiService(api).spec.caBundle, b64('injected by cert-manager'), 'the annotated APIService is cert-manager\'s');
  t.notOk(api.requests.some((r) => r.method === 'PUT' && r.path.includes('/apiservices/')), 'never written');
});
