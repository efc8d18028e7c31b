// The operator's certificate lifecycle on a real control plane (envtest: etcd and kube-apiserver
// v1.28), with deploy/'s APIService v1beta1.external.metrics.k8s.io and ValidatingWebhookConfiguration
// keda-admission, and the operator running as its own ServiceAccount keda/keda-operator so that
// deploy/'s certificate RBAC (limited by resource name) is all it gets. The Secret keda/kedaorg-certs
// is created, mounted by a (simulated) kubelet into both components' cert dir, renewed and rolled
// over to a new CA under load with zero failed queries; the caBundles are injected, drift made with
// real PATCHes is restored, a corrupt Secret is replaced; one writer among replicas through the
// real coordination.k8s.io Lease; rotation off and cert-manager respected, checked in the real
// audit log. The cases run one after the other in one cluster, each starting from a clean slate
// (no Secret, no caBundles, no operator running). Faults a real kube-apiserver cannot produce on
// demand (a 409 or a 500 answering one chosen write) are in certificate-lifecycle-faults.test.ts.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '../../src/channel/status.js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startControlPlane } from '../helpers/envtest.js';
import { componentKubeconfigs, installDeploy } from '../helpers/keda-cluster.js';
import { Kube, type Obj } from '../helpers/kube.js';
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

// --- the cluster: no controller manager, nothing here needs one ----------------------------------
const cp = await startControlPlane(t, { controllerManager: false });
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms (etcd ${Math.round(cp.startup.etcdMs)}, kube-apiserver ${Math.round(cp.startup.apiServerMs)})`);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root, ['crds', 'rbac', 'apiservice', 'webhook']);
const kc = (await componentKubeconfigs(cp)).operator;
const OPERATOR_USER = 'system:serviceaccount:keda:keda-operator';
const API_SERVICE = 'v1beta1.external.metrics.k8s.io';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type ApiService = Obj & { spec: { caBundle?: string; insecureSkipTLSVerify?: boolean } };
type Webhooks = Obj & { webhooks: { name: string; clientConfig: { caBundle?: string } }[] };
type Event = Obj & { reason?: string; type?: string; message?: string; involvedObject: { kind?: string; name?: string; namespace?: string } };
type Lease = Obj & { spec: { holderIdentity?: string; leaseTransitions?: number } };

const apiService = async () => (await kube.get<ApiService>('apiregistration.k8s.io/v1', 'APIService', undefined, API_SERVICE))!;
const webhooks = async () => (await kube.get<Webhooks>('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission'))!.webhooks;
const secret = () => kube.get('v1', 'Secret', 'keda', 'kedaorg-certs');
const lease = () => kube.get<Lease>('coordination.k8s.io/v1', 'Lease', 'keda', 'keda-ts-operator');
const metricsOf = async (op: TestOperator) => (await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`)).text();
const counter = (text: string, name: string, labels: string) => Number(text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels))?.split(' ').pop() ?? 0);
const isLeader = async (op: TestOperator) => /leader_election_is_leader\{component="operator"\} 1/.test(await metricsOf(op));
const allBundles = async (pem: string) => (await apiService()).spec.caBundle === b64(pem) && (await webhooks()).every((w) => w.clientConfig.caBundle === b64(pem));

/** Events written since `mark` (the uids that existed then), in namespace `ns`. */
const eventMark = async () => new Set([...(await kube.list<Event>('v1', 'Event', 'keda')), ...(await kube.list<Event>('v1', 'Event', 'default'))].map((e) => e.metadata!.uid!));
const eventsSince = async (mark: Set<string>, ns: string) => (await kube.list<Event>('v1', 'Event', ns)).filter((e) => !mark.has(e.metadata!.uid!));
/** Writes (create, update, patch, delete) by the operator's ServiceAccount since audit entry `from`. */
const operatorWrites = (from: number, resource: string) => cp.auditEvents().slice(from).filter((e) => e.user.username === OPERATOR_USER && e.objectRef?.resource === resource && !e.objectRef.subresource);

/** Successful writes of the Secret since audit entry `from`, and the rotations an operator counted. */
const secretWrites = (from: number) => operatorWrites(from, 'secrets').filter((e) => e.objectRef?.name === 'kedaorg-certs' || e.verb === 'create').filter((e) => (e.responseStatus?.code ?? 0) < 300).length;
const rotationsOf = (text: string) => text.split('\n').filter((l) => l.startsWith('certificate_rotations_total{')).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);

/** A real PATCH as someone else would send it, under field manager `drifter`. */
const patchAs = (path: string, body: unknown, contentType: string) => kube.request('PATCH', `${path}?fieldManager=drifter`, body, contentType);

const leaderFlags = ['--leader-election-lease-duration=2s', '--leader-election-renew-deadline=1500ms', '--leader-election-retry-period=200ms'];
// The overlap must outlast the slowest reload of a phase (caBundle injection, the adapter's file
// watch): under the whole suite's load on two cores, 2 s was once exceeded by one query in 1,683.
// The CA lives long enough that the next rollover (lead: 10 + 4 + 2 x 4 = 22 s) starts well after
// this one finished (8 s into the new CA's life).
const shortLife = ['--ca-validity=40s', '--cert-validity=10s', '--cert-renew-before=4s', '--ca-rollover-overlap=4s'];
const operatorFlags = (certDir: string) => [`--kubeconfig=${kc}`, '--namespace=keda', `--cert-dir=${certDir}`, `--scaled-objects-file=${scaledObjects}`, ...leaderFlags];

/** Back to a fresh install: no Secret, no caBundle anywhere, no annotation (the operators of the last case are stopped by its teardown). */
async function reset(): Promise<void> {
  await kube.delete('v1', 'Secret', 'keda', 'kedaorg-certs');
  await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, API_SERVICE, { metadata: { annotations: { 'cert-manager.io/inject-ca-from': null } }, spec: { caBundle: null, insecureSkipTLSVerify: null } });
  const hooks = await webhooks();
  await kube.mergePatch('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission', {
    webhooks: hooks.map((w) => ({ ...w, clientConfig: Object.fromEntries(Object.entries(w.clientConfig).filter(([k]) => k !== 'caBundle')) })),
  });
  const [s, a, w] = [await secret(), await apiService(), await webhooks()];
  if (s || a.spec.caBundle || a.metadata?.annotations?.['cert-manager.io/inject-ca-from'] || w.some((h) => h.clientConfig.caBundle)) throw new Error('reset did not take');
}

t.test('rotation on: fresh install, renewal and a full CA rollover under load, old CA rejected at the end', async (t) => {
  await reset();
  const mark = await eventMark();
  const mount = mountSecret(kube, 'keda', 'kedaorg-certs', join(root, 'certs1'));
  t.teardown(() => mount.stop());
  const operator = await startTestOperator([...operatorFlags(mount.dir), '--enable-cert-rotation=true', '--extra-san=localhost', ...shortLife]);
  t.teardown(() => operator.shutdown());

  // Fresh install: Secret created, both bundles injected (every webhook), insecureSkipTLSVerify never set.
  const created = (await secret())!;
  t.same(Object.keys(created.data ?? {}).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
  const firstCa = unb64(created.data!['ca.crt']);
  const firstCaKey = unb64(created.data!['ca.key']);
  await eventually('caBundles injected', async () => ((await allBundles(firstCa)) ? true : undefined));
  t.equal((await webhooks()).length, 4, 'deploy/ has four webhooks, all injected');
  t.notOk((await apiService()).spec.insecureSkipTLSVerify, 'never insecureSkipTLSVerify');
  t.equal(counter(await metricsOf(operator), 'certificate_rotations_total', 'kind="create"'), 1);
  t.match(await metricsOf(operator), /leader_election_is_leader\{component="operator"\} 1/);
  const rotated = await eventually('an Event on the Secret', async () => (await eventsSince(mark, 'keda')).find((e) => e.reason === 'CertificateRotated'));
  t.match(rotated, { type: 'Normal', involvedObject: { kind: 'Secret', name: 'kedaorg-certs', namespace: 'keda' } }, 'the Event is about the Secret');

  // The adapter on the same mounted Secret, dialing the operator by a name the certificate covers.
  const adapter = await startTestAdapter([
    `--cert-dir=${mount.dir}`,
    `--requestheader-client-ca-file=${pki.frontProxyCa.certFile}`,
    '--metrics-source=operator',
    `--metrics-service-address=localhost:${operator.grpcPort}`,
    '--metrics-service-timeout=2s',
  ]);
  t.teardown(() => adapter.shutdown());
  // The HPA's view through the aggregator: it trusts whatever the APIService caBundle says now
  // (read from kube-apiserver before every query, as fresh as the aggregator's informer gets it).
  const query = async () =>
    get({
      port: adapter.port,
      path: '/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-x?labelSelector=scaledobject.keda.sh%2Fname%3Dnope',
      ca: unb64((await apiService()).spec.caBundle),
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
  await sleep(1_500);
  const result = await loop.stop();
  t.equal(result.failed, 0, `zero failed queries (${result.errors.slice(0, 3).join('; ')})`);
  t.ok(result.ok > 50, `the loop ran throughout (${result.ok} queries)`);

  const finalCa = unb64((await secret())!.data!['ca.crt']);
  t.notOk(finalCa.includes(firstCa.trim()), 'the old CA has left the bundle');
  t.equal((finalCa.match(/BEGIN CERTIFICATE/g) ?? []).length, 1, 'one CA after the rollover');
  await eventually('APIService and webhooks follow', async () => ((await allBundles(finalCa)) ? true : undefined));

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

t.test('drift (real PATCHes) is restored on the APIService and on a webhook; a corrupt Secret is replaced', async (t) => {
  await reset();
  const mount = mountSecret(kube, 'keda', 'kedaorg-certs', join(root, 'certs2'));
  t.teardown(() => mount.stop());
  const operator = await startTestOperator([...operatorFlags(mount.dir), '--enable-cert-rotation=true']);
  t.teardown(() => operator.shutdown());
  const ca = async () => unb64((await secret())!.data!['ca.crt']);
  await eventually('caBundles injected', async () => ((await allBundles(await ca())) ? true : undefined));
  const mark = await eventMark();
  // managedFields times have one-second resolution: let the drift be the newest write by its time,
  // so that the operator can name who made it.
  await sleep(1_100);

  await patchAs(`/apis/apiregistration.k8s.io/v1/apiservices/${API_SERVICE}`, { spec: { caBundle: b64('someone else') } }, 'application/merge-patch+json');
  const drifted = await apiService();
  t.equal(drifted.spec.caBundle, b64('someone else'), 'the drift was written');
  t.ok((drifted.metadata?.managedFields ?? []).some((m) => m.manager === 'drifter'), 'and kube-apiserver records who wrote it (managedFields)');
  await eventually('APIService drift restored', async () => ((await apiService()).spec.caBundle === b64(await ca()) ? true : undefined), 10_000);
  // Events are written best effort, after the fact: wait for them rather than race them.
  const drift = await eventually('a drift Event', async () => (await eventsSince(mark, 'default')).find((e) => e.reason === 'CABundleDrift' && e.involvedObject.name === API_SERVICE));
  t.match(drift, { type: 'Warning', involvedObject: { kind: 'APIService', name: API_SERVICE } }, 'a Warning about the APIService');
  // The API server says who it was (managedFields: manager "drifter"), and the Event passes it on.
  t.match(drift?.message, /changed by drifter/, 'the Event names the writer');

  // Someone "fixes" the APIService by skipping verification: caBundle back, verification back on.
  await patchAs(`/apis/apiregistration.k8s.io/v1/apiservices/${API_SERVICE}`, { spec: { caBundle: null, insecureSkipTLSVerify: true } }, 'application/merge-patch+json');
  t.equal((await apiService()).spec.insecureSkipTLSVerify, true, 'verification was turned off');
  const fixed = await eventually('caBundle back, insecureSkipTLSVerify undone', async () => {
    const a = await apiService();
    return a.spec.caBundle === b64(await ca()) ? a : undefined;
  }, 10_000);
  t.notOk(fixed.spec.insecureSkipTLSVerify, 'verification is on again, in the same write as the caBundle (kube-apiserver refuses both at once)');

  await patchAs('/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/keda-admission', [{ op: 'replace', path: '/webhooks/1/clientConfig/caBundle', value: b64('drifted') }], 'application/json-patch+json');
  t.equal((await webhooks())[1]!.clientConfig.caBundle, b64('drifted'), 'the webhook drift was written');
  await eventually('webhook drift restored', async () => ((await allBundles(await ca())) ? true : undefined), 10_000);
  await eventually('a drift Event for the webhook configuration', async () => (await eventsSince(mark, 'default')).find((e) => e.reason === 'CABundleDrift' && e.involvedObject.name === 'keda-admission'));

  // A corrupt Secret is replaced, with a Warning Event saying why.
  const before = await ca();
  await kube.mergePatch('v1', 'Secret', 'keda', 'kedaorg-certs', { data: { 'tls.key': b64('-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n') } });
  await eventually('the corrupt Secret replaced', async () => ((await ca()) !== before ? true : undefined), 10_000);
  const replaced = await eventually('a Warning Event saying why', async () => (await eventsSince(mark, 'keda')).find((e) => e.reason === 'CertificateSecretReplaced' && e.type === 'Warning'));
  t.match(replaced, { involvedObject: { kind: 'Secret', name: 'kedaorg-certs' }, message: /replace-corrupt/ });
  t.equal(counter(await metricsOf(operator), 'certificate_rotations_total', 'kind="replace-corrupt"'), 1);
  await eventually('bundles follow the new CA', async () => ((await allBundles(await ca())) ? true : undefined), 10_000);
});

t.test('two replicas: only the leader writes; kill it, the other takes over (through the real Lease)', async (t) => {
  await reset();
  const auditFrom = cp.auditEvents().length;
  const mount = mountSecret(kube, 'keda', 'kedaorg-certs', join(root, 'certs3'));
  t.teardown(() => mount.stop());
  const flags = [...operatorFlags(mount.dir), '--enable-cert-rotation=true', '--cert-validity=8s', '--cert-renew-before=3s'];
  const [a, b] = await Promise.all([startTestOperator(flags), startTestOperator(flags)]);
  t.teardown(() => Promise.all([a.shutdown(), b.shutdown()]));
  const leaders = async () => (await Promise.all([a, b].map(isLeader))).filter(Boolean).length;
  await eventually('one leader', async () => ((await leaders()) === 1 ? true : undefined));
  const [leader, follower] = (await isLeader(a)) ? [a, b] : [b, a];
  const identityOf = (op: TestOperator) => op.logs.find((l) => l.msg === 'became the leader')?.identity as string | undefined;
  const leaderId = identityOf(leader)!;
  t.equal((await lease())?.spec.holderIdentity, leaderId, 'the Lease names the leader');
  await sleep(6_000);
  t.equal(await leaders(), 1, 'still exactly one leader');
  t.equal(counter(await metricsOf(follower), 'certificate_rotations_total', 'kind='), 0, 'the follower wrote nothing');
  t.ok(counter(await metricsOf(leader), 'certificate_rotations_total', 'kind="renew-leaf"') >= 1, 'the leader renewed');
  t.equal((await lease())?.spec.holderIdentity, leaderId, 'the Lease still names the leader');
  // Both replicas are the same ServiceAccount to kube-apiserver; what its audit log counts as
  // Secret writes is exactly what the leader counts as its own.
  const leaderWrites = await eventually('the audit log and the leader agree on the Secret writes', async () => {
    const n = rotationsOf(await metricsOf(leader));
    return secretWrites(auditFrom) === n ? n : undefined;
  });
  t.ok(leaderWrites >= 2, `every Secret write (${leaderWrites}) is the leader's`);
  const transitions = (await lease())!.spec.leaseTransitions ?? 0;

  await leader.shutdown();
  await eventually('the follower takes over', async () => ((await isLeader(follower)) ? true : undefined), 10_000);
  const followerId = identityOf(follower)!;
  t.not(followerId, leaderId, 'another identity');
  await eventually('the Lease names the new leader', async () => ((await lease())?.spec.holderIdentity === followerId ? true : undefined), 5_000);
  t.ok(((await lease())!.spec.leaseTransitions ?? 0) > transitions, 'a transition was recorded');
  await eventually('and writes', async () => (counter(await metricsOf(follower), 'certificate_rotations_total', 'kind="renew-leaf"') >= 1 ? true : undefined), 15_000);
  t.ok(
    await eventually('the audit log and the two replicas agree', async () => (secretWrites(auditFrom) === leaderWrites + rotationsOf(await metricsOf(follower)) ? true : undefined)),
    'every later Secret write is the new leader\'s',
  );
});

t.test('rotation off: no Secret is written; ca.crt from the cert dir is injected; cert-manager objects are left alone', async (t) => {
  await reset();
  await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, API_SERVICE, {
    metadata: { annotations: { 'cert-manager.io/inject-ca-from': 'keda/keda-metrics-apiserver' } },
    spec: { caBundle: b64('injected by cert-manager') },
  });
  const auditFrom = cp.auditEvents().length;
  const operator = await startTestOperator([...operatorFlags(pki.dir), '--enable-cert-rotation=false']);
  t.teardown(() => operator.shutdown());
  await eventually('webhook bundle injected from ca.crt', async () => ((await webhooks()).every((w) => w.clientConfig.caBundle === b64(pki.ca.cert)) ? true : undefined));
  await sleep(500);
  t.equal(await secret(), undefined, 'no Secret written');
  t.equal((await apiService()).spec.caBundle, b64('injected by cert-manager'), 'the annotated APIService is cert-manager\'s');
  // The audit log sees every write that reaches kube-apiserver.
  t.ok(operatorWrites(auditFrom, 'validatingwebhookconfigurations').length >= 1, `the audit log shows ${OPERATOR_USER} writing the webhook configuration`);
  t.same(operatorWrites(auditFrom, 'apiservices'), [], 'the operator never wrote the APIService');
  t.same(operatorWrites(auditFrom, 'secrets'), [], 'nor any Secret');
});

t.test('deploy/\'s RBAC was enough: kube-apiserver refused none of the operator\'s writes', async (t) => {
  const refused = () => cp.auditEvents().filter((e) => e.user.username === OPERATOR_USER && e.responseStatus?.code === 403);
  t.same(refused().map((e) => `${e.verb} ${e.requestURI}`), [], 'no write refused in any case above');
  // That the check would see one: a write deploy/ does not grant, as the operator's ServiceAccount.
  const denied = await new Kube(kc).create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'not-granted', namespace: 'keda' } }).catch((e: { code?: number }) => e);
  t.match(denied, { code: 403 });
  await eventually('the refusal in the audit log', async () => (refused().some((e) => e.verb === 'create' && e.objectRef?.resource === 'configmaps') ? true : undefined), 5_000);
});
