// The metrics engine against real upstreams on 127.0.0.1 and a real ScaledObjects file: queries
// go upstream unless the trigger asks for cached metrics, polls fill the cache and report
// activity and health per trigger, a failing trigger costs a healthy one nothing, a rotated
// Secret is picked up, and bound tokens are renewed before expiry.
import t from 'tap';
import { rename, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { MetricsEngine, type PollReport } from '../../src/operator/metrics-engine.js';
import { FileScaledObjectStore } from '../../src/operator/scaledobjects/file-store.js';
import type { TokenSource } from '../../src/operator/scaledobjects/resolve-auth.js';
import { CustomCaTrust } from '../../src/tls/custom-ca.js';
import { eventually } from '../helpers/loop.js';

const log = pino({ level: 'silent' });
const root = t.testdir({ ca: {} });
const trust = new CustomCaTrust([join(root, 'ca')], log);
await trust.start();
t.teardown(() => trust.close());

// An upstream answering {"v": <value>}; it records the Authorization header of every request.
let value = 4;
const seen: { auth: string | undefined }[] = [];
const server = createServer((req: IncomingMessage, res) => {
  seen.push({ auth: req.headers.authorization });
  if (req.headers.authorization !== undefined && !req.headers.authorization.endsWith(expectedToken)) {
    res.statusCode = 503;
    res.end('down');
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ v: value }));
});
let expectedToken = '';
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise<void>((r) => server.close(() => r())));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

const trigger = (extra: Record<string, unknown> = {}, metadata: Record<string, string> = {}) => ({
  type: 'metrics-api',
  metadata: { url, valueLocation: 'v', targetValue: '2', activationTargetValue: '3', ...metadata },
  ...extra,
});
const so = (name: string, triggers: unknown[], pollingInterval = 1) => ({
  apiVersion: 'keda.sh/v1alpha1',
  kind: 'ScaledObject',
  metadata: { name, namespace: 'default' },
  spec: { scaleTargetRef: { name }, pollingInterval, triggers },
});
const docs = (...objs: unknown[]) => objs.map((o) => stringify(o)).join('---\n');

async function setup(text: string, opts: { poll?: boolean; tokens?: TokenSource } = {}) {
  const file = join(root, `keda-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, text);
  const store = new FileScaledObjectStore(file, log, { watch: { debounceMs: 30 } });
  const engine = new MetricsEngine(store, { trust, scalerTimeoutMs: 2000, log, poll: opts.poll ?? false, ...(opts.tokens ? { tokens: opts.tokens } : {}) });
  await store.start();
  const reports: PollReport[] = [];
  engine.onPoll((r) => void reports.push(r));
  return {
    store,
    engine,
    reports,
    query: async (name: string, metricName: string) => {
      const list = await engine.getMetrics({ namespace: 'default', name, metricName }, new AbortController().signal);
      return list.items[0]!.value!.string;
    },
    async edit(content: string) {
      await writeFile(`${file}.tmp`, content);
      await rename(`${file}.tmp`, file);
    },
    async close() {
      engine.close();
      await store.close();
    },
  };
}

t.test('plain triggers go upstream on every query; cached ones are served from the last poll', async (t) => {
  const s = await setup(docs(so('live', [trigger()], 3600), so('cached', [trigger({ useCachedMetrics: true })], 3600)));
  t.teardown(() => s.close());
  value = 4;
  const before = seen.length;
  t.equal(await s.query('live', 's0-metric-api-v'), '4');
  t.equal(await s.query('live', 's0-metric-api-v'), '4');
  t.equal(seen.length - before, 2, 'two queries, two upstream requests');

  await s.engine.poll('default', 'cached');
  const afterPoll = seen.length;
  value = 9;
  t.equal(await s.query('cached', 's0-metric-api-v'), '4', 'the polled value, not the new one');
  t.equal(await s.query('cached', 's0-metric-api-v'), '4');
  t.equal(seen.length, afterPoll, 'no upstream request for cached queries');
  await s.engine.poll('default', 'cached');
  t.equal(await s.query('cached', 's0-metric-api-v'), '9', 'the next poll refreshes the cache');
});

t.test('polls run per pollingInterval and report activity and per-trigger health', async (t) => {
  value = 5;
  const s = await setup(docs(so('mixed', [trigger(), trigger({}, { url: 'http://127.0.0.1:1/' })], 1)), { poll: true });
  t.teardown(() => s.close());
  const report = await eventually('two polls', async () => (s.reports.length >= 2 ? s.reports.at(-1) : undefined), 15_000);
  t.equal(report.active, true, 'value 5 is above the activation threshold 3');
  const [good, bad] = report.triggers;
  t.match(good, { index: 0, metricName: 's0-metric-api-v', value: 5, active: true, failures: 0 });
  t.equal(good?.error, undefined);
  t.match(bad, { index: 1, metricName: 's1-metric-api-v' });
  t.match(bad?.error, /connection refused/);
  t.ok((bad?.failures ?? 0) >= 2, 'failures counted in a row');

  value = 1;
  const quiet = await eventually('inactive', async () => (s.reports.at(-1)?.active === false ? s.reports.at(-1) : undefined), 15_000);
  t.equal(quiet.triggers[0]?.value, 1);
  await t.rejects(s.query('mixed', 's1-metric-api-v'), /connection refused/, 'the failing trigger answers with its error, not a stale value');
  t.equal(await s.query('mixed', 's0-metric-api-v'), '1', 'the healthy trigger is unaffected');
});

t.test('a rotated Secret is used from the next query on', async (t) => {
  const secret = (token: string) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'default' }, stringData: { token } });
  const auth = { apiVersion: 'keda.sh/v1alpha1', kind: 'TriggerAuthentication', metadata: { name: 'auth', namespace: 'default' }, spec: { secretTargetRef: [{ parameter: 'token', name: 'creds', key: 'token' }] } };
  const withAuth = trigger({ authenticationRef: { name: 'auth' } }, { authMode: 'bearer' });
  expectedToken = 'token-one';
  const s = await setup(docs(so('secured', [withAuth], 3600), auth, secret('token-one')));
  t.teardown(() => s.close());
  t.equal(await s.query('secured', 's0-metric-api-v'), String(value));
  expectedToken = 'token-two';
  await t.rejects(s.query('secured', 's0-metric-api-v'), /HTTP 503/, 'the old token is refused');
  await s.edit(docs(so('secured', [withAuth], 3600), auth, secret('token-two')));
  await eventually('the new token is used', async () => (await s.query('secured', 's0-metric-api-v').catch(() => undefined)) ?? undefined);
  t.equal(seen.at(-1)?.auth, 'Bearer token-two');
  expectedToken = '';
});

t.test('bound service-account tokens: requested per namespace, renewed when due', async (t) => {
  let issued = 0;
  const requests: { namespace: string; sa: string; audiences?: string[] }[] = [];
  const tokens: TokenSource = {
    get(namespace, sa, opts) {
      requests.push({ namespace, sa, ...(opts.audiences ? { audiences: opts.audiences } : {}) });
      issued++;
      // Due at once after the first: the next query must get a fresh one.
      return Promise.resolve({ token: `sa-token-${issued}`, refreshAt: new Date(Date.now() + (issued === 1 ? 0 : 3_600_000)) });
    },
  };
  const auth = {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'TriggerAuthentication',
    metadata: { name: 'sa-auth', namespace: 'default' },
    spec: { boundServiceAccountToken: [{ parameter: 'token', serviceAccountName: 'metrics-reader', audiences: ['api://AzureADTokenExchange'] }] },
  };
  const s = await setup(docs(so('bound', [trigger({ authenticationRef: { name: 'sa-auth' } }, { authMode: 'bearer' })], 3600), auth), { tokens });
  t.teardown(() => s.close());
  expectedToken = '';
  await s.query('bound', 's0-metric-api-v');
  t.equal(seen.at(-1)?.auth, 'Bearer sa-token-1');
  await s.query('bound', 's0-metric-api-v');
  t.equal(seen.at(-1)?.auth, 'Bearer sa-token-2', 'renewed when due, before the old one expires');
  await s.query('bound', 's0-metric-api-v');
  t.equal(seen.at(-1)?.auth, 'Bearer sa-token-2', 'and cached while valid');
  t.strictSame(requests[0], { namespace: 'default', sa: 'metrics-reader', audiences: ['api://AzureADTokenExchange'] });

  const off = await setup(docs(so('bound', [trigger({ authenticationRef: { name: 'sa-auth' } }, { authMode: 'bearer' })], 3600), auth));
  t.teardown(() => off.close());
  await t.rejects(off.query('bound', 's0-metric-api-v'), /needs the operator flag --enable-service-account-token-requests/);
});

t.test('unknown objects and metrics get NOT_FOUND; a trigger that cannot build gets its reason', async (t) => {
  const s = await setup(docs(so('odd', [trigger(), { type: 'kafka', metadata: {} }], 3600)));
  t.teardown(() => s.close());
  await t.rejects(s.query('nope', 's0-metric-api-v'), { code: 5, message: /scaledobject default\/nope not found/ });
  await t.rejects(s.query('odd', 's9-x'), { code: 5, message: /has no metric "s9-x" \(its metrics: s0-metric-api-v, s1-\*\)/ });
  await t.rejects(s.query('odd', 's1-kafka'), { code: 9, message: /unsupported trigger type "kafka"/ });
  const described = await s.engine.describe(s.store.get('default', 'odd')!);
  t.match(described, [{ index: 0, metricName: 's0-metric-api-v', targetValue: 2 }, { index: 1, buildError: /unsupported trigger type/ }]);
});

t.test('without a cluster, a trigger reading the workload\'s environment says it needs one; the others are served', async (t) => {
  const redis = { type: 'redis', metadata: { listName: 'jobs', addressFromEnv: 'REDIS_ADDRESS' } };
  const s = await setup(docs(so('env', [trigger({}, { urlFromEnv: 'NOT_READ' }), redis], 3600)));
  t.teardown(() => s.close());
  const described = await s.engine.describe(s.store.get('default', 'env')!);
  t.match(described, [{ index: 0, metricName: 's0-metric-api-v' }, { index: 1, buildError: "trigger 1 (redis): *FromEnv reads the workload's environment, which is read only in a cluster: give the value itself" }]);
  t.equal(await s.query('env', 's0-metric-api-v'), String(value), 'a *FromEnv the scaler does not read costs nothing');
});

t.test('objects started together poll spread over the interval after their first poll, never later than an interval', async (t) => {
  const names = Array.from({ length: 12 }, (_, i) => `spread-${i}`);
  const s = await setup(docs(...names.map((n) => so(n, [trigger()], 2))), { poll: true });
  t.teardown(() => s.close());
  const polls = (name: string) => s.reports.filter((r) => r.name === name).map((r) => r.at.getTime());
  await eventually('two polls of each', async () => (names.every((n) => polls(n).length >= 2) ? true : undefined), 15_000);
  const gaps = names.map((n) => polls(n)[1]! - polls(n)[0]!);
  t.ok(gaps.every((g) => g <= 2000 + 500), `each second poll within one interval (${gaps.join(', ')} ms)`);
  t.ok(gaps.some((g) => g < 1600), 'and not all a whole interval after the first: their phases spread');
});
