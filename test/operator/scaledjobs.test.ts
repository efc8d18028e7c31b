// ScaledJobs on a real control plane (envtest v1.28, with kube-controller-manager's Job
// controller and garbage collector), applied as KEDA's docs write them. There is no kubelet: the
// Job controller creates each Job's Pod and it stays Pending, so what is tested is what the
// operator decides and creates, and the Job controller's view of it. A Pod "starting" and a Job
// finishing are written by the test where a kubelet and the Job controller would write them
// (pods/status, jobs/status).
import t from 'tap';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/envtest.js';
import { installDeploy, jsonUpstream, mustApply, startClusterOperator } from '../helpers/keda-cluster.js';
import { Kube, namespace, type Obj } from '../helpers/kube.js';
import { createTestPki } from '../helpers/pki.js';
import { eventually, settles } from '../helpers/loop.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
const values = new Map<string, number>();
const base = await jsonUpstream(t, (path) => ({ body: { queue: { length: values.get(path) ?? 0 } } }));

const cp = await startControlPlane(t);
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms`);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root);
await kube.create(namespace('work'));
await startClusterOperator(t, cp, pki.dir);

interface Job extends Obj {
  spec?: { template?: { metadata?: { labels?: Record<string, string> }; spec?: { restartPolicy?: string; containers?: { image?: string }[] } } };
  status?: { active?: number; conditions?: { type: string; status: string }[] };
}
/** A ScaledJob as in KEDA's docs: a queue consumer, one Job per message. */
const scaledJob = (name: string, spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): Obj => ({
  apiVersion: 'keda.sh/v1alpha1',
  kind: 'ScaledJob',
  metadata: { name, namespace: 'work', ...metadata },
  spec: {
    jobTargetRef: { parallelism: 1, completions: 1, backoffLimit: 4, template: { spec: { containers: [{ name: 'consumer', image: 'registry.invalid/consumer:1' }] } } },
    pollingInterval: 1,
    maxReplicaCount: 10,
    triggers: [{ type: 'metrics-api', metadata: { url: `${base}/${name}`, valueLocation: 'queue.length', targetValue: '1' } }],
    ...spec,
  },
});
const jobsOf = (name: string) => kube.list<Job>('batch/v1', 'Job', 'work', `scaledjob.keda.sh/name=${name}`);
const count = async (name: string) => (await jobsOf(name)).length;
const condition = (name: string, type: string) => kube.condition('keda.sh/v1alpha1', 'ScaledJob', 'work', name, type);
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits for exactly n Jobs; a timeout says how many there were (more means a Job created twice). */
const jobCount = (name: string, n: number, timeoutMs = 15_000) => settles(`${n} Jobs for ${name}`, () => count(name), (c) => c === n, timeoutMs);
/** Writes what the Job controller would on success or failure. */
const finish = (job: Job, type: 'Complete' | 'Failed', at: Date) =>
  kube.mergePatch('batch/v1', 'Job', 'work', job.metadata!.name!, {
    status: {
      startTime: at.toISOString().replace(/\.\d+Z$/, 'Z'),
      ...(type === 'Complete' ? { completionTime: at.toISOString().replace(/\.\d+Z$/, 'Z') } : {}),
      conditions: [{ type, status: 'True', lastProbeTime: at.toISOString(), lastTransitionTime: at.toISOString(), reason: type === 'Failed' ? 'BackoffLimitExceeded' : 'Completed' }],
    },
  }, 'status');

t.test('default strategy: a Job per queued item, owned by the ScaledJob, never more than maxReplicaCount', async (t) => {
  values.set('/orders', 3);
  await mustApply(cp.adminKubeconfig, root, scaledJob('orders'));
  await jobCount('orders', 3);
  const [job] = await jobsOf('orders');
  t.match(job?.metadata, {
    generateName: 'orders-',
    labels: { 'scaledjob.keda.sh/name': 'orders', 'app.kubernetes.io/managed-by': 'keda-operator' },
    annotations: { 'scaledjob.keda.sh/generation': '1' },
    ownerReferences: [{ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledJob', name: 'orders', controller: true }],
  });
  t.equal(job?.spec?.template?.spec?.restartPolicy, 'OnFailure', 'KEDA\'s default restartPolicy for Jobs');
  t.equal(job?.spec?.template?.metadata?.labels?.['scaledjob.keda.sh/name'], 'orders', 'the Pods carry the label too');
  await eventually('the Job controller made their Pods (Pending: no kubelet)', async () => ((await jobsOf('orders')).every((j) => j.status?.active === 1) ? true : undefined));
  await wait(3000);
  t.equal(await count('orders'), 3, 'three running for three items: no more');
  t.equal((await condition('orders', 'Active'))?.status, 'True');
  t.equal((await condition('orders', 'Ready'))?.status, 'True');
  t.equal((await condition('orders', 'FullySupported'))?.status, 'True');

  values.set('/orders', 5);
  await jobCount('orders', 5);
  values.set('/orders', 50);
  await jobCount('orders', 10);
  await wait(3000);
  t.equal(await count('orders'), 10, 'capped at maxReplicaCount');
  const events = await kube.list('v1', 'Event', 'work');
  t.ok(events.some((e) => (e as { reason?: string; involvedObject?: { name?: string } }).reason === 'KEDAJobsCreated' && (e as { involvedObject?: { name?: string } }).involvedObject?.name === 'orders'), 'KEDAJobsCreated events');
});

t.test('finished Jobs beyond the history limits are deleted, oldest first', async (t) => {
  values.set('/history', 4);
  await mustApply(cp.adminKubeconfig, root, scaledJob('history', { successfulJobsHistoryLimit: 1, failedJobsHistoryLimit: 1 }));
  await jobCount('history', 4);
  values.set('/history', 0);
  const jobs = await jobsOf('history');
  const t0 = Date.now() - 60_000;
  await finish(jobs[0]!, 'Complete', new Date(t0));
  await finish(jobs[1]!, 'Complete', new Date(t0 + 10_000));
  await finish(jobs[2]!, 'Failed', new Date(t0));
  await finish(jobs[3]!, 'Failed', new Date(t0 + 10_000));
  await jobCount('history', 2);
  const left = (await jobsOf('history')).map((j) => j.metadata!.name).sort();
  t.strictSame(left, [jobs[1]!.metadata!.name, jobs[3]!.metadata!.name].sort(), 'the newest of each kind kept');
  t.equal((await condition('history', 'Active'))?.status, 'False');
});

t.test('accurate with pendingPodConditions: Jobs whose Pods have not started still count against the queue', async (t) => {
  values.set('/accurate', 2);
  await mustApply(cp.adminKubeconfig, root, scaledJob('accurate', { scalingStrategy: { strategy: 'accurate', pendingPodConditions: ['Ready', 'PodScheduled'] } }));
  await jobCount('accurate', 2);
  await wait(3000);
  t.equal(await count('accurate'), 2, 'two pending Jobs for two items');
  // One Pod starts (what the scheduler and a kubelet would write): its Job stops being pending.
  const pods = await kube.list('v1', 'Pod', 'work', 'scaledjob.keda.sh/name=accurate');
  const now = new Date().toISOString();
  await kube.mergePatch('v1', 'Pod', 'work', pods[0]!.metadata!.name!, { status: { conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: now }, { type: 'Ready', status: 'True', lastTransitionTime: now }] } }, 'status');
  await jobCount('accurate', 3);
  await wait(3000);
  t.equal(await count('accurate'), 3, 'one more, and only one');
});

t.test('custom: the queue minus customScalingQueueLengthDeduction and a share of the running Jobs', async (t) => {
  values.set('/custom', 4);
  await mustApply(cp.adminKubeconfig, root, scaledJob('custom', { scalingStrategy: { strategy: 'custom', customScalingQueueLengthDeduction: 1, customScalingRunningJobPercentage: '0.5' } }));
  // 3 (4 - 1), then 2 (4 - 1 - 1), then 1 (4 - 1 - 2), then none (4 - 1 - 3).
  await jobCount('custom', 6, 20_000);
  await wait(3000);
  t.equal(await count('custom'), 6);
});

t.test('rollout: a spec change deletes the earlier generation\'s Jobs; gradual lets them run', async (t) => {
  values.set('/roll', 2).set('/gradual', 2);
  await mustApply(cp.adminKubeconfig, root, scaledJob('roll'), scaledJob('gradual', { rollout: { strategy: 'gradual' } }));
  await jobCount('roll', 2);
  await jobCount('gradual', 2);
  const before = new Set((await jobsOf('roll')).map((j) => j.metadata!.name));
  const image = { jobTargetRef: { template: { spec: { containers: [{ name: 'consumer', image: 'registry.invalid/consumer:2' }] } } } };
  await kube.mergePatch('keda.sh/v1alpha1', 'ScaledJob', 'work', 'roll', { spec: image });
  await kube.mergePatch('keda.sh/v1alpha1', 'ScaledJob', 'work', 'gradual', { spec: image });
  await eventually('the first generation gone, the second created', async () => {
    const jobs = await jobsOf('roll');
    return jobs.length === 2 && jobs.every((j) => !before.has(j.metadata!.name) && j.metadata?.annotations?.['scaledjob.keda.sh/generation'] === '2') ? true : undefined;
  });
  t.equal((await jobsOf('roll'))[0]?.spec?.template?.spec?.containers?.[0]?.image, 'registry.invalid/consumer:2');
  await wait(3000);
  const gradual = await jobsOf('gradual');
  t.strictSame(gradual.map((j) => j.metadata?.annotations?.['scaledjob.keda.sh/generation']), ['1', '1'], 'gradual: the running Jobs kept (and they cover the queue)');
});

t.test('paused: no Job while the annotation says so', async (t) => {
  values.set('/held', 2);
  await mustApply(cp.adminKubeconfig, root, scaledJob('held', {}, { annotations: { 'autoscaling.keda.sh/paused': 'true' } }));
  await eventually('Paused', async () => ((await condition('held', 'Paused'))?.status === 'True' ? true : undefined));
  await wait(3000);
  t.equal(await count('held'), 0);
  await kube.mergePatch('keda.sh/v1alpha1', 'ScaledJob', 'work', 'held', { metadata: { annotations: { 'autoscaling.keda.sh/paused': null } } });
  await jobCount('held', 2);
  await eventually('unpaused', async () => ((await condition('held', 'Paused'))?.status === 'False' ? true : undefined));
});

t.test('a field not acted on is named in FullySupported', async (t) => {
  await mustApply(cp.adminKubeconfig, root, scaledJob('env', { envSourceContainerName: 'consumer', somethingNew: 1 }));
  const c = await eventually('FullySupported False', async () => ((await condition('env', 'FullySupported'))?.status === 'False' ? condition('env', 'FullySupported') : undefined));
  t.match(c?.message, /spec\.somethingNew is not supported: this field is unknown/);
  t.notMatch(c?.message, /envSourceContainerName/, 'envSourceContainerName is acted on');
});

t.test('a failing trigger is reported in Ready, and creates nothing', async (t) => {
  await mustApply(cp.adminKubeconfig, root, scaledJob('broken', { triggers: [{ type: 'metrics-api', metadata: { url: 'http://127.0.0.1:1/nothing', valueLocation: 'queue.length', targetValue: '1' } }] }));
  const ready = await eventually('Ready False', async () => ((await condition('broken', 'Ready'))?.reason === 'TriggerError' ? condition('broken', 'Ready') : undefined));
  t.match(ready?.message, /Triggers defined in ScaledJob are not working correctly: /);
  t.equal(await count('broken'), 0);
});

t.test('deleting the ScaledJob takes its Jobs with it (the garbage collector, by owner reference)', async (t) => {
  await kube.delete('keda.sh/v1alpha1', 'ScaledJob', 'work', 'orders');
  await jobCount('orders', 0, 30_000);
  t.pass();
});
