// ServiceAccountTokens against the fake kube-apiserver, for what a real one cannot be made to do
// on demand (everything else is in service-account-tokens.test.ts, on a real control plane):
// - lifetimes under the real minimum: kube-apiserver refuses a TokenRequest for less than 10
//   minutes (422), so renewal in the background at 80 %, a token nobody asks for dropped instead of
//   renewed, a failing renewal that keeps the valid token and recovers, and a token that expires
//   unrenewed would each take 8 to 10 minutes there; the fake grants 4 to 8 seconds;
// - a lifetime longer than the one asked for: kube-apiserver only extends tokens bound to a pod
//   (--service-account-extend-token-expiration), never a TokenRequest for a service account alone;
// - a clock skew between the API server and us: one control plane on this machine shares our clock
//   (this one is a stand-in for the API client, no server at all);
// - 5xx answers and an API server that never answers, at a chosen request: a real one has no switch
//   for either.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeClient } from '../../src/k8s/client.js';
import { pino } from 'pino';
import { ApiStatusError, startFakeApiServer, type FakeApiServer, type RecordedRequest } from '../helpers/fake-apiserver.js';
import { ServiceAccountTokens, TokenRequestError, type ServiceAccountTokensOptions, type TokenRequestOutcome } from '../../src/k8s/service-account-tokens.js';

const OPERATOR = 'system:serviceaccount:keda:keda-operator';
const TOKEN_PATH = '/api/v1/namespaces/team-a/serviceaccounts/my-sa/token';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Ctx {
  api: FakeApiServer;
  tokens: ServiceAccountTokens;
  /** Every log line written, raw. */
  lines: string[];
  /** Every token the fake handed out. */
  issued: string[];
  /** Server side: lifetime granted (default: as requested), answer delay, failure. */
  server: { lifetimeMs?: number; delayMs?: number; fail?: ApiStatusError };
  metrics: { hits: number; requests: [TokenRequestOutcome, string][]; expired: number };
  kc: KubeClient;
  /** The TokenRequests the fake received for team-a/my-sa. */
  tokenRequests(): RecordedRequest[];
}

async function setup(t: Test, opts: ServiceAccountTokensOptions = {}): Promise<Ctx> {
  const api = await startFakeApiServer();
  t.teardown(() => api.close());
  for (const name of ['my-sa', 'other-sa']) api.put({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: 'team-a' } });
  const opToken = `op-${randomBytes(8).toString('hex')}`;
  api.addToken(opToken, { username: OPERATOR, uid: 'op-uid', groups: ['system:serviceaccounts', 'system:serviceaccounts:keda'] });
  // Not t.testdir(): the tests keep that for token files, and each call of it empties the directory.
  const kcDir = await mkdtemp(join(tmpdir(), 'sa-tokens-kc-'));
  t.teardown(() => rm(kcDir, { recursive: true, force: true }));
  const kc = KubeClient.fromKubeconfig(await api.writeKubeconfig(kcDir, { token: opToken }));
  t.teardown(() => kc.close());

  const server: Ctx['server'] = {};
  const issued: string[] = [];
  api.onTokenRequest(async () => {
    if (server.delayMs) await sleep(server.delayMs);
    if (server.fail) throw server.fail;
    const token = `sa-token-${issued.length + 1}-${randomBytes(16).toString('hex')}`;
    issued.push(token);
    return { token, ...(server.lifetimeMs ? { expirationTimestamp: new Date(Date.now() + server.lifetimeMs) } : {}) };
  });

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
  const tokenRequests = () => api.requests.filter((r) => r.method === 'POST' && r.path === TOKEN_PATH);
  return { api, tokens, lines, issued, server, metrics, kc, tokenRequests };
}

/** No token the fake issued appears in any log line or in the given error messages. */
function assertNoLeak(t: Test, ctx: Ctx, errors: unknown[] = []): void {
  const texts = [...ctx.lines, ...errors.map((e) => `${(e as Error).message}\n${JSON.stringify(e)}\n${inspect(e)}`)];
  const leaked = ctx.issued.filter((tok) => texts.some((l) => l.includes(tok)));
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

async function eventually<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

t.test('the lifetime is the one the API server granted, even longer than the one requested', async (t) => {
  // (A grant shorter than the one asked for, capped by --service-account-max-token-expiration, is
  // shown on the real server.)
  const ctx = await setup(t);
  ctx.server.lifetimeMs = 7_200_000;
  const before = Date.now();
  const longer = await ctx.tokens.get('team-a', 'my-sa', { expirationSeconds: 600 });
  t.ok(longer.expiresAt.getTime() - before > 7_190_000, 'granted 2 h for a 10 min request');
  t.ok(longer.refreshAt.getTime() - before > 0.8 * 7_190_000);
});

t.test('the lifetime is measured on the API server\'s clock, whatever the skew to ours', async (t) => {
  // A TokenRequest endpoint whose clock is off by `skewMs` (the fake answers with the real time).
  let skewMs = 0;
  let sendDate = true;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const serverNow = Date.now() + skewMs;
      const spec = (JSON.parse(body) as { spec: unknown }).spec;
      res.sendDate = sendDate;
      if (sendDate) res.setHeader('date', new Date(serverNow).toUTCString());
      res.setHeader('content-type', 'application/json');
      res.statusCode = 201;
      res.end(JSON.stringify({ kind: 'TokenRequest', spec, status: { token: 'stub-token', expirationTimestamp: new Date(Math.floor(serverNow / 1000) * 1000 + 1_200_000).toISOString() } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const kubeconfig = join(t.testdir(), 'kubeconfig');
  await writeFile(kubeconfig, JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'skewed', cluster: { server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` } }],
    users: [{ name: 'operator', user: { token: 'op' } }],
    contexts: [{ name: 'skewed', context: { cluster: 'skewed', user: 'operator' } }],
    'current-context': 'skewed',
  }));
  const kc = KubeClient.fromKubeconfig(kubeconfig);
  t.teardown(() => kc.close());
  for (const skew of [3_600_000, -3_600_000, 0]) {
    skewMs = skew;
    const tokens = new ServiceAccountTokens(kc);
    const before = Date.now();
    const bt = await tokens.get('team-a', 'my-sa');
    const lifetime = bt.expiresAt.getTime() - before;
    t.ok(lifetime > 1_197_000 && lifetime <= 1_200_000, `server clock ${skew / 60_000} min off: 20 min on ours (${lifetime} ms)`);
    await tokens.close();
  }
  // No Date header: our own clock.
  sendDate = false;
  skewMs = 0;
  const tokens = new ServiceAccountTokens(kc);
  const bt = await tokens.get('team-a', 'my-sa');
  t.ok(bt.expiresAt.getTime() - Date.now() > 1_190_000);
  await tokens.close();
});

t.test('renewed in the background before it expires, on the granted lifetime; the token file follows', async (t) => {
  const dir = t.testdir();
  const ctx = await setup(t, { tokenDir: join(dir, 'tokens') });
  ctx.server.lifetimeMs = 5_000; // the API server grants 5 s whatever was asked
  const first = await ctx.tokens.get('team-a', 'my-sa');
  t.ok(first.expiresAt.getTime() - Date.now() <= 5_000, 'expiry from status.expirationTimestamp');
  t.ok(first.refreshAt < first.expiresAt);
  t.ok(first.tokenFile);
  t.equal(await readFile(first.tokenFile!, 'utf8'), first.token);
  t.equal((await stat(first.tokenFile!)).mode & 0o777, 0o600, 'file mode 0600');
  t.equal((await stat(join(dir, 'tokens'))).mode & 0o777, 0o700, 'directory mode 0700');

  // Nobody calls get(): the renewal comes by itself, after refreshAt and before the old expiry.
  const firstSeq = ctx.tokenRequests()[0]!.seq;
  const renewal = await ctx.api.waitForRequest((r) => r.path === TOKEN_PATH && r.seq > firstSeq && r.status === 201, 15_000);
  t.ok(renewal.time.getTime() >= first.refreshAt.getTime() - 50, 'not before refreshAt');
  t.ok(renewal.time.getTime() < first.expiresAt.getTime(), 'before the old token expired');
  await eventually('token file renewed', async () => ((await readFile(first.tokenFile!, 'utf8')) === ctx.issued[1] ? true : undefined));

  const second = await ctx.tokens.get('team-a', 'my-sa');
  t.equal(second.token, ctx.issued[1], 'the renewed token');
  t.ok(second.expiresAt > first.expiresAt);
  t.equal(ctx.tokenRequests().length, 2, 'get() after the renewal made no request of its own');
  t.equal(ctx.metrics.requests.filter(([, trigger]) => trigger === 'background').length, 1);
  t.ok(ctx.lines.some((l) => l.includes('service-account token renewed')));

  await ctx.tokens.close();
  await t.rejects(stat(first.tokenFile!), { code: 'ENOENT' }, 'close() removes the token file');
  await t.rejects(ctx.tokens.get('team-a', 'my-sa'), TokenRequestError, 'closed');
  assertNoLeak(t, ctx);
});

t.test('a token nobody asks for is dropped instead of renewed', async (t) => {
  const ctx = await setup(t, { tokenDir: join(t.testdir(), 'tokens'), idleTimeoutMs: 0 });
  ctx.server.lifetimeMs = 4_000;
  const first = await ctx.tokens.get('team-a', 'my-sa');
  await eventually('token file removed', async () => ((await stat(first.tokenFile!).catch(() => undefined)) ? undefined : true));
  t.equal(ctx.tokenRequests().length, 1, 'not renewed');
  const next = await ctx.tokens.get('team-a', 'my-sa');
  t.equal(next.token, ctx.issued[1], 'asked again: a new token');
  t.equal(await readFile(next.tokenFile!, 'utf8'), next.token);
});

t.test('a failing renewal keeps the valid token in service, retries with backoff and recovers before expiry', async (t) => {
  const ctx = await setup(t, { retryInitialDelayMs: 100, retryMaxDelayMs: 200 });
  ctx.server.lifetimeMs = 8_000;
  const first = await ctx.tokens.get('team-a', 'my-sa');
  ctx.server.fail = new ApiStatusError(503, 'ServiceUnavailable', 'etcd is having a bad day');

  await eventually('two failed renewals', () => (ctx.tokenRequests().filter((r) => r.status === 503).length >= 2 ? true : undefined));
  const during = await ctx.tokens.get('team-a', 'my-sa');
  t.equal(during.token, first.token, 'the old token while renewal fails');
  t.same(during.expiresAt, first.expiresAt);
  t.ok(during.refreshAt > first.refreshAt && during.refreshAt <= first.expiresAt, 'ask again at the next retry');
  t.ok(Date.now() < first.expiresAt.getTime(), 'still valid');
  t.ok(ctx.lines.some((l) => l.includes('could not renew') && l.includes('etcd is having a bad day')), 'the failure is logged');

  ctx.server.fail = undefined;
  const failedSeq = ctx.tokenRequests().at(-1)!.seq;
  const renewal = await ctx.api.waitForRequest((r) => r.path === TOKEN_PATH && r.seq > failedSeq && r.status === 201, 10_000);
  t.ok(renewal.time.getTime() < first.expiresAt.getTime(), 'renewed before the old token expired');
  const after = await eventually('new token served', async () => {
    const b = await ctx.tokens.get('team-a', 'my-sa');
    return b.token !== first.token ? b : undefined;
  });
  t.equal(after.token, ctx.issued[1]);
  t.ok(ctx.metrics.requests.some(([o, trig]) => o === 'error' && trig === 'background'));
  assertNoLeak(t, ctx);
});

t.test('a token that could not be renewed expires and get() says why', async (t) => {
  const ctx = await setup(t, { retryInitialDelayMs: 200, retryMaxDelayMs: 400 });
  ctx.server.lifetimeMs = 4_000;
  const first = await ctx.tokens.get('team-a', 'my-sa');
  ctx.server.fail = new ApiStatusError(500, 'InternalError', 'Internal error occurred: boom');
  await eventually('expired', () => (ctx.metrics.expired > 0 ? true : undefined));
  t.ok(Date.now() >= first.expiresAt.getTime());
  const err = await rejection(ctx.tokens.get('team-a', 'my-sa'));
  t.type(err, TokenRequestError);
  t.match(err.message, /^could not request a token for service account team-a\/my-sa: HTTP 500: Internal error occurred: boom$/);
  t.ok(ctx.lines.some((l) => l.includes('expired before it could be renewed')));
  assertNoLeak(t, ctx, [err]);
});

t.test('other failures are clear messages: 503, no answer at all', async (t) => {
  // (401, the operator's own credentials refused, is shown on the real server.)
  const ctx = await setup(t, { requestTimeoutMs: 300, retryInitialDelayMs: 10, retryMaxDelayMs: 10 });
  const unfault = ctx.api.inject({ path: TOKEN_PATH, status: 503, message: 'the server is currently unable to handle the request', times: 1 });
  const unavailable = await rejection(ctx.tokens.get('team-a', 'my-sa'));
  unfault();
  t.equal(unavailable.message, 'could not request a token for service account team-a/my-sa: HTTP 503: the server is currently unable to handle the request');
  t.equal((unavailable as TokenRequestError).statusCode, 503);
  await sleep(30);

  ctx.api.inject({ path: TOKEN_PATH, hang: true, times: 1 });
  const hung = await rejection(ctx.tokens.get('team-a', 'my-sa'));
  t.equal(hung.message, 'could not request a token for service account team-a/my-sa: TokenRequest for service account team-a/my-sa: no answer from kube-apiserver within 300 ms');
  await sleep(30);

  const ok = await ctx.tokens.get('team-a', 'my-sa');
  t.equal(ok.token, ctx.issued[0], 'and then it works');
});
