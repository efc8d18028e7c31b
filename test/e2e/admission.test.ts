// The operator's validating admission webhook, end to end as in a cluster: the
// ValidatingWebhookConfiguration of deploy/base (rendered by kustomize), its caBundle injected by
// the operator itself, kube-apiserver (the fake) calling the webhook through the Service name over
// HTTPS and verifying the operator's certificate for keda-admission-webhooks.keda.svc, and kubectl
// showing what the webhook said: a second ScaledObject for a workload that one already scales is
// refused naming the first, invalid objects are refused, valid ones (and edits) are accepted, and
// unsupported fields come back as warnings.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { startFakeApiServer, type KubeObject } from '../helpers/fake-apiserver.js';
import { freePort } from '../helpers/adapter.js';
import { eventually } from '../helpers/loop.js';
import { startTestOperator, type TestOperator } from '../helpers/operator.js';
import { createTestPki } from '../helpers/pki.js';
import { kubectl, run, type RunResult } from '../helpers/tools.js';
import { kubectlApply as applyObjects, putDeployment } from '../helpers/cluster.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
// What kube-apiserver verifies: the Service's DNS name, in the operator's serving certificate.
if (!new X509Certificate(pki.tls.cert).checkHost('keda-admission-webhooks.keda.svc')) throw new Error('the test PKI tls certificate does not cover keda-admission-webhooks.keda.svc');

// --- an upstream for the metrics-api triggers ---------------------------------------------------
const upstream: Server = createServer((_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ queue: { depth: 3 } }));
});
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => upstream.close(() => r())));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/stats`;

// --- the cluster ----------------------------------------------------------------------------------
const webhookPort = await freePort();
const api = await startFakeApiServer({
  // Service keda/keda-admission-webhooks:443 → the operator's webhook port (targetPort 9443 in a cluster).
  serviceResolver: (namespace, name, port) => (namespace === 'keda' && name === 'keda-admission-webhooks' && port === 443 ? `127.0.0.1:${webhookPort}` : undefined),
});
t.teardown(() => api.close());
api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'keda' } });
api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
for (const name of ['web', 'api']) putDeployment(api, 'shop', name);
const kc = await api.writeKubeconfig(join(root, 'kc'));

const kubectlApply = (obj: unknown, file?: string): Promise<RunResult> => applyObjects(kc, root, obj, file);

// The webhook configuration exactly as deploy/base ships it: no caBundle yet.
const rendered = await run('kubectl', ['kustomize', fileURLToPath(new URL('../../deploy/base', import.meta.url))]);
if (rendered.code !== 0) throw new Error(`kubectl kustomize deploy/base: ${rendered.stderr}`);
const vwc = parseAllDocuments(rendered.stdout)
  .map((d) => d.toJS() as KubeObject & { webhooks?: { name: string; clientConfig: { caBundle?: string } }[] })
  .find((d) => d.kind === 'ValidatingWebhookConfiguration' && d.metadata?.name === 'keda-admission');
if (!vwc) throw new Error('no ValidatingWebhookConfiguration keda-admission in kubectl kustomize deploy/base');
const shippedWithoutCaBundle = vwc.webhooks!.every((w) => w.clientConfig.caBundle === undefined);
const installed = await kubectlApply(vwc, 'admission-webhook.yaml');
if (installed.code !== 0) throw new Error(`kubectl apply of the webhook configuration: ${installed.stderr}`);

const operator: TestOperator = await startTestOperator([
  `--kubeconfig=${kc}`,
  '--namespace=keda',
  `--cert-dir=${pki.dir}`,
  '--enable-cert-rotation=false',
  '--enable-apiservice-patching=false',
  '--enable-webhook-patching=true',
  '--leader-election-lease-duration=2s',
  '--leader-election-renew-deadline=1500ms',
  '--leader-election-retry-period=200ms',
  `--webhook-port=${webhookPort}`,
]);
t.teardown(() => operator.shutdown());

const webhooks = () => api.get<{ webhooks: { name: string; clientConfig: { caBundle?: string } }[] }>('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission')!.webhooks;

// --- helpers ------------------------------------------------------------------------------------
const scaledObject = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name, namespace: 'shop' }, spec });
const trigger = (extra: Record<string, unknown> = {}) => ({ type: 'metrics-api', metadata: { url: upstreamUrl, valueLocation: 'queue.depth', targetValue: '5' }, ...extra });
const so = (name: string) => api.get<KubeObject & { spec: Record<string, unknown> }>('keda.sh/v1alpha1', 'ScaledObject', 'shop', name);
const lastCall = () => api.admissionCalls.at(-1);

// --- tests --------------------------------------------------------------------------------------

t.test('the webhook configuration of deploy/base gets its caBundle from the operator', async (t) => {
  t.ok(shippedWithoutCaBundle, 'shipped without a caBundle');
  t.strictSame(
    webhooks().map((w) => w.name),
    ['vscaledobject.keda.sh', 'vstriggerauthentication.keda.sh', 'vsclustertriggerauthentication.keda.sh'],
  );
  // The operator injects its cert dir's ca.crt into every webhook of keda-admission.
  const ca = new X509Certificate(pki.ca.cert).fingerprint256;
  await eventually(
    'the caBundle injection',
    async () => (webhooks().every((w) => w.clientConfig.caBundle && new X509Certificate(Buffer.from(w.clientConfig.caBundle, 'base64')).fingerprint256 === ca) ? true : undefined),
    15_000,
  );
  t.pass('every webhook trusts the operator CA');
});

t.test('a ScaledObject for a workload already scaled by another is refused, naming it', async (t) => {
  const a = await kubectlApply(scaledObject('a', { scaleTargetRef: { name: 'web' }, minReplicaCount: 1, maxReplicaCount: 5, triggers: [trigger()] }));
  t.equal(a.code, 0, `a is accepted: ${a.stderr}`);
  t.match(a.stdout, /scaledobject\.keda\.sh\/a created/);
  t.match(lastCall(), { configuration: 'keda-admission', webhook: 'vscaledobject.keda.sh', outcome: 'allowed', request: { operation: 'CREATE', name: 'a', namespace: 'shop', userInfo: { username: 'admin' } } });
  // The webhook judges against the operator's store: wait until it has `a` (it wrote a's HPA).
  await eventually('the operator knows a', async () => api.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-a'), 15_000);

  const b = await kubectlApply(scaledObject('b', { scaleTargetRef: { name: 'web' }, triggers: [trigger()] }));
  t.not(b.code, 0, 'kubectl fails');
  t.match(b.stderr, /Error from server \(Forbidden\): error when creating ".*": admission webhook "vscaledobject\.keda\.sh" denied the request: /);
  t.match(b.stderr, /ScaledObject shop\/b: the workload 'web' of type 'apps\/v1\.Deployment' is already managed by the ScaledObject 'a'/);
  t.notOk(so('b'), 'b was not stored');
  t.match(lastCall(), { webhook: 'vscaledobject.keda.sh', outcome: 'denied' });
});

t.test('invalid ScaledObjects are refused with the reason', async (t) => {
  const unknown = await kubectlApply(scaledObject('mystery', { scaleTargetRef: { name: 'api' }, triggers: [{ type: 'no-such-scaler', metadata: { x: '1' } }] }));
  t.not(unknown.code, 0);
  t.match(unknown.stderr, /admission webhook "vscaledobject\.keda\.sh" denied the request: ScaledObject shop\/mystery: spec\.triggers\[0\] \(no-such-scaler\): unsupported trigger type "no-such-scaler"/);
  t.notOk(so('mystery'));

  const bounds = await kubectlApply(scaledObject('inverted', { scaleTargetRef: { name: 'api' }, minReplicaCount: 5, maxReplicaCount: 2, triggers: [trigger()] }));
  t.not(bounds.code, 0);
  t.match(bounds.stderr, /admission webhook "vscaledobject\.keda\.sh" denied the request: .*spec\.minReplicaCount.*must not be greater than spec\.maxReplicaCount \(2\)/);
  t.notOk(so('inverted'));
});

t.test('edits of a ScaledObject are accepted; another workload is free', async (t) => {
  const edited = await kubectlApply(scaledObject('a', { scaleTargetRef: { name: 'web' }, minReplicaCount: 1, maxReplicaCount: 8, triggers: [trigger()] }));
  t.equal(edited.code, 0, `the update of a itself is accepted: ${edited.stderr}`);
  t.match(edited.stdout, /scaledobject\.keda\.sh\/a configured/);
  t.equal(so('a')!.spec.maxReplicaCount, 8);
  t.match(lastCall(), { webhook: 'vscaledobject.keda.sh', outcome: 'allowed', request: { operation: 'UPDATE', name: 'a', oldObject: { spec: { maxReplicaCount: 5 } }, object: { spec: { maxReplicaCount: 8 } } } });

  const other = await kubectlApply(scaledObject('b', { scaleTargetRef: { name: 'api' }, triggers: [trigger()] }));
  t.equal(other.code, 0, `b for another deployment is accepted: ${other.stderr}`);
  t.ok(so('b'));

  // A metadata-only change is not even sent: the matchCondition skips updates that keep the spec.
  const calls = api.admissionCalls.length;
  const labelled = await kubectl([`--kubeconfig=${kc}`, '-n', 'shop', 'label', 'scaledobject', 'b', 'team=shop']);
  t.equal(labelled.code, 0, labelled.stderr);
  t.match(api.admissionCalls.slice(calls), [{ webhook: 'vscaledobject.keda.sh', outcome: 'skipped', message: 'matchCondition "spec-changed" is false' }]);
});

t.test('unsupported fields are accepted, and kubectl prints the warning', async (t) => {
  const fallback = await kubectlApply(scaledObject('with-fallback', { scaleTargetRef: { name: 'with-fallback-target' }, fallback: { failureThreshold: 3, replicas: 2 }, triggers: [trigger()] }));
  t.equal(fallback.code, 0, fallback.stderr);
  t.match(fallback.stderr, /^Warning: spec\.fallback is not supported: /m);
  t.ok(so('with-fallback'));
  t.match(lastCall(), { webhook: 'vscaledobject.keda.sh', outcome: 'allowed', warnings: [/^spec\.fallback is not supported/] });
});

t.test('with the operator gone, writes of ScaledObjects fail closed', async (t) => {
  await operator.shutdown();
  const refused = await kubectlApply(scaledObject('late', { scaleTargetRef: { name: 'late-target' }, triggers: [trigger()] }));
  t.not(refused.code, 0);
  t.match(refused.stderr, /Internal error occurred: failed calling webhook "vscaledobject\.keda\.sh": failed to call webhook: Post "https:\/\/keda-admission-webhooks\.keda\.svc:443\/validate-keda-sh-v1alpha1-scaledobject\?timeout=10s": dial tcp 127\.0\.0\.1:\d+: connect: connection refused/);
  t.notOk(so('late'));
  // Removing a finalizer is never blocked (the spec does not change).
  api.modify('keda.sh/v1alpha1', 'ScaledObject', 'shop', 'b', (o) => {
    o.metadata!.finalizers = ['example.com/hold'];
  });
  const unfinalized = await kubectl([`--kubeconfig=${kc}`, '-n', 'shop', 'patch', 'scaledobject', 'b', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  t.equal(unfinalized.code, 0, unfinalized.stderr);
});
