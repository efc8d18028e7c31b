// ScaledJobs against the fake kube-apiserver, for what a real one cannot be made to show on demand:
// the watch delivering a Job before the answer to the call that created it (the answer held back
// on the wire). scaledjobs.test.ts is the real control plane's view of the same decisions.
import t from 'tap';
import { join } from 'node:path';
import { startFakeApiServer, type KubeObject } from '../helpers/fake-apiserver.js';
import { mustApplyToFake } from '../helpers/cluster.js';
import { jsonUpstream } from '../helpers/keda-cluster.js';
import { settles } from '../helpers/loop.js';
import { startTestOperator } from '../helpers/operator.js';
import { createTestPki } from '../helpers/pki.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
const base = await jsonUpstream(t, () => ({ body: { queue: { length: 4 } } }));

const api = await startFakeApiServer({
  resources: [
    { group: 'keda.sh', version: 'v1alpha1', kind: 'ScaledJob', plural: 'scaledjobs', singular: 'scaledjob', namespaced: true, custom: true, statusSubresource: true, generation: true },
    { group: 'batch', version: 'v1', kind: 'Job', plural: 'jobs', singular: 'job', namespaced: true, statusSubresource: true },
    { group: '', version: 'v1', kind: 'Pod', plural: 'pods', singular: 'pod', namespaced: true, statusSubresource: true },
  ],
});
t.teardown(() => api.close());
for (const name of ['keda', 'work']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const kc = await api.writeKubeconfig(join(root, 'kc'));

const operator = await startTestOperator([`--kubeconfig=${kc}`, '--namespace=keda', `--cert-dir=${pki.dir}`, '--enable-apiservice-patching=false', '--enable-webhook-patching=false', '--webhook-port=0']);
t.teardown(() => operator.shutdown());

const jobs = () => api.list<KubeObject>('batch/v1', 'Job', 'work').filter((j) => j.metadata?.labels?.['scaledjob.keda.sh/name'] === 'late');

t.test('a Job seen by the watch before its create call returned counts once', async (t) => {
  // Every Job's create answer arrives half a second after the Job is stored and watched.
  t.teardown(api.inject({ method: 'POST', path: /\/apis\/batch\/v1\/namespaces\/work\/jobs$/, answerDelayMs: 500 }));
  // KEDA's custom strategy: 4 queued - 1 deducted - half the running Jobs. 3 are created, then 2
  // (4 - 1 - 1.5), then 1 (4 - 1 - 2.5), then none (4 - 1 - 3). Counting each Job twice (seen
  // and still expected) reads 6 running after the first 3, and creates nothing more.
  await mustApplyToFake(kc, root, {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledJob',
    metadata: { name: 'late', namespace: 'work' },
    spec: {
      jobTargetRef: { template: { spec: { containers: [{ name: 'consumer', image: 'registry.invalid/consumer:1' }] } } },
      pollingInterval: 1,
      maxReplicaCount: 10,
      scalingStrategy: { strategy: 'custom', customScalingQueueLengthDeduction: 1, customScalingRunningJobPercentage: '0.5' },
      triggers: [{ type: 'metrics-api', metadata: { url: `${base}/late`, valueLocation: 'queue.length', targetValue: '1' } }],
    },
  });
  t.equal(await settles('6 Jobs', async () => jobs().length, (n) => n === 6, 20_000), 6);
  await new Promise((r) => setTimeout(r, 3000));
  t.equal(jobs().length, 6, 'and no more');
});
