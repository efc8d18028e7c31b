// Benchmark of the adapter's hot path against a bare Fastify HTTPS server, both in child
// processes on 127.0.0.1, driven from this process. It prints a table, writes
// bench/results/latest.json and stops by itself (about 45 s).
//
//   node dist-bench/bench/run.js [--client=undici|https] [--cpu-prof]
//
// --client: undici (default, Pool.dispatch) or node:https with a keep-alive Agent. On the 2-core
//   dev box undici drove the baseline to ~48-59k req/s from about one core; node:https managed
//   ~16k req/s from a similar share, so with it the generator, not the server, sets the figure
//   (and flatters the adapter/baseline ratio: 70% vs 45-52% with undici).
// --cpu-prof: each server child writes a V8 CPU profile (adapter.cpuprofile, baseline.cpuprofile)
//   into bench/results/prof/; the figures are then a little lower.
import { readFile } from 'node:fs/promises';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, type Client, type ClientKind, type Reply } from './client.js';
import { DISTINCT_METRICS, THROUGHPUT_METRIC, createFixtures, distinctMetric, metricPath } from './fixtures.js';
import { burst, closedLoop, openLoop, type Check, type RunResult } from './load.js';
import { busyCores, machineCpu } from './machine.js';
import { formatReport, writeReport, type BenchReport, type ThroughputRun } from './report.js';
import { forkServer, freePort, waitForReady, type ServerChild, type ServerStats } from './servers.js';

const SETTINGS = {
  connections: 32,
  warmupMs: 2_000,
  durationMs: 8_000,
  maxRequestsPerRun: 2_000_000,
  openRate: 1_000,
  openDurationMs: 10_000,
  throughputTarget: 0.6,
  p99TargetMs: 5,
  /** Whatever happens, the bench ends by then. */
  watchdogMs: 180_000,
};
const RESULTS = new URL('../../bench/results/', import.meta.url);
const HPA_HEADERS = {
  'x-remote-user': 'system:serviceaccount:kube-system:horizontal-pod-autoscaler',
  'x-remote-group': 'system:masters',
};
const METRIC_ROUTE = '/apis/external.metrics.k8s.io/v1beta1/namespaces/:namespace/:metric';

const cpuMicros = (s: ServerStats) => s.cpu.user + s.cpu.system;

async function main(): Promise<number> {
  const { values: args } = parseArgs({ options: { client: { type: 'string', default: 'undici' }, 'cpu-prof': { type: 'boolean', default: false } } });
  if (args.client !== 'undici' && args.client !== 'https') throw new Error('--client must be undici or https');
  const kind: ClientKind = args.client;
  const began = performance.now();
  const loadavgAtStart = loadavg();
  const problems: string[] = [];
  const noteErrors = (what: string, r: RunResult) => {
    if (r.errors > 0) problems.push(`${what}: ${r.errors} failed requests (${r.errorSamples.join(' | ')})`);
    if (r.ok === 0) problems.push(`${what}: no request succeeded`);
  };

  const fx = await createFixtures();
  const children: ServerChild[] = [];
  const clients: Client[] = [];
  try {
    const pem = (name: string) => readFile(join(fx.pkiDir, name));
    const ca = await pem('ca.crt');

    // d. cold start: fork -> /readyz 200 on the plain-HTTP port, polled from the moment of the fork.
    const metricsPort = await freePort();
    const profDir = fileURLToPath(new URL('prof/', RESULTS));
    const execArgv = (role: string) => (args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${role}.cpuprofile`] : []);
    const adapterStarting = forkServer(
      { role: 'adapter', pkiDir: fx.pkiDir, metricsFile: fx.metricsFile, metricsPort },
      { execArgv: execArgv('adapter') },
    );
    const listening = adapterStarting.then((c) => {
      children.push(c);
      return { c, at: performance.now() };
    });
    const [adapter, readyAt] = await Promise.all([listening, waitForReady(metricsPort)]);
    const forkToListeningMs = adapter.at - adapter.c.forkedAt;
    const forkToReadyMs = readyAt - adapter.c.forkedAt;
    await sleep(500);
    const idle = await adapter.c.stats();

    const adapterClient = createClient({
      kind,
      port: adapter.c.port,
      ca,
      cert: await pem('front-proxy-client.crt'),
      key: await pem('front-proxy-client.key'),
      headers: HPA_HEADERS,
      connections: SETTINGS.connections,
    });
    clients.push(adapterClient);
    const path = metricPath(THROUGHPUT_METRIC);
    const reference = await adapterClient.get(path);
    if (reference.status !== 200) throw new Error(`adapter answered ${reference.status} for ${path}: ${reference.body}`);

    const baseline = await forkServer(
      { role: 'baseline', pkiDir: fx.pkiDir, route: METRIC_ROUTE, body: reference.body, contentType: reference.contentType },
      { execArgv: execArgv('baseline') },
    );
    children.push(baseline);
    // The same request bytes for both targets: the identity headers are simply ignored by the baseline.
    const baselineClient = createClient({
      kind,
      port: baseline.port,
      ca,
      cert: await pem('admin.crt'),
      key: await pem('admin.key'),
      headers: HPA_HEADERS,
      connections: SETTINGS.connections,
    });
    clients.push(baselineClient);
    const baselineReply = await baselineClient.get(path);
    if (baselineReply.body !== reference.body) throw new Error('baseline does not answer the adapter\'s bytes');

    // The adapter's timestamp changes every second, never the length.
    const sameAsReference: Check = (r: Reply) =>
      r.status === 200 && r.body.length === reference.body.length ? true : `status ${r.status}, ${r.body.length} bytes: ${r.body.slice(0, 200)}`;

    // a. closed-loop throughput: baseline, adapter, baseline.
    const runs: ThroughputRun[] = [];
    for (const [target, client, child] of [
      ['baseline', baselineClient, baseline],
      ['adapter', adapterClient, adapter.c],
      ['baseline', baselineClient, baseline],
    ] as const) {
      const loop = { path, check: sameAsReference, concurrency: SETTINGS.connections, maxRequests: SETTINGS.maxRequestsPerRun };
      noteErrors(`${target} warm-up`, await closedLoop(client, { ...loop, durationMs: SETTINGS.warmupMs }));
      const before = await child.stats();
      const genBefore = process.cpuUsage();
      const machineBefore = machineCpu();
      const r = await closedLoop(client, { ...loop, durationMs: SETTINGS.durationMs });
      const gen = process.cpuUsage(genBefore);
      const machineCores = busyCores(machineBefore, machineCpu());
      const after = await child.stats();
      noteErrors(`${target} throughput`, r);
      const serverCpu = cpuMicros(after) - cpuMicros(before);
      const serverCpuCores = serverCpu / 1e3 / r.elapsedMs;
      const generatorCpuCores = (gen.user + gen.system) / 1e3 / r.elapsedMs;
      runs.push({
        target,
        ...r,
        serverCpuUsPerRequest: serverCpu / r.ok,
        serverCpuCores,
        generatorCpuCores,
        otherCpuCores: Math.max(0, machineCores - serverCpuCores - generatorCpuCores),
        serverRssBytes: after.rss,
        serverMaxRssBytes: after.maxRss,
      });
      process.stdout.write(`  ${target}: ${r.rps.toFixed(0)} req/s\n`);
    }
    await baseline.stop();
    const afterThroughput = await adapter.c.stats();
    const baselineRuns = runs.filter((r) => r.target === 'baseline');
    const baselineMeanRps = baselineRuns.reduce((s, r) => s + r.rps, 0) / baselineRuns.length;
    const adapterRun = runs.find((r) => r.target === 'adapter')!;
    const adapterRps = adapterRun.rps;
    const baselineCpuUs = baselineRuns.reduce((s, r) => s + r.serverCpuUsPerRequest, 0) / baselineRuns.length;

    // b. open loop at a fixed rate.
    const openBefore = await adapter.c.stats();
    const open = await openLoop(adapterClient, { path, check: sameAsReference, rate: SETTINGS.openRate, durationMs: SETTINGS.openDurationMs });
    const openAfter = await adapter.c.stats();
    noteErrors('open loop', open);
    process.stdout.write(`  open loop: p99 ${open.latency.p99Ms} ms\n`);

    // c. every ScaledObject's metric at once, as 1,000 HPAs syncing together.
    const burstBefore = await adapter.c.stats();
    const distinct = await burst(
      adapterClient,
      Array.from({ length: DISTINCT_METRICS }, (_, i) => {
        const m = distinctMetric(i);
        const expected = `"metricName":"${m.name}"`;
        return { path: metricPath(m), check: (r: Reply) => (r.status === 200 && r.body.includes(expected) ? true : `status ${r.status}: ${r.body.slice(0, 200)}`) };
      }),
    );
    noteErrors('distinct metrics', distinct);
    const burstAfter = await adapter.c.stats();

    const report: BenchReport = {
      timestamp: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', platform: platform(), release: release(), totalMemBytes: totalmem(), loadavgAtStart },
      node: process.version,
      client: kind,
      settings: { ...SETTINGS },
      responseBytes: { adapter: Buffer.byteLength(reference.body), baseline: Buffer.byteLength(baselineReply.body), contentType: reference.contentType },
      throughput: {
        runs,
        baselineMeanRps,
        baselineSpread: Math.abs(baselineRuns[0]!.rps - baselineRuns[1]!.rps) / baselineMeanRps,
        adapterRps,
        ratio: adapterRps / baselineMeanRps,
        cpuRatio: baselineCpuUs / adapterRun.serverCpuUsPerRequest,
        target: SETTINGS.throughputTarget,
        meetsTarget: adapterRps / baselineMeanRps >= SETTINGS.throughputTarget,
      },
      openLoop: {
        ...open,
        serverCpuUsPerRequest: (cpuMicros(openAfter) - cpuMicros(openBefore)) / open.ok,
        p99TargetMs: SETTINGS.p99TargetMs,
        meetsTarget: open.latency.p99Ms < SETTINGS.p99TargetMs,
      },
      distinctMetrics: { ...distinct, metrics: DISTINCT_METRICS, serverCpuUsPerRequest: (cpuMicros(burstAfter) - cpuMicros(burstBefore)) / distinct.ok },
      coldStart: { forkToListeningMs, forkToReadyMs, idle, afterThroughput },
      valid: problems.length === 0,
      problems,
      runTimeMs: 0,
    };
    await Promise.all(clients.map((c) => c.close()));
    clients.length = 0;
    await Promise.all(children.map((c) => c.stop()));
    report.runTimeMs = performance.now() - began;
    console.log('');
    console.log(formatReport(report));
    const file = new URL('latest.json', RESULTS);
    await writeReport(report, file);
    console.log(`\nwritten to ${fileURLToPath(file)}`);
    if (args['cpu-prof']) console.log(`CPU profiles of the server children in ${profDir}`);
    return report.valid ? 0 : 1;
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled(children.map((c) => c.stop()));
    await fx.remove();
  }
}

setTimeout(() => {
  console.error(`benchmark still running after ${SETTINGS.watchdogMs} ms: giving up`);
  process.exit(1);
}, SETTINGS.watchdogMs).unref();

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('benchmark failed:', err);
    process.exit(1);
  },
);
