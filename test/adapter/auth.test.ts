// Who the adapter thinks the caller is, and what it lets them do, with flag-configured trust.
import t from 'tap';
import { createTestPki } from '../helpers/pki.js';
import { pkiFlags, startTestAdapter } from '../helpers/adapter.js';
import { get } from '../helpers/https.js';

const GV = '/apis/external.metrics.k8s.io/v1beta1';
const METRIC = `${GV}/namespaces/default/demo-sine`;

const pki = await createTestPki(t.testdir());
const adapter = await startTestAdapter(pkiFlags(pki));
t.teardown(() => adapter.shutdown());
const call = (client: Parameters<typeof get>[0]['client'], path: string, headers: [string, string][] = []) =>
  get({ port: adapter.port, path, ca: pki.ca.cert, client, headers });

t.test('x509: system:masters via O is allowed everything', async (t) => {
  const res = await call(pki.admin, METRIC);
  t.equal(res.status, 200);
  t.equal(res.json<{ items: unknown[] }>().items.length, 1);
});

t.test('x509: an unprivileged user gets the Kubernetes Forbidden message, and nothing else', async (t) => {
  const res = await call(pki.user, METRIC);
  t.equal(res.status, 403);
  t.same(res.json(), {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: 'demo-sine.external.metrics.k8s.io is forbidden: User "user" cannot list resource "demo-sine" in API group "external.metrics.k8s.io" in the namespace "default"',
    reason: 'Forbidden', details: { group: 'external.metrics.k8s.io', kind: 'demo-sine' }, code: 403,
  });
  const disc = await call(pki.user, GV);
  t.equal(disc.status, 403);
  t.equal(disc.json().message, `forbidden: User "user" cannot get path "${GV}"`);
});

t.test('always-allowed paths are open to any authenticated client', async (t) => {
  t.equal((await call(pki.user, '/healthz')).status, 200);
  t.equal((await call(pki.user, '/readyz')).status, 200);
  t.equal((await call(pki.user, '/livez')).status, 200);
  t.equal((await call(pki.user, '/version')).status, 403, '/version is not in the default list');
});

t.test('front-proxy: user and every repeated group header are read', async (t) => {
  const res = await call(pki.frontProxyClient, METRIC, [
    ['X-Remote-User', 'system:serviceaccount:kube-system:horizontal-pod-autoscaler'],
    ['X-Remote-Group', 'system:serviceaccounts'],
    ['X-Remote-Group', 'system:masters'],
  ]);
  t.equal(res.status, 200, 'allowed through the second group header');
  const denied = await call(pki.frontProxyClient, METRIC, [
    ['X-Remote-User', 'alice'],
    ['X-Remote-Group', 'system:masters, devs'],
  ]);
  t.equal(denied.status, 403, 'a comma inside one header is one group name, not two');
  t.match(denied.json().message, /User "alice" cannot list/);
});

t.test('front-proxy: header names are case-insensitive and extras are read', async (t) => {
  const res = await call(pki.frontProxyClient, METRIC, [['x-remote-user', 'bob'], ['x-remote-group', 'system:masters'], ['X-Remote-Extra-Scopes%2Fa', 'x']]);
  t.equal(res.status, 200);
});

t.test('front-proxy without a user header is not authenticated', async (t) => {
  const res = await call(pki.frontProxyClient, METRIC, [['X-Remote-Group', 'system:masters']]);
  t.equal(res.status, 401);
  t.same(res.json(), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
});

t.test('front-proxy CA certificate with a CN outside --requestheader-allowed-names is 401', async (t) => {
  const res = await call(pki.frontProxyIntruder, METRIC, [['X-Remote-User', 'admin'], ['X-Remote-Group', 'system:masters']]);
  t.equal(res.status, 401);
  t.notMatch(res.text, /items/);
});

t.test('identity headers from a non-front-proxy client are ignored', async (t) => {
  const res = await call(pki.user, METRIC, [['X-Remote-User', 'admin'], ['X-Remote-Group', 'system:masters']]);
  t.equal(res.status, 403);
  t.match(res.json().message, /User "user" cannot list/, 'judged as the certificate user, not the spoofed one');
});

t.test('a bearer token is not accepted alongside a certificate-less request (request mode)', async (t) => {
  const requestMode = await startTestAdapter([...pkiFlags(pki), '--client-cert-mode=request']);
  t.teardown(() => requestMode.shutdown());
  const anon = await get({ port: requestMode.port, path: METRIC, ca: pki.ca.cert });
  t.equal(anon.status, 401, 'no certificate, no token');
  const token = await get({ port: requestMode.port, path: METRIC, ca: pki.ca.cert, headers: [['Authorization', 'Bearer abc.def.ghi']] });
  t.equal(token.status, 401, 'token review is not configured: refused, never anonymous');
  const foreign = await get({ port: requestMode.port, path: METRIC, ca: pki.ca.cert, client: pki.foreignAdmin });
  t.equal(foreign.status, 401, 'a presented but unverifiable certificate is 401');
  const good = await get({ port: requestMode.port, path: METRIC, ca: pki.ca.cert, client: pki.admin });
  t.equal(good.status, 200);
  t.notOk(requestMode.logs.some((l) => JSON.stringify(l).includes('abc.def.ghi')), 'the token never reaches the log');
});

t.test('--authorization-always-allow-groups is honoured', async (t) => {
  const custom = await startTestAdapter([...pkiFlags(pki), '--authorization-always-allow-groups=hpa-readers']);
  t.teardown(() => custom.shutdown());
  const viaGroup = await get({ port: custom.port, path: METRIC, ca: pki.ca.cert, client: pki.frontProxyClient, headers: [['X-Remote-User', 'hpa'], ['X-Remote-Group', 'hpa-readers']] });
  t.equal(viaGroup.status, 200);
  const admin = await get({ port: custom.port, path: METRIC, ca: pki.ca.cert, client: pki.admin });
  t.equal(admin.status, 403, 'system:masters is no longer special when the flag replaces the default');
});
