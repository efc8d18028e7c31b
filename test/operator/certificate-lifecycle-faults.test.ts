// caBundle writes that fail, against the fake kube-apiserver. Why the fake here, not the real
// control plane (certificate-lifecycle.test.ts)? These cases need kube-apiserver to answer one
// chosen write with a chosen status: the operator's first write back after drift with 409
// Conflict, and a write of the ValidatingWebhookConfiguration with 500. A real kube-apiserver
// gives a 409 only when another write lands between the operator's read and its write, which no
// test can time; it gives a 500 only when something is broken. (An admission webhook can deny a
// write with any code, but kube-apiserver never calls webhooks for ValidatingWebhookConfiguration
// writes, and a denial is not a conflict.) Everything else about the lifecycle runs on the real
// control plane in certificate-lifecycle.test.ts.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFakeApiServer, type FakeApiServer } from '../helpers/fake-apiserver.js';
import { startTestOperator, type TestOperator } from '../helpers/operator.js';
import { mountSecret } from '../helpers/kubelet.js';
import { eventually } from '../helpers/loop.js';

const root = t.testdir();
const scaledObjects = join(root, 'so.yaml');
await writeFile(scaledObjects, 'kind: List\napiVersion: v1\nitems: []\n');

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

function installTargets(api: FakeApiServer) {
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'keda' } });
  api.put({
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name: 'v1beta1.external.metrics.k8s.io' },
    spec: { group: 'external.metrics.k8s.io', version: 'v1beta1', service: { namespace: 'keda', name: 'keda-metrics-apiserver', port: 443 }, groupPriorityMinimum: 100, versionPriority: 100 },
  });
  api.put({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: 'keda-admission' },
    webhooks: ['vscaledobject.keda.sh', 'vstriggerauthentication.keda.sh'].map((name) => ({
      name,
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      clientConfig: { service: { namespace: 'keda', name: 'keda-admission-webhooks', path: '/validate' } },
      rules: [{ apiGroups: ['keda.sh'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE'], resources: ['scaledobjects'] }],
    })),
  });
}

type Webhooks = { webhooks: { clientConfig: { caBundle?: string } }[] };
const apiService = (api: FakeApiServer) => api.get<{ spec: { caBundle?: string } }>('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io')!;
const webhooks = (api: FakeApiServer) => api.get<Webhooks>('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission')!.webhooks;
const secret = (api: FakeApiServer) => api.get<{ data?: Record<string, string> }>('v1', 'Secret', 'keda', 'kedaorg-certs');
const events = (api: FakeApiServer, ns: string) => api.list('v1', 'Event', ns) as { reason?: string; type?: string; involvedObject?: { name?: string } }[];
const metricsOf = async (op: TestOperator) => (await fetch(`http://127.0.0.1:${op.metricsPort}/metrics`)).text();
const counter = (text: string, name: string, labels: string) => Number(text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels))?.split(' ').pop() ?? 0);

const api = await startFakeApiServer();
t.teardown(() => api.close());
installTargets(api);
const kc = await api.writeKubeconfig(join(root, 'kc'));
const mount = mountSecret(api, 'keda', 'kedaorg-certs', join(root, 'certs'));
t.teardown(() => mount.stop());
const operator = await startTestOperator([
  `--kubeconfig=${kc}`,
  '--namespace=keda',
  `--cert-dir=${mount.dir}`,
  `--scaled-objects-file=${scaledObjects}`,
  '--enable-cert-rotation=true',
  '--leader-election-lease-duration=2s',
  '--leader-election-renew-deadline=1500ms',
  '--leader-election-retry-period=200ms',
]);
t.teardown(() => operator.shutdown());
const ca = () => unb64(secret(api)!.data!['ca.crt']);
await eventually('caBundles injected', async () => (apiService(api).spec.caBundle === b64(ca()) && webhooks(api).every((w) => w.clientConfig.caBundle === b64(ca())) ? true : undefined));

t.test('drift plus a 409 on the first write back: the conflict is counted, the object re-read and the write retried', async (t) => {
  const clear = api.inject({ method: 'PUT', path: '/apis/apiregistration.k8s.io/v1/apiservices/', status: 409, times: 1 });
  t.teardown(clear);
  api.modify('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', (o: { spec: { caBundle?: string } }) => {
    o.spec.caBundle = b64('someone else');
  });
  await eventually('drift restored after a conflict', async () => (apiService(api).spec.caBundle === b64(ca()) ? true : undefined), 10_000);
  t.ok(counter(await metricsOf(operator), 'cabundle_patch_conflicts_total', 'target="APIService"') >= 1, 'the conflict was counted and retried');
  t.equal(api.requests.filter((r) => r.method === 'PUT' && r.path.includes('/apiservices/') && r.status === 409).length, 1, 'the injected 409 was the answer to a write back');
  // Events are written best effort, after the fact: wait for them rather than race them.
  await eventually('a drift Event', async () => (events(api, 'default').some((e) => e.reason === 'CABundleDrift') ? true : undefined));
  t.notOk(events(api, 'default').some((e) => e.reason === 'CABundlePatchFailed'), 'a conflict is not a failure');
});

t.test('a 500 on a webhook write: a Warning Event, and the write retried until it lands', async (t) => {
  const clear = api.inject({ method: 'PUT', path: '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/', status: 500, times: 1 });
  t.teardown(clear);
  api.modify('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission', (o: Webhooks) => {
    o.webhooks[0]!.clientConfig.caBundle = b64('drifted again');
  });
  const failed = await eventually('a Warning Event for the failed write', async () => events(api, 'default').find((e) => e.reason === 'CABundlePatchFailed'), 10_000);
  t.match(failed, { type: 'Warning', involvedObject: { name: 'keda-admission' } });
  await eventually('the write retried and landed', async () => (webhooks(api).every((w) => w.clientConfig.caBundle === b64(ca())) ? true : undefined), 15_000);
  t.ok(counter(await metricsOf(operator), 'cabundle_patches_total', 'result="error"') >= 1, 'the failed write was counted');
});
