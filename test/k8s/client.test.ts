// Our Kubernetes client (src/k8s/client.ts) against a real kube-apiserver (envtest): every way it
// finds credentials (kubeconfig with a client certificate, a token, a token file, an exec plugin
// cached until its credential expires; the pod's ServiceAccount mount), failures as Kubernetes
// words them, clear refusals of what it does not do, and a deadline on every call.
import t from 'tap';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { ApiError, KubeClient } from '../../src/k8s/client.js';
import { KubeClientMetrics } from '../../src/observability/metrics.js';
import { freePort } from '../helpers/adapter.js';
import { startControlPlane } from '../helpers/envtest.js';
import { Kube, namespace } from '../helpers/kube.js';

const cp = await startControlPlane(t, { controllerManager: false });
const admin = new Kube(cp.adminKubeconfig);
await admin.create(namespace('client'));
await admin.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'robot', namespace: 'client' } });
const robotToken = (JSON.parse(await readFile(await cp.serviceAccountKubeconfig('client', 'robot'), 'utf8')) as { users: { user: { token: string } }[] }).users[0]!.user.token;
const dir = t.testdir();

type Whoami = { status: { userInfo: { username: string } } };
const whoami = (c: KubeClient) => c.post<Whoami>('/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }).then((r) => r.status.userInfo.username);

/** A kubeconfig for the envtest server with this user entry, written as YAML-compatible JSON. */
async function kubeconfig(name: string, user: Record<string, unknown>, cluster: Record<string, unknown> = {}): Promise<string> {
  const file = join(dir, `${name}.kubeconfig`);
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: cp.url, 'certificate-authority-data': Buffer.from(cp.caPem).toString('base64'), ...cluster } }],
      users: [{ name: 'u', user }],
      contexts: [{ name: name, context: { cluster: 'c', user: 'u' } }],
      'current-context': name,
    }),
  );
  return file;
}

const client = (file: string) => {
  const c = KubeClient.fromKubeconfig(file);
  t.teardown(() => c.close());
  return c;
};

t.test('credentials from a kubeconfig: client certificate (files relative to the kubeconfig), token, token file', async (t) => {
  const alice = await cp.clientCertificate('alice', ['team-a']);
  await mkdir(join(dir, 'certs'), { recursive: true });
  await writeFile(join(dir, 'certs', 'alice.crt'), alice.cert);
  await writeFile(join(dir, 'certs', 'alice.key'), alice.key);
  await writeFile(join(dir, 'ca.crt'), cp.caPem);
  const byFiles = await kubeconfig('files', { 'client-certificate': 'certs/alice.crt', 'client-key': 'certs/alice.key' }, { 'certificate-authority': 'ca.crt', 'certificate-authority-data': undefined });
  t.equal(await whoami(client(byFiles)), 'alice', 'client certificate and CA from files');
  t.equal(await whoami(client(await kubeconfig('token', { token: robotToken }))), 'system:serviceaccount:client:robot', 'bearer token');
  await writeFile(join(dir, 'token'), `${robotToken}\n`);
  t.equal(await whoami(client(await kubeconfig('token-file', { tokenFile: 'token' }))), 'system:serviceaccount:client:robot', 'token file');
});

t.test('in a pod: the ServiceAccount mount and KUBERNETES_SERVICE_HOST/PORT', async (t) => {
  const mount = join(dir, 'serviceaccount');
  await mkdir(mount);
  await writeFile(join(mount, 'token'), robotToken);
  await writeFile(join(mount, 'ca.crt'), cp.caPem);
  const c = KubeClient.inCluster({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(cp.port) }, mount);
  t.teardown(() => c.close());
  t.equal(await whoami(c), 'system:serviceaccount:client:robot');
  t.equal(KubeClient.load('', {}), undefined, 'no kubeconfig and not in a pod: no cluster');
});

t.test('an exec credential plugin: run once, cached until its credential expires', async (t) => {
  const counter = join(dir, 'exec-runs');
  const plugin = join(dir, 'plugin.sh');
  const write = async (expiresInSeconds: number) =>
    writeFile(
      plugin,
      `#!/bin/sh\necho run >> "${counter}"\ntest -n "$KUBERNETES_EXEC_INFO" || exit 3\n` +
        `printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"${robotToken}","expirationTimestamp":"%s"}}' "$(date -u -d "+${expiresInSeconds} seconds" +%Y-%m-%dT%H:%M:%SZ)"\n`,
    );
  await write(3600);
  await chmod(plugin, 0o755);
  const c = client(await kubeconfig('exec', { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, interactionMode: 'Never' } }));
  t.equal(await whoami(c), 'system:serviceaccount:client:robot');
  await Promise.all([whoami(c), whoami(c), whoami(c)]);
  t.equal((await readFile(counter, 'utf8')).trim().split('\n').length, 1, 'one run for four calls');
  // A credential about to expire is asked for again.
  const short = client(await kubeconfig('exec-short', { exec: { command: plugin } }));
  await write(5);
  await whoami(short);
  await whoami(short);
  t.equal((await readFile(counter, 'utf8')).trim().split('\n').length, 3, 'within 10 s of its expiry a credential is renewed');

  const broken = client(await kubeconfig('exec-broken', { exec: { command: join(dir, 'no-such-plugin') } }));
  await t.rejects(whoami(broken), /exec credential plugin .*no-such-plugin failed/);
});

t.test('failures in Kubernetes\' words; what is not supported is refused clearly', async (t) => {
  const c = client(cp.adminKubeconfig);
  const missing = await c.get('/api/v1/namespaces/client/configmaps/nope').catch((e: unknown) => e);
  t.ok(missing instanceof ApiError);
  t.match(missing, { code: 404, body: { kind: 'Status', reason: 'NotFound', message: 'configmaps "nope" not found' } });
  t.match((missing as Error).message, /^GET \/api\/v1\/namespaces\/client\/configmaps\/nope: HTTP 404: configmaps "nope" not found$/);
  const nobody = client(await kubeconfig('anonymous', {}));
  await t.rejects(nobody.get('/api/v1/namespaces'), { code: 403 }, 'no credentials: anonymous, and RBAC says no');

  const legacy = await kubeconfig('legacy', { 'auth-provider': { name: 'gcp' } });
  t.throws(() => KubeClient.fromKubeconfig(legacy), /the auth-provider "gcp" plugin is not supported; use its exec credential plugin instead/);
  const proxied = await kubeconfig('proxied', { token: robotToken }, { 'proxy-url': 'http://proxy.example:3128' });
  t.throws(() => KubeClient.fromKubeconfig(proxied), /proxy-url is not supported; reach https:\/\/127\.0\.0\.1:\d+ directly/);
  const noContext = join(dir, 'empty.kubeconfig');
  await writeFile(noContext, 'apiVersion: v1\nkind: Config\n');
  t.throws(() => KubeClient.fromKubeconfig(noContext), /kubeconfig .*empty\.kubeconfig: no current-context/);

  const wrongCa = client(await kubeconfig('wrong-ca', { token: robotToken }, { 'certificate-authority-data': Buffer.from((await cp.clientCertificate('x')).cert).toString('base64') }));
  await t.rejects(wrongCa.get('/version'), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify|self[- ]signed|certificate/i, 'the server is verified against the kubeconfig CA');
});

t.test('every call has a deadline', async (t) => {
  // A server that accepts connections and never answers.
  const sockets: Socket[] = [];
  const silent = createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => silent.close(() => r()));
  });
  const file = join(dir, 'silent.kubeconfig');
  await writeFile(file, JSON.stringify({ clusters: [{ name: 'c', cluster: { server: `http://127.0.0.1:${(silent.address() as { port: number }).port}` } }], users: [{ name: 'u', user: {} }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x' }));
  const c = client(file);
  const started = Date.now();
  await t.rejects(c.get('/api', { timeoutMs: 300 }), /^GET \/api: no answer from kube-apiserver within 300 ms$/);
  t.ok(Date.now() - started < 2000);
});

t.test('every call is counted in client-go\'s metric names: code, method, host, and <error> when no answer came', async (t) => {
  const registry = new Registry();
  const metrics = new KubeClientMetrics(registry);
  const c = client(cp.adminKubeconfig);
  metrics.observe(c);
  await c.get('/version');
  await c.get('/version');
  await t.rejects(c.get('/api/v1/namespaces/client/configmaps/none'), { code: 404 });
  const watch = await c.stream('/api/v1/namespaces/client/configmaps', { query: { watch: 1, timeoutSeconds: 1 } });
  for await (const _ of watch) break;
  const host = new URL(cp.url).host;
  const count = async (labels: Record<string, string>) => (await registry.getSingleMetric('rest_client_requests_total')!.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
  t.equal(await count({ code: '200', method: 'GET', host }), 3, 'two answers and the watch');
  t.equal(await count({ code: '404', method: 'GET', host }), 1);

  // Nothing listens on that port any more.
  const port = await freePort();
  const refused = client(await kubeconfig('refused', { token: robotToken }, { server: `https://127.0.0.1:${port}` }));
  metrics.observe(refused);
  await t.rejects(refused.get('/version'));
  t.equal(await count({ code: '<error>', method: 'GET', host: `127.0.0.1:${port}` }), 1);
  const durations = (await registry.getSingleMetric('rest_client_request_duration_seconds')!.get()).values.find((v) => (v as { metricName?: string }).metricName === 'rest_client_request_duration_seconds_count' && v.labels.host === host);
  t.equal(durations?.value, 4, 'every answer timed');
});
