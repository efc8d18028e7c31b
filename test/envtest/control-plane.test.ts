// The envtest helper itself (test/helpers/envtest.ts): a real control plane that starts on free
// ports, hands out identities that RBAC judges, audits writes and reviews, restarts kube-apiserver
// on the same port and etcd, and leaves no process (and no data) behind, even when the test
// process is killed.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from '../helpers/envtest.js';
import { Kube, namespace } from '../helpers/kube.js';
import { eventually } from '../helpers/loop.js';
import { kubectl } from '../helpers/tools.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const pidsIn = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.pid')).map((f) => Number(readFileSync(join(dir, f), 'utf8')));

const cp = await startControlPlane(t);
const { etcdMs, apiServerMs, controllerManagerMs, totalMs } = cp.startup;
t.comment(`start-up: etcd ${Math.round(etcdMs)} ms, kube-apiserver ${Math.round(apiServerMs)} ms, kube-controller-manager ${Math.round(controllerManagerMs)} ms, total ${Math.round(totalMs)} ms`);
const admin = new Kube(cp.adminKubeconfig);

t.test('kube-apiserver answers on loopback with RBAC, and the controllers run', async (t) => {
  t.match(cp.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const r = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, 'get', 'namespaces', '-o', 'name']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /namespace\/kube-system/);
  t.ok(await admin.get('v1', 'ServiceAccount', 'default', 'default'), 'the ServiceAccount controller made default/default');
  t.ok(await admin.get('v1', 'ConfigMap', 'kube-system', 'extension-apiserver-authentication'), 'the front-proxy settings are published for aggregated servers');
});

t.test('identities: a certificate user is judged by RBAC, a ServiceAccount token authenticates', async (t) => {
  const alice = new Kube(await cp.kubeconfigFor('alice', ['team-a']));
  const denied = await alice.list('v1', 'Secret', 'default').catch((e: { code?: number; message: string }) => e);
  t.match(denied, { code: 403, message: /User "alice" cannot list resource "secrets"/ });
  await admin.create(namespace('envtest-check'));
  await admin.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'robot', namespace: 'envtest-check' } });
  const robot = await kubectl([`--kubeconfig=${await cp.serviceAccountKubeconfig('envtest-check', 'robot')}`, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  t.equal(robot.stdout, 'system:serviceaccount:envtest-check:robot', robot.stderr);
});

t.test('the audit log records writes and reviews', async (t) => {
  await admin.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'audited', namespace: 'envtest-check' }, data: {} });
  const events = cp.auditEvents();
  t.ok(events.some((e) => e.verb === 'create' && e.objectRef?.resource === 'configmaps' && e.objectRef.name === 'audited' && e.user.username === 'admin'));
  t.ok(events.some((e) => e.objectRef?.resource === 'serviceaccounts' && e.objectRef.subresource === 'token' && e.responseObject?.status?.token), 'TokenRequests with their answer');
});

t.test('kube-apiserver stops and starts again on the same port and etcd, data kept', async (t) => {
  await cp.stopApiServer();
  const down = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, 'get', 'ns', '--request-timeout=2s']);
  t.not(down.code, 0, 'refused while down');
  await cp.startApiServer();
  t.ok(await admin.get('v1', 'ConfigMap', 'envtest-check', 'audited'), 'the ConfigMap written before is still there');
});

t.test('stop() ends every process and removes the data', async (t) => {
  const other = await startControlPlane({ teardown: () => undefined }, { controllerManager: false });
  const pids = pidsIn(other.dir);
  t.equal(pids.length, 2, 'etcd and kube-apiserver');
  t.ok(pids.every(alive));
  await other.stop();
  t.ok(pids.every((p) => !alive(p)), 'no process left');
  t.notOk(existsSync(other.dir), 'no data left');
});

t.test('a test process killed with SIGKILL leaves nothing behind', async (t) => {
  const fixture = fileURLToPath(new URL('./fixtures/start-and-hang.ts', import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, fixture], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`the fixture exited (${code}) before starting`)));
  });
  const { dir } = JSON.parse(line) as { dir: string };
  const pids = pidsIn(dir);
  t.equal(pids.length, 2);
  child.kill('SIGKILL');
  await eventually('the processes gone', async () => (pids.every((p) => !alive(p)) ? true : undefined), 15_000);
  await eventually('the data gone', async () => (existsSync(dir) ? undefined : true), 10_000);
  t.pass('the watchdog killed etcd and kube-apiserver and removed their data');
});

t.test('KUBEBUILDER_ASSETS pointing at a directory without the binaries is one clear line', async (t) => {
  const saved = process.env.KUBEBUILDER_ASSETS;
  process.env.KUBEBUILDER_ASSETS = t.testdir();
  t.teardown(() => (saved === undefined ? delete process.env.KUBEBUILDER_ASSETS : (process.env.KUBEBUILDER_ASSETS = saved)));
  await t.rejects(startControlPlane(t), /^envtest: KUBEBUILDER_ASSETS=.* has no etcd, kube-apiserver, kube-controller-manager; point it at a directory/);
});
