// MetricsBatch over real gRPC and mutual TLS 1.3: queries asked together go in one call, each
// answered as GetMetrics answers it (values and status codes), as soon as it is ready (a slow one
// holds back no other), a cancelled one alone is cancelled; an operator without the service (as
// KEDA's) gets every query as GetMetrics, and the batch is tried again later.
import t from 'tap';
import { status } from '../../src/channel/status.js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { CallError } from '../../src/channel/grpc-client.js';
import { ChannelClient } from '../../src/channel/client.js';
import { ChannelError, startChannelServer, type MetricsHandler, type RunningChannelServer } from '../../src/channel/server.js';
import { BATCH_GET_METRICS_PATH, toWireTime, type ScaledObjectRef } from '../../src/channel/service.js';
import { GrpcMetrics } from '../../src/observability/metrics.js';
import { channelTls, createTestPki } from '../helpers/pki.js';
import { freePort } from '../helpers/adapter.js';
import { eventually } from '../helpers/loop.js';

const pki = await createTestPki(t.testdir());
const log = pino({ level: 'silent' });
const liveTls = () => channelTls(pki.tls, pki.ca.certFile);

/** Held queries wait for release(); every query the handler sees is recorded, with its signal. */
let gate: { promise: Promise<void>; release(): void } = open();
function open() {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
}
const seen: { ref: ScaledObjectRef; signal: AbortSignal }[] = [];
const handler: MetricsHandler = {
  async getMetrics(ref, signal) {
    seen.push({ ref, signal });
    if (ref.metricName === 'held') await gate.promise;
    if (ref.metricName === 'missing') throw new ChannelError(status.NOT_FOUND, `scaledobject ${ref.namespace}/${ref.name} has no metric "missing"`);
    return { metadata: {}, items: [{ metricName: ref.metricName, metricLabels: {}, timestamp: toWireTime(new Date()), value: { string: ref.metricName.length.toString() } }] };
  },
};

const serverTls = await liveTls();
const port = await freePort();
let serverRegistry = new Registry();
const start = (batch = true) => {
  serverRegistry = new Registry();
  return startChannelServer({ bindAddress: `127.0.0.1:${port}`, tls: serverTls, trust: ['ca'], handler, batch, metrics: new GrpcMetrics(serverRegistry, 'server'), log, maxConnectionAgeMs: 600_000, maxConnectionAgeGraceMs: 1_000 });
};
let server: RunningChannelServer = await start();
t.teardown(() => server.shutdown(0));

const logs: { msg: string }[] = [];
const clientLog = pino({ level: 'info' }, { write: (l: string) => void logs.push(JSON.parse(l) as { msg: string }) });
const client = new ChannelClient({ address: `localhost:${port}`, tls: await liveTls(), trust: ['ca'], timeoutMs: 5_000, readinessGraceMs: 1_000, metrics: new GrpcMetrics(new Registry(), 'client'), log: clientLog, batchRetryMs: 1_000 });
t.teardown(() => client.close());

const ask = (metricName: string, signal = new AbortController().signal) => client.getMetrics({ name: 'web', namespace: 'shop', metricName }, signal);
const valueOf = async (p: Promise<{ items: { value: { string: string } | null }[] }>) => (await p).items[0]?.value?.string;
/** Calls the operator completed, by method: `/service/method` -> count. */
async function served(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const v of (await serverRegistry.getSingleMetric('grpc_server_handled_total')!.get()).values) {
    const key = `/${String(v.labels.grpc_service)}/${String(v.labels.grpc_method)}`;
    counts[key] = (counts[key] ?? 0) + v.value;
  }
  return counts;
}
const codeOf = async (p: Promise<unknown>) => p.then(() => status.OK, (err: CallError) => err.code);

t.test('queries asked together go in one call, each answered as GetMetrics would answer it', async (t) => {
  await valueOf(ask('warm-up'));
  const before = await served();
  const [a, b, missing] = [ask('a'), ask('bb'), ask('missing')];
  t.equal(await valueOf(a), '1');
  t.equal(await valueOf(b), '2');
  const err = await missing.catch((e: CallError) => e);
  t.match(err, { code: status.NOT_FOUND, details: 'scaledobject shop/web has no metric "missing"' }, 'a status of its own, as GetMetrics gives it');
  const after = await served();
  t.equal((after[BATCH_GET_METRICS_PATH] ?? 0) - (before[BATCH_GET_METRICS_PATH] ?? 0), 1, 'one MetricsBatch call');
  t.equal(after['/api.MetricsService/GetMetrics'], before['/api.MetricsService/GetMetrics'], 'no GetMetrics call');
  t.strictSame(seen.slice(-3).map((s) => s.ref.metricName).sort(), ['a', 'bb', 'missing'], 'the operator asked for each');
  t.equal(await valueOf(ask('lone')), '4', 'a lone query');
  t.equal((await served())['/api.MetricsService/GetMetrics'], (before['/api.MetricsService/GetMetrics'] ?? 0) + 1, 'is a GetMetrics call');
});

t.test('each answer comes when it is ready: a slow query holds back no other', async (t) => {
  gate = open();
  const held = ask('held');
  let heldDone = false;
  void held.then(() => (heldDone = true));
  t.equal(await valueOf(ask('quick')), '5', 'answered while the other waits');
  t.notOk(heldDone, 'the held one is still waiting');
  gate.release();
  t.equal(await valueOf(held), '4');
});

t.test('a cancelled query is cancelled alone', async (t) => {
  gate = open();
  const abort = new AbortController();
  const cancelled = ask('held', abort.signal);
  const other = ask('other');
  await eventually('both reached the operator', async () => (seen.some((s) => s.ref.metricName === 'other') ? true : undefined));
  abort.abort();
  t.equal(await codeOf(cancelled), status.CANCELLED);
  t.equal(await valueOf(other), '5', 'the other answered');
  gate.release();
  t.notOk(seen.filter((s) => s.ref.metricName === 'held').at(-1)?.signal.aborted, 'the call goes on for the others: the operator was not told to stop');

  gate = open();
  const all = new AbortController();
  const both = [ask('held', all.signal), ask('held', all.signal)];
  await eventually('both held', async () => (seen.filter((s) => s.ref.metricName === 'held').length >= 3 ? true : undefined));
  all.abort();
  t.strictSame(await Promise.all(both.map(codeOf)), [status.CANCELLED, status.CANCELLED]);
  await eventually('with every query cancelled, the call is, and the operator told', async () => (seen.filter((s) => s.ref.metricName === 'held').slice(-2).every((s) => s.signal.aborted) ? true : undefined));
  t.pass('the operator\'s signal aborted');
  gate.release();
});

t.test('an operator without MetricsBatch (as KEDA\'s): each query as GetMetrics; the batch tried again later', async (t) => {
  await server.shutdown(0);
  server = await start(false);
  await eventually('reconnected', async () => ((await codeOf(ask('probe'))) === status.OK ? true : undefined), 10_000);
  const values = await Promise.all(['a', 'bb', 'ccc'].map((m) => valueOf(ask(m))));
  t.strictSame(values, ['1', '2', '3'], 'every query answered');
  t.equal((await served())['/api.MetricsService/GetMetrics'], 4, 'each as GetMetrics (and the probe)');
  t.ok(logs.some((l) => l.msg.startsWith('the operator has no MetricsBatch')), 'said once');

  await server.shutdown(0);
  server = await start(true);
  await eventually('batches again after batchRetryMs', async () => {
    // Until the client has reconnected, these fail: asking again is the point.
    await Promise.all([ask('a'), ask('bb')]).catch(() => undefined);
    return (await served())[BATCH_GET_METRICS_PATH] ? true : undefined;
  }, 10_000);
  t.pass('an upgraded operator gets batches');
});

t.test('queries still queued when the client closes fail as UNAVAILABLE, and nothing throws', async (t) => {
  const closed = async (metricNames: string[]) => {
    const c = new ChannelClient({ address: `localhost:${port}`, tls: await liveTls(), trust: ['ca'], timeoutMs: 5_000, readinessGraceMs: 1_000, metrics: new GrpcMetrics(new Registry(), 'client'), log });
    const asked = metricNames.map((metricName) => c.getMetrics({ name: 'web', namespace: 'shop', metricName }, new AbortController().signal));
    c.close();
    return Promise.all(asked.map(codeOf));
  };
  t.strictSame(await closed(['a']), [status.UNAVAILABLE], 'a lone query (GetMetrics)');
  t.strictSame(await closed(['a', 'bb']), [status.UNAVAILABLE, status.UNAVAILABLE], 'a batch');
});
