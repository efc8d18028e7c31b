// The operator's validating admission webhook, called by a real kube-apiserver (envtest v1.28): the
// ValidatingWebhookConfiguration of deploy/base (rendered by kustomize), its caBundle injected by
// the operator itself, kube-apiserver dialling the webhook through its Service name over HTTPS
// and verifying the operator's certificate for keda-admission-webhooks.keda.svc, its CEL
// matchConditions evaluated for real, and kubectl showing what the webhook said: a second
// ScaledObject for a workload that one already scales is refused naming the first, invalid objects
// are refused, valid ones (and edits) are accepted, unsupported fields come back as warnings, and
// with the operator gone writes fail closed while finalizers can still be removed.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/envtest.js';
import { componentKubeconfigs, installDeploy, kubectlApply, routeWebhooksToLocal } from '../helpers/keda-cluster.js';
import { Kube, deployment, namespace, scaledObject } from '../helpers/kube.js';
import { freePort } from '../helpers/adapter.js';
import { eventually } from '../helpers/loop.js';
import { startTestOperator, type TestOperator } from '../helpers/operator.js';
import { createTestPki } from '../helpers/pki.js';
import { kubectl } from '../helpers/tools.js';

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
const cp = await startControlPlane(t, { controllerManager: false });
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms`);
const kube = new Kube(cp.adminKubeconfig);
const installed = await installDeploy(cp, root, ['crds', 'rbac', 'webhook']);
const shipped = installed.find((o) => o.kind === 'ValidatingWebhookConfiguration') as { webhooks: { clientConfig: { caBundle?: string } }[] };
await kube.create(namespace('shop'));
for (const name of ['web', 'api']) await kube.create(deployment('shop', name));
const webhookPort = await freePort();
await routeWebhooksToLocal(kube, webhookPort);

const operator: TestOperator = await startTestOperator([
  `--kubeconfig=${(await componentKubeconfigs(cp)).operator}`,
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

// --- helpers ------------------------------------------------------------------------------------
const apply = (obj: unknown) => kubectlApply(cp.adminKubeconfig, root, obj);
const webhooks = async () => ((await kube.get('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission'))!.webhooks as { name: string; clientConfig: { caBundle?: string } }[]);
const trigger = (extra: Record<string, unknown> = {}) => ({ type: 'metrics-api', metadata: { url: upstreamUrl, valueLocation: 'queue.depth', targetValue: '5' }, ...extra });
const so = (name: string) => kube.get('keda.sh/v1alpha1', 'ScaledObject', 'shop', name);
/** The webhook's own count of the reviews it answered, by outcome. */
const reviews = async (allowed: 'true' | 'false') => {
  const text = await (await fetch(`http://127.0.0.1:${operator.metricsPort}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith('keda_webhook_admission_requests_total{') && l.includes('resource="scaledobjects"') && l.includes(`allowed="${allowed}"`)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
};

// --- tests --------------------------------------------------------------------------------------

t.test('the webhook configuration of deploy/base gets its caBundle from the operator', async (t) => {
  t.ok(shipped.webhooks.every((w) => w.clientConfig.caBundle === undefined), 'shipped without a caBundle');
  t.strictSame(
    (await webhooks()).map((w) => w.name),
    ['vscaledobject.keda.sh', 'vstriggerauthentication.keda.sh', 'vsclustertriggerauthentication.keda.sh', 'vscaledjob.keda.sh'],
  );
  const ca = new X509Certificate(pki.ca.cert).fingerprint256;
  await eventually(
    'the caBundle injection',
    async () => ((await webhooks()).every((w) => w.clientConfig.caBundle && new X509Certificate(Buffer.from(w.clientConfig.caBundle, 'base64')).fingerprint256 === ca) ? true : undefined),
    15_000,
  );
  t.pass('every webhook trusts the operator CA');
});

t.test('a ScaledObject for a workload already scaled by another is refused, naming it', async (t) => {
  const allowedBefore = await reviews('true');
  const a = await apply(scaledObject('shop', 'a', { scaleTargetRef: { name: 'web' }, minReplicaCount: 1, maxReplicaCount: 5, triggers: [trigger()] }));
  t.equal(a.code, 0, `a is accepted: ${a.stderr}`);
  t.match(a.stdout, /scaledobject\.keda\.sh\/a created/);
  t.equal(await reviews('true'), allowedBefore + 1, 'the webhook was asked, and allowed it');
  // The webhook judges against the operator's store: wait until it has `a` (it wrote a's HPA).
  await eventually('the operator knows a', () => kube.get('autoscaling/v2', 'HorizontalPodAutoscaler', 'shop', 'keda-hpa-a'), 15_000);

  const b = await apply(scaledObject('shop', 'b', { scaleTargetRef: { name: 'web' }, triggers: [trigger()] }));
  t.not(b.code, 0, 'kubectl fails');
  t.match(b.stderr, /Error from server \(Forbidden\): error when creating ".*": admission webhook "vscaledobject\.keda\.sh" denied the request: /);
  t.match(b.stderr, /ScaledObject shop\/b: the workload 'web' of type 'apps\/v1\.Deployment' is already managed by the ScaledObject 'a'/);
  t.notOk(await so('b'), 'b was not stored');
});

t.test('invalid ScaledObjects are refused with the reason', async (t) => {
  const unknown = await apply(scaledObject('shop', 'mystery', { scaleTargetRef: { name: 'api' }, triggers: [{ type: 'no-such-scaler', metadata: { x: '1' } }] }));
  t.not(unknown.code, 0);
  t.match(unknown.stderr, /admission webhook "vscaledobject\.keda\.sh" denied the request: ScaledObject shop\/mystery: spec\.triggers\[0\] \(no-such-scaler\): unsupported trigger type "no-such-scaler"/);
  t.notOk(await so('mystery'));

  const bounds = await apply(scaledObject('shop', 'inverted', { scaleTargetRef: { name: 'api' }, minReplicaCount: 5, maxReplicaCount: 2, triggers: [trigger()] }));
  t.not(bounds.code, 0);
  t.match(bounds.stderr, /admission webhook "vscaledobject\.keda\.sh" denied the request: .*spec\.minReplicaCount.*must not be greater than spec\.maxReplicaCount \(2\)/);
  t.notOk(await so('inverted'));

  const formula = await apply(scaledObject('shop', 'formula', { scaleTargetRef: { name: 'api' }, advanced: { scalingModifiers: { formula: 'queue * (2 +', target: '5' } }, triggers: [{ ...trigger(), name: 'queue' }] }));
  t.not(formula.code, 0);
  t.match(formula.stderr, /denied the request: .*spec\.advanced\.scalingModifiers\.formula is invalid: unexpected the end of the formula \(1:13\)/, 'a bad formula, with the position');
  t.notOk(await so('formula'));

  const job = await apply({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledJob',
    metadata: { name: 'greedy', namespace: 'shop' },
    spec: { jobTargetRef: { template: { spec: { containers: [{ name: 'c', image: 'x' }] } } }, scalingStrategy: { strategy: 'greedy' }, triggers: [trigger()] },
  });
  t.not(job.code, 0);
  t.match(job.stderr, /admission webhook "vscaledjob\.keda\.sh" denied the request: .*spec\.scalingStrategy\.strategy must be one of default, custom, accurate, eager/, 'ScaledJobs are checked too');

  // The CRD's schema comes first: a wrong type never reaches the webhook.
  const typed = await apply(scaledObject('shop', 'typed', { scaleTargetRef: { name: 'api' }, maxReplicaCount: 'ten', triggers: [trigger()] }));
  t.not(typed.code, 0);
  t.match(typed.stderr, /spec\.maxReplicaCount: Invalid value: "string": spec\.maxReplicaCount in body must be of type integer/);
});

t.test('edits of a ScaledObject are accepted; another workload is free; the matchCondition skips metadata-only updates', async (t) => {
  const edited = await apply(scaledObject('shop', 'a', { scaleTargetRef: { name: 'web' }, minReplicaCount: 1, maxReplicaCount: 8, triggers: [trigger()] }));
  t.equal(edited.code, 0, `the update of a itself is accepted: ${edited.stderr}`);
  t.match(edited.stdout, /scaledobject\.keda\.sh\/a configured/);
  t.equal((await so('a'))!.spec!.maxReplicaCount, 8);

  const other = await apply(scaledObject('shop', 'b', { scaleTargetRef: { name: 'api' }, triggers: [trigger()] }));
  t.equal(other.code, 0, `b for another deployment is accepted: ${other.stderr}`);
  t.ok(await so('b'));

  // A label is not a spec change: kube-apiserver's CEL matchCondition says so, and the webhook is
  // not called at all.
  const [allowed, denied] = [await reviews('true'), await reviews('false')];
  const labelled = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, '-n', 'shop', 'label', 'scaledobject', 'b', 'team=shop']);
  t.equal(labelled.code, 0, labelled.stderr);
  t.strictSame([await reviews('true'), await reviews('false')], [allowed, denied], 'the webhook was not called for a label');
  const specEdit = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, '-n', 'shop', 'patch', 'scaledobject', 'b', '--type=merge', '-p', '{"spec":{"maxReplicaCount":7}}']);
  t.equal(specEdit.code, 0, specEdit.stderr);
  t.equal(await reviews('true'), allowed + 1, 'but it is for a spec change');
});

t.test('unsupported fields are accepted, and kubectl prints the warning', async (t) => {
  const fromEnv = await apply(scaledObject('shop', 'from-env', { scaleTargetRef: { name: 'from-env-target', envSourceContainerName: 'app' }, triggers: [trigger({ metadata: { ...trigger().metadata, urlFromEnv: 'API_URL' } })] }));
  t.equal(fromEnv.code, 0, fromEnv.stderr);
  t.match(fromEnv.stderr, /^Warning: spec\.triggers\[0\]\.metadata\.urlFromEnv is not supported: metrics-api does not read url /m);
  t.notMatch(fromEnv.stderr, /envSourceContainerName/, 'envSourceContainerName is acted on');
  t.ok(await so('from-env'));
});

t.test('with the operator gone, writes of ScaledObjects fail closed; finalizers can still be removed', async (t) => {
  // A finalizer someone put on b, to be removed while the webhook is down.
  await kube.mergePatch('keda.sh/v1alpha1', 'ScaledObject', 'shop', 'b', { metadata: { finalizers: ['example.com/hold'] } });
  await operator.shutdown();
  const refused = await apply(scaledObject('shop', 'late', { scaleTargetRef: { name: 'late-target' }, triggers: [trigger()] }));
  t.not(refused.code, 0);
  t.match(refused.stderr, new RegExp(`Internal error occurred: failed calling webhook "vscaledobject\\.keda\\.sh": failed to call webhook: Post "https://keda-admission-webhooks\\.keda\\.svc:${webhookPort}/validate-keda-sh-v1alpha1-scaledobject\\?timeout=10s": dial tcp .*:${webhookPort}: connect: connection refused`));
  t.notOk(await so('late'));
  const unfinalized = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, '-n', 'shop', 'patch', 'scaledobject', 'b', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  t.equal(unfinalized.code, 0, unfinalized.stderr);
  const deleted = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, '-n', 'shop', 'delete', 'scaledobject', 'b']);
  t.equal(deleted.code, 0, `deletion is never blocked: ${deleted.stderr}`);
});
