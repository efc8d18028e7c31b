// The metrics mirror over real gRPC and mutual TLS 1.3: the operator's cached values reach the
// adapter (a snapshot, then every change), the adapter answers them itself while the stream is up
// and within each value's time to live, falls back to GetMetrics for everything else (failed
// polls, expired values, the stream down, an operator without the mirror, as KEDA's), and takes a
// new snapshot after the operator comes back.
import t from 'tap';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ChannelClient } from '../../src/channel/client.js';
import { MirrorReplica } from '../../src/channel/mirror-replica.js';
import { startChannelServer, type MetricsHandler, type RunningChannelServer } from '../../src/channel/server.js';
import { MIRROR_WATCH_PATH, metricsMirrorDefinition, toWireTime, type ScaledObjectRef } from '../../src/channel/service.js';
import { OperatorSource } from '../../src/adapter/sources/operator.js';
import { parseSelector } from '../../src/k8s/labels.js';
import { GrpcMetrics, MirrorMetrics } from '../../src/observability/metrics.js';
import { MetricsMirror } from '../../src/operator/metrics-mirror.js';
import type { PollReport } from '../../src/operator/metrics-engine.js';
import { freePort } from '../helpers/adapter.js';
import { eventually } from '../helpers/loop.js';
import { channelTls, createTestPki, type Pair } from '../helpers/pki.js';

const pki = await createTestPki(t.testdir());
const log = pino({ level: 'silent' });
const liveTls = (identity: Pair) => channelTls(identity, pki.ca.certFile);

/** GetMetrics, counted: what the adapter asks when it does not answer from the mirror. */
const unary: ScaledObjectRef[] = [];
const handler: MetricsHandler = {
  async getMetrics(ref) {
    unary.push(ref);
    return { metadata: {}, items: [{ metricName: ref.metricName, metricLabels: {}, timestamp: toWireTime(new Date()), value: { string: '7' } }] };
  },
};

// The operator's side: the mirror a MetricsEngine's polls feed.
const mirror = new MetricsMirror(0);
const poll = (name: string, triggers: { metricName: string; value?: number; error?: string; cached?: boolean }[], pollingInterval = 30): void =>
  mirror.observe({
    namespace: 'shop',
    name,
    generation: 1,
    pollingInterval,
    at: new Date(),
    active: true,
    triggers: triggers.map((x, index) => ({ index, type: 'metrics-api', metricType: 'AverageValue', cached: x.cached ?? true, failures: 0, fallback: false, metricName: x.metricName, ...(x.value !== undefined ? { value: x.value } : {}), ...(x.error ? { error: x.error } : {}) })),
  } satisfies PollReport);
poll('web', [{ metricName: 's0-metric-api-queue', value: 42 }]);

const serverTls = await liveTls(pki.tls);
const port = await freePort();
const start = (withMirror = true) =>
  startChannelServer({ bindAddress: `127.0.0.1:${port}`, tls: serverTls, trust: ['ca'], handler, ...(withMirror ? { mirror } : {}), metrics: new GrpcMetrics(new Registry(), 'server'), log, maxConnectionAgeMs: 600_000, maxConnectionAgeGraceMs: 1_000 });
let server: RunningChannelServer = await start();
t.teardown(() => server.shutdown(0));

// The adapter's side.
const logs: { msg: string }[] = [];
const adapterLog = pino({ level: 'info' }, { write: (l: string) => void logs.push(JSON.parse(l) as { msg: string }) });
const channel = new ChannelClient({ address: `localhost:${port}`, tls: await liveTls(pki.tls), trust: ['ca'], timeoutMs: 2_000, readinessGraceMs: 1_000, metrics: new GrpcMetrics(new Registry(), 'client'), log });
const registry = new Registry();
const replica = new MirrorReplica({ open: () => channel.watchMirror(), log: adapterLog, metrics: new MirrorMetrics(registry), unsupportedRetryMs: 500 });
const source = new OperatorSource(channel, replica);
t.teardown(() => source.close());
replica.start();

const query = async (so: string, metricName: string) => {
  const before = unary.length;
  const [sample] = await source.getExternalMetric({ namespace: 'shop', metricName, selector: parseSelector(`scaledobject.keda.sh/name=${so}`), selectorText: `scaledobject.keda.sh/name=${so}` }, new AbortController().signal);
  return { value: sample!.value, viaGetMetrics: unary.length > before };
};

t.test('the service path is ours, next to KEDA\'s', async (t) => {
  t.equal(metricsMirrorDefinition.Watch!.path, MIRROR_WATCH_PATH);
  t.equal(MIRROR_WATCH_PATH, '/kedats.v1.MetricsMirror/Watch');
  t.ok(metricsMirrorDefinition.Watch!.responseStream, 'a server stream');
});

t.test('a snapshot first: a value cached before the adapter connected is answered by the adapter', async (t) => {
  await eventually('the mirror live', async () => (replica.isLive ? true : undefined));
  t.same(await query('web', 's0-metric-api-queue'), { value: '42', viaGetMetrics: false });
  t.match(await registry.metrics(), /metrics_mirror_lookups_total\{result="hit"\} 1/);
  t.match(await registry.metrics(), /metrics_mirror_live 1/);
});

t.test('each poll reaches the adapter; what is not cached, or failed, goes to GetMetrics', async (t) => {
  poll('web', [{ metricName: 's0-metric-api-queue', value: 43 }, { metricName: 's1-metric-api-live', value: 5, cached: false }]);
  await eventually('the new value', async () => ((await query('web', 's0-metric-api-queue')).value === '43' ? true : undefined));
  t.same(await query('web', 's1-metric-api-live'), { value: '7', viaGetMetrics: true }, 'a trigger without useCachedMetrics');
  poll('web', [{ metricName: 's0-metric-api-queue', error: 'upstream said 500' }]);
  await eventually('the failed value withdrawn', async () => ((await query('web', 's0-metric-api-queue')).viaGetMetrics ? true : undefined));
  t.pass('a trigger whose poll failed is asked live, as GetMetrics does for it');
  t.same(await query('other', 's0-metric-api-queue'), { value: '7', viaGetMetrics: true }, 'an unknown ScaledObject');
});

t.test('a value past its time to live is not served', async (t) => {
  poll('fast', [{ metricName: 's0-metric-api-x', value: 1 }], 0.15);
  await eventually('the value mirrored', async () => ((await query('fast', 's0-metric-api-x')).viaGetMetrics ? undefined : true));
  await new Promise((r) => setTimeout(r, 400));
  t.same(await query('fast', 's0-metric-api-x'), { value: '7', viaGetMetrics: true }, 'two polling intervals without a refresh: asked live');
});

t.test('a ScaledObject that goes is withdrawn', async (t) => {
  poll('gone', [{ metricName: 's0-metric-api-y', value: 9 }]);
  await eventually('mirrored', async () => ((await query('gone', 's0-metric-api-y')).viaGetMetrics ? undefined : true));
  mirror.retain(new Set(['shop/web', 'shop/fast']));
  await eventually('withdrawn', async () => ((await query('gone', 's0-metric-api-y')).viaGetMetrics ? true : undefined));
  t.pass();
});

t.test('the operator goes away: GetMetrics meanwhile, a new snapshot when it is back', async (t) => {
  poll('web', [{ metricName: 's0-metric-api-queue', value: 50 }]);
  await eventually('mirrored', async () => ((await query('web', 's0-metric-api-queue')).value === '50' ? true : undefined));
  await server.shutdown(0);
  await eventually('the mirror down', async () => (replica.isLive ? undefined : true));
  // While it is down the value changes on the operator's side (a poll the adapter never saw).
  poll('web', [{ metricName: 's0-metric-api-queue', value: 51 }]);
  server = await start();
  await eventually('live again', async () => (replica.isLive ? true : undefined), 10_000);
  t.same(await query('web', 's0-metric-api-queue'), { value: '51', viaGetMetrics: false }, 'the snapshot brought the change made meanwhile');
  t.ok(logs.some((l) => l.msg === 'metrics mirror down: queries use GetMetrics meanwhile'));
});

t.test('an operator without the mirror (as KEDA\'s): every query uses GetMetrics', async (t) => {
  await server.shutdown(0);
  server = await start(false);
  await eventually('told it is not supported', async () => (logs.some((l) => l.msg.startsWith('the operator has no metrics mirror')) ? true : undefined), 10_000);
  t.notOk(replica.isLive);
  t.same(await query('web', 's0-metric-api-queue'), { value: '7', viaGetMetrics: true });
  // The operator is upgraded: the mirror comes back by itself.
  await server.shutdown(0);
  server = await start();
  await eventually('live with the new operator', async () => (replica.isLive ? true : undefined), 10_000);
  t.same(await query('web', 's0-metric-api-queue'), { value: '51', viaGetMetrics: false });
});
