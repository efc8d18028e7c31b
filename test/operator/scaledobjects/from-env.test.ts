// `<parameter>FromEnv` on a real control plane (envtest v1.28) against a real Redis: a trigger's
// address and password read from the workload's container (envSourceContainerName), through
// envFrom with a prefix (a ConfigMap), secretKeyRef (a Secret) and `$(VAR)` expansion; applied in
// any order, it converges as each piece appears, and a change to the ConfigMap or the pod template
// reaches the scaler without a restart. ScaledJobs read their own Job template.
import t from 'tap';
import { join } from 'node:path';
import { startControlPlane } from '../../helpers/envtest.js';
import { externalMetric, installDeploy, mustApply, startOperatorAndAdapter } from '../../helpers/keda-cluster.js';
import { Kube, deployment, namespace, scaledObject, secret, type Obj } from '../../helpers/kube.js';
import { createTestPki } from '../../helpers/pki.js';
import { eventually } from '../../helpers/loop.js';
import { startRedis } from '../../helpers/redis.js';

const root = t.testdir();
const pki = await createTestPki(join(root, 'pki'));
const redis = await startRedis(t, { requirepass: 'cache-secret' });
await redis.admin((c) => c.rpush('orders', 'a', 'b', 'c'));
const cp = await startControlPlane(t);
const kube = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root, ['crds', 'rbac', 'apiservice']);
await kube.create(namespace('shop'));
await startOperatorAndAdapter(t, cp, kube, pki.dir);

const served = (so: string) => externalMetric(cp, 'shop', 's0-redis-orders', so);
const ready = (name: string) => kube.condition('keda.sh/v1alpha1', 'ScaledObject', 'shop', name, 'Ready');
/** Waits until Ready's message matches. */
const readyMessage = (name: string, pattern: RegExp) => eventually(`Ready says ${pattern}`, async () => ((await ready(name))?.message?.match(pattern) ? (await ready(name))?.message : undefined), 30_000);
const configMap = (name: string, data: Record<string, string>): Obj => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'shop' }, data });
const redisTrigger = (metadata: Record<string, string> = {}) => ({ type: 'redis', metadata: { listName: 'orders', listLength: '1', addressFromEnv: 'CACHE_ADDRESS', passwordFromEnv: 'CACHE_PASSWORD', ...metadata } });

/** A Deployment whose second container ("worker") holds the variables, the first a decoy. */
function worker(workerEnv: Obj[] = []): Obj {
  const d = deployment('shop', 'worker', 1);
  (d.spec as { template: { spec: Obj } }).template.spec = {
    containers: [
      { name: 'sidecar', image: 'registry.invalid/sidecar:1', env: [{ name: 'CACHE_ADDRESS', value: '127.0.0.1:1' }] },
      {
        name: 'worker',
        image: 'registry.invalid/worker:1',
        envFrom: [{ configMapRef: { name: 'cache' }, prefix: 'CACHE_' }],
        env: [{ name: 'CACHE_PASSWORD', valueFrom: { secretKeyRef: { name: 'cache-auth', key: 'password' } } }, { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }, ...workerEnv],
      },
    ],
  };
  return d;
}

t.test('applied in any order, the trigger reads the container\'s variables once every piece is there', async (t) => {
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'worker', { scaleTargetRef: { name: 'worker', envSourceContainerName: 'worker' }, pollingInterval: 1, triggers: [redisTrigger()] }));
  t.match(await readyMessage('worker', /not found/), /Deployment shop\/worker not found/, 'no Deployment yet');

  await kube.create(worker());
  t.match(await readyMessage('worker', /configmap/), /addressFromEnv: Deployment shop\/worker container "worker" has no variable CACHE_ADDRESS that could be read \(envFrom\[0\]: configmap shop\/cache not found\)/);

  await kube.create(configMap('cache', { ADDRESS: redis.address }));
  t.match(await readyMessage('worker', /secret/), /passwordFromEnv: Deployment shop\/worker container "worker": variable CACHE_PASSWORD: secret shop\/cache-auth not found/);

  await kube.create(secret('shop', 'cache-auth', { password: 'cache-secret' }));
  await eventually('the list length served', async () => ((await served('worker')).value === '3' ? true : undefined), 30_000);
  t.equal((await ready('worker'))?.status, 'True');
  t.notMatch(JSON.stringify(await kube.get('keda.sh/v1alpha1', 'ScaledObject', 'shop', 'worker')), /cache-secret/, 'the password is nowhere in the status');
});

t.test('a changed ConfigMap or pod template reaches the scaler without a restart', async (t) => {
  await kube.mergePatch('v1', 'ConfigMap', 'shop', 'cache', { data: { ADDRESS: '127.0.0.1:1' } });
  const failing = await eventually('the metric fails with the new address', async () => ((await served('worker')).code !== 0 ? served('worker') : undefined), 30_000);
  t.match(failing.stderr, /127\.0\.0\.1:1/, 'the ConfigMap\'s new address, named');

  // env wins over envFrom, and $(VAR) is expanded from what comes before it.
  await kube.mergePatch('v1', 'ConfigMap', 'shop', 'cache', { data: { ADDRESS: '127.0.0.1:1', HOST: redis.host } });
  await kube.apply(worker([{ name: 'CACHE_ADDRESS', value: `$(CACHE_HOST):${redis.port}` }]));
  t.equal(await eventually('served again, from the new template', async () => ((await served('worker')).value === '3' ? '3' : undefined), 30_000), '3');
  await redis.admin((c) => c.rpush('orders', 'd'));
  t.equal(await eventually('and live', async () => ((await served('worker')).value === '4' ? '4' : undefined), 30_000), '4');
});

t.test('a variable the container does not define is named; the first container is the default', async (t) => {
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'pod-ip', { scaleTargetRef: { name: 'worker', envSourceContainerName: 'worker' }, triggers: [redisTrigger({ addressFromEnv: 'POD_IP' })] }));
  t.match(await readyMessage('pod-ip', /POD_IP/), /addressFromEnv: Deployment shop\/worker container "worker" has no variable POD_IP/, 'a fieldRef is known only in a running Pod');

  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'no-container', { scaleTargetRef: { name: 'worker', envSourceContainerName: 'nope' }, triggers: [redisTrigger()] }));
  t.match(await readyMessage('no-container', /nope/), /Deployment shop\/worker has no container named "nope" \(envSourceContainerName\)/);

  // The sidecar's CACHE_ADDRESS (a closed port), and no CACHE_PASSWORD there.
  await mustApply(cp.adminKubeconfig, root, scaledObject('shop', 'first', { scaleTargetRef: { name: 'worker' }, triggers: [redisTrigger({ passwordFromEnv: '' })] }));
  const failed = await eventually('the first container\'s address used', async () => ((await served('first')).stderr.includes('127.0.0.1:1') ? served('first') : undefined), 30_000);
  t.not(failed.code, 0, 'a closed port');
});

t.test('a ScaledJob reads its Job template\'s container', async (t) => {
  await mustApply(cp.adminKubeconfig, root, {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledJob',
    metadata: { name: 'drain', namespace: 'shop' },
    spec: {
      envSourceContainerName: 'drain',
      pollingInterval: 1,
      maxReplicaCount: 10,
      jobTargetRef: {
        template: {
          spec: {
            restartPolicy: 'Never',
            containers: [
              { name: 'first', image: 'registry.invalid/none:1' },
              { name: 'drain', image: 'registry.invalid/drain:1', env: [{ name: 'CACHE_ADDRESS', value: redis.address }, { name: 'CACHE_PASSWORD', valueFrom: { secretKeyRef: { name: 'cache-auth', key: 'password' } } }] },
            ],
          },
        },
      },
      triggers: [redisTrigger()],
    },
  });
  const jobs = await eventually('a Job per list entry', async () => {
    const list = await kube.list('batch/v1', 'Job', 'shop', 'scaledjob.keda.sh/name=drain');
    return list.length === 4 ? list : undefined;
  }, 30_000);
  t.equal(jobs.length, 4);
});
