// The channel against gRPC's C core (Debian's python3-grpcio, test/helpers/grpcio-peer.py), an
// implementation that shares no code with grpc-js, over mutual TLS 1.3, in both directions:
// the C core calling our operator (as KEDA's adapter would), and our adapter calling the C core
// standing in for KEDA's operator (which has no MetricsBatch: every query falls back to GetMetrics).
import t, { type Test } from 'tap';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { status } from '../../src/channel/status.js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { CallError } from '../../src/channel/grpc-client.js';
import { ChannelClient } from '../../src/channel/client.js';
import { ChannelError, type MetricsHandler } from '../../src/channel/server.js';
import { GET_METRICS_PATH, metricsServiceDefinition, toWireTime, type ExternalMetricValueList, type ScaledObjectRef } from '../../src/channel/service.js';
import { GrpcMetrics } from '../../src/observability/metrics.js';
import { startTestChannelServer } from '../helpers/channel.js';
import { grpcioPython } from '../helpers/grpcio.js';
import { eventually } from '../helpers/loop.js';
import { channelTls, createTestPki, type Pair } from '../helpers/pki.js';

const PEER = fileURLToPath(new URL('../helpers/grpcio-peer.py', import.meta.url));
const python = grpcioPython();
const pki = await createTestPki(t.testdir());
const log = pino({ level: 'silent' });
const codec = metricsServiceDefinition.GetMetrics!;
const encode = (ref: ScaledObjectRef) => Buffer.from(codec.requestSerialize(ref)).toString('hex');
const decode = (hex: string) => codec.responseDeserialize(Buffer.from(hex, 'hex')) as ExternalMetricValueList;
const listOf = (metricName: string, value: string): ExternalMetricValueList => ({ metadata: {}, items: [{ metricName, metricLabels: { queue: 'a' }, timestamp: toWireTime(new Date('2026-01-02T03:04:05Z')), value: { string: value } }] });

function spawnPeer(args: string[]): { child: ChildProcessWithoutNullStreams; lines: AsyncIterator<string> } {
  const child = spawn(python, [PEER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal === null) t.comment(`grpcio peer exited with ${code}: ${stderr}`);
  });
  t.teardown(() => void child.kill());
  return { child, lines: createInterface({ input: child.stdout })[Symbol.asyncIterator]() };
}

async function nextLine(lines: AsyncIterator<string>): Promise<string> {
  const next = await lines.next();
  if (next.done) throw new Error('the grpcio peer ended');
  return next.value;
}

/** The C core as a client of ours: one call at a time. */
function cCoreClient(port: number, identity: Pair) {
  const { child, lines } = spawnPeer(['client', `127.0.0.1:${port}`, pki.ca.certFile, identity.certFile, identity.keyFile, 'localhost']);
  return async (method: string, request: string, timeoutSeconds = 5) => {
    child.stdin.write(`${JSON.stringify({ method, request, timeout: timeoutSeconds })}\n`);
    return JSON.parse(await nextLine(lines)) as { code: string; details: string; response: string };
  };
}

/** The C core as KEDA's operator, answering `answer` (see grpcio-peer.py for `together`). */
async function cCoreServer(answer: ExternalMetricValueList, together?: number): Promise<{ port: number; lines: AsyncIterator<string> }> {
  const { lines } = spawnPeer(['server', pki.ca.certFile, pki.tls.certFile, pki.tls.keyFile, Buffer.from(codec.responseSerialize(answer)).toString('hex'), ...(together ? [String(together)] : [])]);
  return { port: Number(/^listening (\d+)$/.exec(await nextLine(lines))?.[1]), lines };
}

const adapterClient = async (t: Test, port: number, timeoutMs = 5_000) => {
  const client = new ChannelClient({ address: `localhost:${port}`, tls: await channelTls(pki.tls, pki.ca.certFile), trust: ['ca'], timeoutMs, readinessGraceMs: 1_000, metrics: new GrpcMetrics(new Registry(), 'client'), log, batchRetryMs: 60_000 });
  t.teardown(() => client.close());
  return (metricName: string) => client.getMetrics({ name: 'web', namespace: 'shop', metricName }, new AbortController().signal);
};

t.test('gRPC\'s C core calls our operator: a value, a status, a deadline the handler is told of, an unknown method', async (t) => {
  const held: AbortSignal[] = [];
  const handler: MetricsHandler = {
    async getMetrics(ref, signal) {
      if (ref.metricName === 'missing') throw new ChannelError(status.NOT_FOUND, `scaledobject ${ref.namespace}/${ref.name} has no metric "missing"`);
      if (ref.metricName === 'held') {
        held.push(signal);
        await new Promise((resolve) => signal.addEventListener('abort', resolve));
      }
      return listOf(ref.metricName, '1500m');
    },
  };
  const { port } = await startTestChannelServer(t, pki, handler);
  const call = cCoreClient(port, pki.tls);

  const ok = await call(GET_METRICS_PATH, encode({ name: 'web', namespace: 'shop', metricName: 's0-queue' }));
  t.equal(ok.code, 'OK', ok.details);
  t.match(decode(ok.response), listOf('s0-queue', '1500m'), 'the answer decodes to what the operator sent');

  const missing = await call(GET_METRICS_PATH, encode({ name: 'web', namespace: 'shop', metricName: 'missing' }));
  t.strictSame([missing.code, missing.details], ['NOT_FOUND', 'scaledobject shop/web has no metric "missing"']);

  const late = await call(GET_METRICS_PATH, encode({ name: 'web', namespace: 'shop', metricName: 'held' }), 0.3);
  t.equal(late.code, 'DEADLINE_EXCEEDED');
  await eventually('the handler told', async () => (held[0]?.aborted ? true : undefined));
  t.pass('the handler\'s signal aborted at the deadline');

  t.equal((await call('/api.MetricsService/Nope', '')).code, 'UNIMPLEMENTED', 'an unknown method');
  t.equal((await call(GET_METRICS_PATH, encode({ name: 'web', namespace: 'shop', metricName: 'again' }))).code, 'OK', 'and the connection serves on');
});

t.test('the C core with a client certificate from another CA is refused', async (t) => {
  const handler: MetricsHandler = { getMetrics: async (ref) => listOf(ref.metricName, '1') };
  const { port } = await startTestChannelServer(t, pki, handler);
  const refused = await cCoreClient(port, pki.foreignAdmin)(GET_METRICS_PATH, encode({ name: 'web', namespace: 'shop', metricName: 'x' }), 3);
  t.equal(refused.code, 'UNAVAILABLE', refused.details);
  const accepted = await cCoreClient(port, pki.tls)(GET_METRICS_PATH, encode({ name: 'web', namespace: 'shop', metricName: 'x' }));
  t.equal(accepted.code, 'OK', 'a client from the right CA, same server');
});

t.test('our adapter calls the C core as KEDA\'s operator: values, statuses, and no MetricsBatch (each query as GetMetrics)', async (t) => {
  const answer = listOf('s0-queue', '42');
  const { port, lines } = await cCoreServer(answer);
  t.ok(port > 0, `the C core listens on ${port}`);
  const received: ScaledObjectRef[] = [];
  void (async () => {
    for (;;) {
      const line = await lines.next();
      if (line.done) return;
      const { method, request } = JSON.parse(line.value) as { method: string; request: string };
      if (method === GET_METRICS_PATH) received.push(codec.requestDeserialize(Buffer.from(request, 'hex')) as ScaledObjectRef);
    }
  })();

  const ask = await adapterClient(t, port);

  t.match(await ask('s0-queue'), answer, 'a lone query');
  const together = await Promise.all(['a', 'bb', 'ccc'].map(ask));
  t.match(together, [answer, answer, answer], 'queries asked together: the batch is UNIMPLEMENTED there, each goes as GetMetrics');
  const err = await ask('missing').catch((e: CallError) => e);
  t.match(err, { code: status.NOT_FOUND, details: 'no such metric' }, 'the C core\'s status reaches us');
  await eventually('every query seen by the C core', async () => (received.length >= 5 ? true : undefined));
  t.strictSame(received.map((r) => r.metricName).sort(), ['a', 'bb', 'ccc', 'missing', 's0-queue'], 'each query arrived as its own GetMetrics, fields intact');
  t.strictSame(received[0], { name: 'web', namespace: 'shop', metricName: 's0-queue' });
});

// node:http2 assumes a limit of 100 streams only until the server's first SETTINGS (calls wait for
// it); a SETTINGS without a limit, as grpc-go (KEDA's operator) and the C core send it, lifts it.
t.test('150 calls open at once against a server announcing no limit of streams: all reach it together', async (t) => {
  const together = 150;
  const { port, lines } = await cCoreServer(listOf('s0-queue', '7'), together);
  void (async () => {
    while (!(await lines.next()).done);
  })();
  const ask = await adapterClient(t, port, 15_000);
  const outcomes = await Promise.all(Array.from({ length: together }, (_, i) => ask(`held-${i}`).then(() => 'OK', (err: CallError) => `${err.code} ${err.details}`)));
  t.strictSame(outcomes.filter((o) => o !== 'OK'), [], `all ${together} answered, none left waiting for a stream`);
});
