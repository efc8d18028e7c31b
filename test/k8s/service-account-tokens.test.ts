// ServiceAccountTokens against a real control plane (envtest: etcd and kube-apiserver v1.28, RBAC
// on): TokenRequests made as the operator's own ServiceAccount (keda/keda-operator, with deploy/'s
// RBAC and the grant of deploy/components/service-account-tokens), with the requested audiences and
// lifetime; every token checked by a real TokenReview; the lifetime the API server granted; the
// cache and the coalescing of identical requests (counted in kube-apiserver's audit log); a real
// RBAC denial, a 403 that is not one (a terminating namespace), a missing service account or
// namespace, the operator's own credentials refused; bad input refused before any request; token
// files; and no token in any log line, error message or serialisation. What a real kube-apiserver
// cannot be made to do on demand (lifetimes under its 10-minute minimum, so renewal and expiry;
// a skewed clock; 5xx and timeouts) is in service-account-tokens-faults.test.ts.
import t, { type Test } from 'tap';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { KubeClient } from '../../src/k8s/client.js';
import { pino } from 'pino';
import { SERVICE_ACCOUNT_ISSUER, startControlPlane, type AuditEvent } from '../helpers/envtest.js';
import { installDeploy, mustApply, tokenCreatorRbac } from '../helpers/keda-cluster.js';
import { Kube, namespace } from '../helpers/kube.js';
import { eventually } from '../helpers/loop.js';
import {
  ServiceAccountNotFoundError,
  ServiceAccountTokens,
  TokenRequestError,
  TokenRequestForbiddenError,
  type BoundToken,
  type ServiceAccountTokensOptions,
  type TokenRequestOutcome,
} from '../../src/k8s/service-account-tokens.js';

const OPERATOR = 'system:serviceaccount:keda:keda-operator';
// The component's own example name and namespace; other-reader and ghost are added to its
// ClusterRole's resourceNames (ghost is never created), not-granted is not.
const NS = 'team-a';
const SA = 'keda-metrics-reader';
const TOKEN_CREATOR = 'keda-ts-serviceaccount-token-creator';
// kube-apiserver caps every granted lifetime at this (--service-account-max-token-expiration).
const MAX_GRANTED_SECONDS = 3600;

const root = t.testdir();
// No kube-controller-manager: nothing here needs a controller, and a namespace then stays
// Terminating once deleted (no namespace controller to finish it).
const cp = await startControlPlane(t, { controllerManager: false, apiServerFlags: [`--service-account-max-token-expiration=${MAX_GRANTED_SECONDS}s`] });
t.comment(`control plane up in ${Math.round(cp.startup.totalMs)} ms (etcd ${Math.round(cp.startup.etcdMs)}, kube-apiserver ${Math.round(cp.startup.apiServerMs)})`);
const admin = new Kube(cp.adminKubeconfig);
await installDeploy(cp, root, ['rbac']);
for (const ns of [NS, 'doomed']) await admin.create(namespace(ns));
for (const [ns, name] of [[NS, SA], [NS, 'other-reader'], [NS, 'not-granted'], ['doomed', SA]] as const) {
  await admin.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } });
}
const granted = [SA, 'other-reader', 'ghost'];
await mustApply(cp.adminKubeconfig, root, ...(await tokenCreatorRbac(granted, [NS, 'doomed'])));
const operatorKubeconfig = await cp.serviceAccountKubeconfig('keda', 'keda-operator');

interface Ctx {
  tokens: ServiceAccountTokens;
  /** Every log line written, raw. */
  lines: string[];
  metrics: { hits: number; requests: [TokenRequestOutcome, string][]; expired: number };
  kc: KubeClient;
}

function setup(t: Test, opts: ServiceAccountTokensOptions = {}, kubeconfig = operatorKubeconfig): Ctx {
  const kc = KubeClient.fromKubeconfig(kubeconfig);
  t.teardown(() => kc.close());
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
  const metrics: Ctx['metrics'] = { hits: 0, requests: [], expired: 0 };
  const tokens = new ServiceAccountTokens(kc, {
    log,
    metrics: {
      cacheHit: () => metrics.hits++,
      requestFinished: (outcome, trigger) => metrics.requests.push([outcome, trigger]),
      tokenExpired: () => metrics.expired++,
    },
    ...opts,
  });
  t.teardown(() => tokens.close());
  return { tokens, lines, metrics, kc };
}

/** Where the audit log is now: tokenRequests(mark) then sees only what came after. */
const auditMark = () => cp.auditEvents().length;

/** TokenRequests (create on serviceaccounts/token) recorded since `mark`, optionally for one service account. */
function tokenRequests(mark: number, ns?: string, name?: string): AuditEvent[] {
  return cp
    .auditEvents()
    .slice(mark)
    .filter((e) => e.verb === 'create' && e.objectRef?.resource === 'serviceaccounts' && e.objectRef.subresource === 'token')
    .filter((e) => (ns === undefined || e.objectRef!.namespace === ns) && (name === undefined || e.objectRef!.name === name));
}

/** Every token kube-apiserver issued to the operator, from the audit log (the whole response is logged). */
const issuedToOperator = (): string[] =>
  tokenRequests(0)
    .filter((e) => e.user.username === OPERATOR && e.responseStatus?.code === 201)
    .map((e) => e.responseObject?.status?.token as string);

/** A real TokenReview, as admin (kube-rbac-proxy's question): who is this token, for these audiences? */
async function tokenReview(token: string, audiences?: string[]) {
  const review = await admin.request<{ status: { authenticated?: boolean; user?: { username: string; groups: string[] }; audiences?: string[]; error?: string } }>(
    'POST',
    '/apis/authentication.k8s.io/v1/tokenreviews',
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(audiences ? { audiences } : {}) } },
  );
  return review!.status;
}

/** The claims of a JWT (no verification: the TokenReview does that). */
const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { aud: string[]; exp: number; iat: number; sub: string };

/** No token kube-apiserver issued to the operator appears in any log line or in the given errors. */
function assertNoLeak(t: Test, ctx: Ctx, errors: unknown[] = []): void {
  const texts = [...ctx.lines, ...errors.map((e) => `${(e as Error).message}\n${JSON.stringify(e)}\n${inspect(e)}`)];
  const issued = issuedToOperator();
  t.ok(issued.length > 0, 'the audit log shows the tokens issued');
  const leaked = issued.filter((tok) => texts.some((l) => l.includes(tok)));
  t.same(leaked, [], 'no token in any log line or error');
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

t.test('a token with the requested audiences and lifetime, as the operator, accepted by a real TokenReview, then from the cache', async (t) => {
  const ctx = setup(t, { audiences: ['api://AzureADTokenExchange'] });
  const mark = auditMark();
  const before = Date.now();
  const bt = await ctx.tokens.get(NS, SA, { audiences: ['vault'], expirationSeconds: 1800 });

  const [req] = tokenRequests(mark);
  t.equal(tokenRequests(mark).length, 1);
  t.equal(req!.user.username, OPERATOR, 'asked as the operator');
  t.equal(req!.responseStatus?.code, 201);
  t.match(req!.objectRef, { namespace: NS, name: SA });
  t.match(req!.requestObject, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['vault'], expirationSeconds: 1800 } });
  t.equal(bt.token, req!.responseObject?.status?.token, 'the token the API server issued');
  t.same(bt.audiences, ['vault']);
  t.equal(bt.namespace, NS);
  t.equal(bt.serviceAccountName, SA);
  const lifetime = bt.expiresAt.getTime() - before;
  t.ok(lifetime > 1_795_000 && lifetime <= 1_800_000, `expires after the granted 1800 s (${lifetime} ms)`);
  const refreshIn = bt.refreshAt.getTime() - before;
  t.ok(refreshIn > 0.8 * 1_795_000 && refreshIn <= 0.8 * 1_800_000, `renewed at 80 % (${refreshIn} ms)`);
  t.equal(bt.tokenFile, undefined, 'no file without tokenDir');
  t.equal(claims(bt.token).exp - claims(bt.token).iat, 1800, 'the JWT says 1800 s too');

  // What a resource server in front of Prometheus, Vault... does with it: a TokenReview.
  const review = await tokenReview(bt.token, ['vault']);
  t.equal(review.authenticated, true, `authenticated (${review.error ?? ''})`);
  t.equal(review.user?.username, `system:serviceaccount:${NS}:${SA}`, 'as the workload\'s service account, not the operator');
  t.ok(review.user?.groups.includes(`system:serviceaccounts:${NS}`));
  t.same(review.audiences, ['vault']);
  const elsewhere = await tokenReview(bt.token);
  t.notOk(elsewhere.authenticated, 'a token for "vault" is no token for the API server itself');
  t.match(elsewhere.error, /audience/);

  const again = await ctx.tokens.get(NS, SA, { audiences: ['vault'], expirationSeconds: 1800 });
  t.equal(again.token, bt.token, 'cache hit');
  t.equal(tokenRequests(mark).length, 1, 'no second request');
  t.equal(ctx.metrics.hits, 1);

  // The instance's default audiences and lifetime; another audience is another token.
  const dflt = await ctx.tokens.get(NS, SA);
  t.match(tokenRequests(mark)[1]!.requestObject, { spec: { audiences: ['api://AzureADTokenExchange'], expirationSeconds: 3600 } });
  t.not(dflt.token, bt.token);
  t.same(dflt.audiences, ['api://AzureADTokenExchange']);
  t.equal(tokenRequests(mark).length, 2);
  t.same((await tokenReview(dflt.token, ['api://AzureADTokenExchange'])).audiences, ['api://AzureADTokenExchange']);

  // No audiences: the API server's own (its --api-audiences), as it reports them.
  const apiAud = await ctx.tokens.get(NS, SA, { audiences: [] });
  t.same(tokenRequests(mark)[2]!.requestObject?.spec?.audiences ?? [], []);
  t.same(apiAud.audiences, [SERVICE_ACCOUNT_ISSUER]);
  const asApi = await tokenReview(apiAud.token);
  t.equal(asApi.authenticated, true, 'valid for the API server');
  t.equal(asApi.user?.username, `system:serviceaccount:${NS}:${SA}`);
  t.same(ctx.metrics.requests, [['ok', 'get'], ['ok', 'get'], ['ok', 'get']]);
  assertNoLeak(t, ctx);
});

t.test('the lifetime is the one the API server granted: capped by its maximum, never under its 10-minute minimum', async (t) => {
  // Under 10 minutes the real API server grants nothing: 422. (We refuse it before asking: see "bad input".)
  const tooShort = await rejection(
    admin.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${SA}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 599 } }),
  );
  t.match(tooShort.message, /HTTP 422: .*spec\.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes/);

  const ctx = setup(t);
  const mark = auditMark();
  // Two hours asked, one granted (--service-account-max-token-expiration): the granted one counts.
  const before = Date.now();
  const capped = await ctx.tokens.get(NS, SA, { expirationSeconds: 7200 });
  const [req] = tokenRequests(mark, NS, SA);
  t.equal(req!.requestObject?.spec?.expirationSeconds, 7200, 'asked for 2 h');
  t.equal(req!.responseObject?.spec?.expirationSeconds, MAX_GRANTED_SECONDS, 'granted 1 h');
  const lifetime = capped.expiresAt.getTime() - before;
  t.ok(lifetime > 3_595_000 && lifetime <= 3_600_000, `expires after the granted hour, not the two asked for (${lifetime} ms)`);
  t.ok(capped.refreshAt.getTime() - before <= 0.8 * 3_600_000, 'renewed at 80 % of the granted hour');
  t.equal(claims(capped.token).exp - claims(capped.token).iat, MAX_GRANTED_SECONDS);

  // The minimum, exactly as asked.
  const shortest = await ctx.tokens.get(NS, SA, { expirationSeconds: 600 });
  const left = shortest.expiresAt.getTime() - Date.now();
  t.ok(left > 595_000 && left <= 600_000, `10 min granted for 10 min (${left} ms)`);
  t.ok(shortest.refreshAt < shortest.expiresAt);
});

t.test('concurrent identical requests are one API call', async (t) => {
  const ctx = setup(t);
  const mark = auditMark();
  const all = await Promise.all(Array.from({ length: 20 }, () => ctx.tokens.get(NS, SA)));
  t.equal(tokenRequests(mark).length, 1, 'one TokenRequest in kube-apiserver\'s audit log');
  t.equal(new Set(all.map((b) => b.token)).size, 1, 'everyone got the same token');
  t.equal(all[0]!.token, tokenRequests(mark)[0]!.responseObject?.status?.token);
  // Different service accounts are not coalesced.
  const [a, b] = await Promise.all([ctx.tokens.get(NS, SA, { expirationSeconds: 3000 }), ctx.tokens.get(NS, 'other-reader', { expirationSeconds: 3000 })]);
  t.not(a.token, b.token);
  t.equal((await tokenReview(b.token)).user?.username, `system:serviceaccount:${NS}:other-reader`);
  t.equal(tokenRequests(mark).length, 3);
  t.same(tokenRequests(mark).map((e) => e.user.username), [OPERATOR, OPERATOR, OPERATOR]);
});

t.test('no RBAC for the service account: a TokenRequestForbiddenError naming the permission, no token', async (t) => {
  const ctx = setup(t, { retryInitialDelayMs: 1000, retryMaxDelayMs: 1000 });
  const mark = auditMark();

  const err = await rejection(ctx.tokens.get(NS, 'not-granted'));
  t.type(err, TokenRequestForbiddenError);
  t.type(err, TokenRequestError);
  const f = err as TokenRequestForbiddenError;
  t.equal(f.statusCode, 403);
  t.equal(f.user, OPERATOR, 'the user, as the real RBAC denial names it');
  t.same(f.permission, { verb: 'create', apiGroup: '', resource: 'serviceaccounts/token', resourceName: 'not-granted', namespace: NS });
  t.equal(
    f.message,
    `the operator's user "${OPERATOR}" may not request a token for service account ${NS}/not-granted: ` +
      `it needs "create" on "serviceaccounts/token" (API group "") for resourceName "not-granted" in namespace "${NS}"; ` +
      `grant it with deploy/components/service-account-tokens (add "not-granted" to the ClusterRole's resourceNames and a RoleBinding in namespace "${NS}")`,
  );
  const denied = tokenRequests(mark, NS, 'not-granted');
  t.same(
    denied.map((e) => [e.user.username, e.responseStatus?.code]),
    [[OPERATOR, 403]],
    'kube-apiserver refused it',
  );
  t.equal(denied[0]!.responseObject?.status?.token, undefined, 'no token minted');
  t.same(ctx.metrics.requests, [['forbidden', 'get']]);

  // Within the backoff the same answer comes without asking again.
  const again = await rejection(ctx.tokens.get(NS, 'not-granted'));
  t.type(again, TokenRequestForbiddenError);
  t.equal(tokenRequests(mark, NS, 'not-granted').length, 1);

  // A permitted service account works meanwhile; once granted (the name added to the component's
  // ClusterRole, as its README says), not-granted too.
  t.ok((await ctx.tokens.get(NS, 'other-reader')).token);
  const [role] = await tokenCreatorRbac([...granted, 'not-granted'], []);
  await admin.mergePatch('rbac.authorization.k8s.io/v1', 'ClusterRole', undefined, TOKEN_CREATOR, { rules: role!.rules });
  t.teardown(async () => {
    const [back] = await tokenCreatorRbac(granted, []);
    await admin.mergePatch('rbac.authorization.k8s.io/v1', 'ClusterRole', undefined, TOKEN_CREATOR, { rules: back!.rules });
  });
  const bt = await eventually('granted', () => ctx.tokens.get(NS, 'not-granted').catch(() => undefined), 10_000);
  const minted = tokenRequests(mark, NS, 'not-granted').filter((e) => e.responseStatus?.code === 201);
  t.equal(minted.length, 1);
  t.equal(bt.token, minted[0]!.responseObject?.status?.token);
  t.equal((await tokenReview(bt.token)).user?.username, `system:serviceaccount:${NS}:not-granted`);
  assertNoLeak(t, ctx, [err, again]);
});

t.test('a 403 that is not an RBAC denial keeps the API server message', async (t) => {
  // A namespace being deleted: the operator may create tokens there (the component's RoleBinding,
  // held by a finalizer so that it outlives the namespace's other content), but the API server's
  // NamespaceLifecycle admission refuses anything new in it.
  await admin.mergePatch('rbac.authorization.k8s.io/v1', 'RoleBinding', 'doomed', TOKEN_CREATOR, { metadata: { finalizers: ['test.keda-ts/hold'] } });
  await admin.delete('v1', 'Namespace', undefined, 'doomed');
  await eventually('doomed Terminating', async () => ((await admin.get('v1', 'Namespace', undefined, 'doomed'))?.status?.phase === 'Terminating' ? true : undefined));
  const ctx = setup(t);
  const mark = auditMark();
  const err = await rejection(ctx.tokens.get('doomed', SA));
  t.type(err, TokenRequestForbiddenError);
  t.match(
    err.message,
    /serviceaccounts\/token.*\(API server: serviceaccounts "keda-metrics-reader" is forbidden: unable to create new content in namespace doomed because it is being terminated\)$/,
  );
  t.equal((err as TokenRequestForbiddenError).user, undefined, 'no user named: not an RBAC denial');
  t.same(tokenRequests(mark).map((e) => [e.user.username, e.responseStatus?.code]), [[OPERATOR, 403]]);
});

t.test('a missing service account is a 404 message; a missing namespace too, for whoever may ask there', async (t) => {
  const ctx = setup(t);
  // ghost is in the ClusterRole's resourceNames but does not exist.
  const err = await rejection(ctx.tokens.get(NS, 'ghost'));
  t.type(err, ServiceAccountNotFoundError);
  t.equal(err.message, `service account ${NS}/ghost not found`);
  t.equal((err as ServiceAccountNotFoundError).statusCode, 404);
  t.same(ctx.metrics.requests, [['not_found', 'get']]);

  // The operator is bound per namespace (RoleBinding), and no RoleBinding can exist in a namespace
  // that does not: there, the real answer to the operator is RBAC's 403.
  const noNs = await rejection(ctx.tokens.get('nowhere', SA));
  t.type(noNs, TokenRequestForbiddenError);
  t.equal((noNs as TokenRequestForbiddenError).user, OPERATOR);

  // Granted in every namespace (a test user with a ClusterRoleBinding, which the component must
  // never get), the missing namespace is a 404 like a missing service account.
  await admin.create({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'test-cluster-token-minter' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: TOKEN_CREATOR },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'cluster-token-minter' }],
  });
  const minter = setup(t, {}, await cp.kubeconfigFor('cluster-token-minter'));
  const missing = await eventually('the ClusterRoleBinding in effect', () => rejection(minter.tokens.get('nowhere', SA)).then((e) => (e instanceof ServiceAccountNotFoundError ? e : undefined)));
  t.equal(missing.message, `service account nowhere/${SA} not found`);
  t.equal(missing.statusCode, 404);
});

t.test('the operator\'s own credentials refused: a 401 message', async (t) => {
  const kc = JSON.parse(await readFile(operatorKubeconfig, 'utf8')) as { users: { user: { token: string } }[] };
  kc.users[0]!.user.token = 'not-a-known-token';
  const file = join(t.testdir(), 'stranger.kubeconfig');
  await writeFile(file, JSON.stringify(kc));
  const stranger = setup(t, {}, file);
  const unauthorized = await rejection(stranger.tokens.get(NS, SA));
  t.type(unauthorized, TokenRequestError);
  t.equal(unauthorized.message, `could not request a token for service account ${NS}/${SA}: the API server rejected the operator's own credentials (HTTP 401)`);
  t.equal((unauthorized as TokenRequestError).statusCode, 401);
});

t.test('bad input is refused before any request', async (t) => {
  const ctx = setup(t);
  const mark = auditMark();
  t.throws(() => new ServiceAccountTokens(ctx.kc, { expirationSeconds: 60 }), RangeError);
  const short = await rejection(ctx.tokens.get(NS, SA, { expirationSeconds: 599 }));
  t.match(short.message, /expirationSeconds must be at least 600/);
  const badName = await rejection(ctx.tokens.get(NS, '../etc'));
  t.match(badName.message, /not a valid service account name/);
  const badNs = await rejection(ctx.tokens.get('Team_A', SA));
  t.match(badNs.message, /not a valid namespace name/);
  t.equal(tokenRequests(mark).length, 0, 'kube-apiserver saw no TokenRequest');
  t.same(ctx.metrics.requests, []);
});

t.test('the token never shows: JSON, inspect, String, spread, log lines; token files', async (t) => {
  const dir = join(t.testdir(), 'tokens');
  const ctx = setup(t, { tokenDir: dir });
  const bt: BoundToken = await ctx.tokens.get(NS, SA, { audiences: ['vault'] });
  const secret = bt.token;
  t.match(secret, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
  t.notOk(Object.keys(bt).includes('token'), 'not an own enumerable property');
  t.notMatch(JSON.stringify(bt), secret);
  t.match(JSON.stringify(bt), '"token":"[redacted]"');
  t.notMatch(inspect(bt, { depth: 5, showHidden: true }), secret);
  t.notMatch(String(bt), secret);
  t.notMatch(JSON.stringify({ ...bt }), secret);
  const log = pino({ level: 'debug' }, { write: (l: string) => void ctx.lines.push(l) });
  log.info({ bt, nested: { bt } }, 'logging a BoundToken');
  t.ok(ctx.lines.at(-1)?.includes('[redacted]'));

  // The token file: 0600 in a 0700 directory, the token the API server issued.
  t.ok(bt.tokenFile);
  t.equal(await readFile(bt.tokenFile!, 'utf8'), secret);
  t.equal((await stat(bt.tokenFile!)).mode & 0o777, 0o600, 'file mode 0600');
  t.equal((await stat(dir)).mode & 0o777, 0o700, 'directory mode 0700');

  // Same audiences in another order and twice: the same entry.
  t.equal((await ctx.tokens.get(NS, SA, { audiences: ['vault', 'vault'] })).token, secret);
  // Another audience: another file.
  const other = await ctx.tokens.get(NS, SA, { audiences: ['api://AzureADTokenExchange'] });
  t.not(other.tokenFile, bt.tokenFile);
  t.equal(await readFile(other.tokenFile!, 'utf8'), other.token);
  await ctx.tokens.invalidate(NS, SA);
  await t.rejects(stat(bt.tokenFile!), { code: 'ENOENT' }, 'invalidate() removes the files');
  await t.rejects(stat(other.tokenFile!), { code: 'ENOENT' });
  // After invalidate() a new TokenRequest. (Not necessarily another string: v1.28 puts no jti in
  // a token that is not bound to a pod, so two tokens for the same service account, audiences and
  // lifetime issued within the same second are the same JWT.)
  const mark = auditMark();
  const fresh = await ctx.tokens.get(NS, SA, { audiences: ['vault'] });
  t.equal(tokenRequests(mark, NS, SA).length, 1, 'a new TokenRequest after invalidate()');
  t.equal(fresh.token, tokenRequests(mark, NS, SA)[0]!.responseObject?.status?.token, 'and its token in use');
  t.equal(await readFile(fresh.tokenFile!, 'utf8'), fresh.token, 'in a new file');
  t.equal((await tokenReview(secret, ['vault'])).authenticated, true, 'the old one is still valid: TokenRequest tokens cannot be revoked one by one');
  assertNoLeak(t, ctx);

  await ctx.tokens.close();
  await t.rejects(stat(fresh.tokenFile!), { code: 'ENOENT' }, 'close() removes the token file');
  await t.rejects(ctx.tokens.get(NS, SA), TokenRequestError, 'closed');
});
