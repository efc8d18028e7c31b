// Benchmark of the metric path, every server in a child process on 127.0.0.1, driven from this
// process. It prints a table, writes bench/results/latest.json and stops by itself (about 2.5 min).
//
// The FULL path is what kube-apiserver's HPA requests travel in a cluster: adapter (front-proxy
// client certificate + X-Remote-* headers, TLS 1.3) -> gRPC over mutual TLS 1.3 -> operator ->
// metrics-api scaler -> a plain-HTTP JSON upstream on 127.0.0.1, in a child of its own (as it
// would be elsewhere in a cluster: its CPU and memory are not the operator's). It is compared with a bare Fastify TLS 1.3 route answering the
// same bytes (the baseline); the adapter alone on its file source is a secondary line. The floor
// chain is the full path's hops made of bare parts (Fastify route -> bare node:http2 gRPC call with
// mutual TLS 1.3 -> bare server -> the same upstream): what this design can reach on this machine,
// printed next to the uncached targets it bounds.
//
//   a. closed loop: baseline, full path, baseline, full path with useCachedMetrics, baseline, adapter with file source, baseline,
//      floor chain, baseline
//   b. open loop at 1,000 req/s: full path, plain and with useCachedMetrics; floor chain
//   c. 1,000 distinct metrics (1,000 ScaledObjects) at once, full path, twice (scalers cold, warm)
//   d. cold start of the operator and the adapter
//   e. serving-certificate rotation in the adapter's kubelet-style cert dir under a closed loop
//
//   node dist-bench/bench/run.js [--client=undici|https] [--cpu-prof]
//
// --client: undici (default, Pool.dispatch) or node:https with a keep-alive Agent. On the 2-core
//   dev box undici drove the baseline to ~48-59k req/s from about one core; node:https managed
//   ~16k req/s from a similar share, so with it the generator, not the server, sets the figure.
// --cpu-prof: each server child writes a V8 CPU profile (adapter.cpuprofile, operator.cpuprofile,
//   adapter-file.cpuprofile, baseline.cpuprofile) into bench/results/prof/, and the top self-time
//   functions of the adapter and the operator are printed; the figures are then a little lower.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { issueCertificate } from '../src/certs/x509.js';
import { dialedServiceNames } from '../src/k8s/service-names.js';
import { createClient, type Client, type ClientKind, type Reply } from './client.js';
import { CACHED_METRIC, DISTINCT_METRICS, METRIC_VALUE, THROUGHPUT_METRIC, createFixtures, distinctMetric, metricPath } from './fixtures.js';
import { burst, closedLoop, openLoop, type Check, type RunResult } from './load.js';
import { busyCores, machineCpu, waitForQuiet, type CpuSnapshot } from './machine.js';
import { formatProfile, summarizeProfile } from './profile.js';
import { formatReport, writeReport, type BenchReport, type BurstRun, type Comparison, type Target, type ThroughputRun } from './report.js';
import { waitForSerial, type ProbeTls } from './rotation.js';
import { childEnv, forkServer, freePort, waitForIdleTrim, waitForReady, type ChildSpec, type ServerChild, type ServerStats } from './servers.js';

const SETTINGS = {
  connections: 32,
  warmupMs: 2_000,
  durationMs: 8_000,
  maxRequestsPerRun: 2_000_000,
  openRate: 1_000,
  openDurationMs: 10_000,
  throughputTarget: 0.6,
  /** The full path when the operator asks the upstream on every query (no useCachedMetrics): issue 12's 30%. */
  uncachedThroughputTarget: 0.3,
  p99TargetMs: 5,
  rotations: 5,
  rotationConnections: 8,
  rotationPollMs: 10,
  rotationAfterSwitchMs: 2_000,
  rotationSwitchTimeoutMs: 10_000,
  /** Before starting, wait (at most quietMaxMs) for a second with under quietCores cores busy. */
  quietCores: 0.3,
  quietMaxMs: 10_000,
  /** Whatever happens, the bench ends by then. */
  watchdogMs: 240_000,
  /** Start-up and memory targets (issue 12): `keda-ts --help`, the adapter on the file source, the adapter's RSS. */
  helpTargetMs: 300,
  helpRuns: 5,
  fileSourceReadyTargetMs: 500,
  adapterIdleRssTargetBytes: 80 * 2 ** 20,
  adapterLoadRssTargetBytes: 150 * 2 ** 20,
};
const TOPOLOGY =
  'full path = load generator -> adapter child (TLS 1.3, front-proxy client cert + X-Remote-User/Group, --metrics-source=operator) ' +
  '-> gRPC mutual TLS 1.3 -> operator child -> metrics-api scaler -> plain-HTTP JSON upstream on 127.0.0.1 in its own child ' +
  '(operator CPU/RSS do not include the upstream; the upstream shares the 2 cores). baseline = bare Fastify TLS 1.3 route in its own child, same bytes. ' +
  'Server children run with the Dockerfile\'s ENV lines (NODE_OPTIONS among them) and without NODE_EXTRA_CA_CERTS, as in the container image.';
const RESULTS = new URL('../../bench/results/', import.meta.url);
const HPA_HEADERS = {
  'x-remote-user': 'system:serviceaccount:kube-system:horizontal-pod-autoscaler',
  'x-remote-group': 'system:masters',
};
const METRIC_ROUTE = '/apis/external.metrics.k8s.io/v1beta1/namespaces/:namespace/:metric';
const FIRST_METRIC_TIMEOUT_MS = 10_000;

const cpuMicros = (s: ServerStats) => s.cpu.user + s.cpu.system;
const statsOf = (servers: readonly ServerChild[]) => Promise.all(servers.map((s) => s.stats()));

interface Snapshot {
  servers: readonly ServerChild[];
  stats: ServerStats[];
  generator: NodeJS.CpuUsage;
  machine: CpuSnapshot | undefined;
  at: number;
}
async function snapshot(servers: readonly ServerChild[]): Promise<Snapshot> {
  const stats = await statsOf(servers);
  return { servers, stats, generator: process.cpuUsage(), machine: machineCpu(), at: performance.now() };
}
/** Who used the CPU between two snapshots: each server per answered request, the generator, everything else. */
function usage(before: Snapshot, after: Snapshot, ok: number) {
  const wallMs = after.at - before.at;
  const processes = before.servers.map((s, i) => {
    const cpu = cpuMicros(after.stats[i]!) - cpuMicros(before.stats[i]!);
    return { name: s.name, cpuUsPerRequest: cpu / ok, cpuCores: cpu / 1e3 / wallMs, rssBytes: after.stats[i]!.rss, maxRssBytes: after.stats[i]!.maxRss };
  });
  const serverCpuCores = processes.reduce((sum, p) => sum + p.cpuCores, 0);
  const gen = after.generator.user + after.generator.system - before.generator.user - before.generator.system;
  const generatorCpuCores = gen / 1e3 / wallMs;
  return {
    processes,
    serverCpuUsPerRequest: processes.reduce((sum, p) => sum + p.cpuUsPerRequest, 0),
    serverCpuCores,
    generatorCpuCores,
    otherCpuCores: Math.max(0, busyCores(before.machine, after.machine) - serverCpuCores - generatorCpuCores),
  };
}

/** Wall time of `keda-ts --help` (the CLI as the image runs it), each run a new process. */
async function helpWallMs(runs: number): Promise<number[]> {
  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [cli, '--help'], { env: childEnv(), stdio: 'ignore' });
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`keda-ts --help exited with ${code}`))));
    });
    times.push(performance.now() - started);
  }
  return times;
}

function startupAndMemory(helpMs: number[], fileSourceReadyMs: number, adapterIdleRss: number, adapterLoadRss: number): BenchReport['startupAndMemory'] {
  const s = SETTINGS;
  return {
    help: { runsMs: helpMs, medianMs: median(helpMs), targetMs: s.helpTargetMs, meetsTarget: median(helpMs) < s.helpTargetMs },
    fileSourceReady: { ms: fileSourceReadyMs, targetMs: s.fileSourceReadyTargetMs, meetsTarget: fileSourceReadyMs < s.fileSourceReadyTargetMs },
    adapterIdleRss: { bytes: adapterIdleRss, targetBytes: s.adapterIdleRssTargetBytes, meetsTarget: adapterIdleRss < s.adapterIdleRssTargetBytes },
    adapterLoadRss: { bytes: adapterLoadRss, targetBytes: s.adapterLoadRssTargetBytes, meetsTarget: adapterLoadRss < s.adapterLoadRssTargetBytes },
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

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
  const say = (line: string) => process.stdout.write(`  ${line}\n`);
  const quiet = await waitForQuiet({ cores: SETTINGS.quietCores, windowMs: 1_000, maxMs: SETTINGS.quietMaxMs });
  say(`machine ${quiet.quiet ? 'quiet' : 'NOT quiet'}: ${quiet.busyCores.toFixed(2)} cores busy (waited ${(quiet.waitedMs / 1e3).toFixed(1)} s)`);

  const fx = await createFixtures();
  const children: ServerChild[] = [];
  const clients: Client[] = [];
  const profDir = fileURLToPath(new URL('prof/', RESULTS));
  const execArgv = (name: string) => (args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []);
  const fork = async (name: string, spec: ChildSpec) => {
    const c = await forkServer(name, spec, { execArgv: execArgv(name) });
    children.push(c);
    return c;
  };
  /** d. cold start: fork -> /readyz 200 on the plain-HTTP port, polled from the moment of the fork. */
  const coldStart = async (name: string, spec: ChildSpec & { metricsPort: number }) => {
    const listening = fork(name, spec).then((c) => ({ c, at: performance.now() }));
    const [{ c, at }, readyAt] = await Promise.all([listening, waitForReady(spec.metricsPort)]);
    return { child: c, forkToListeningMs: at - c.forkedAt, forkToReadyMs: readyAt - c.forkedAt };
  };

  try {
    const pem = (name: string) => readFile(join(fx.pkiDir, name));
    const ca = await pem('ca.crt');
    const frontProxy = { cert: await pem('front-proxy-client.crt'), key: await pem('front-proxy-client.key') };
    const admin = { cert: await pem('admin.crt'), key: await pem('admin.key') };
    const hpaClient = (port: number, connections: number) => {
      const c = createClient({ kind, port, ca, ...frontProxy, headers: HPA_HEADERS, connections });
      clients.push(c);
      return c;
    };

    await fork('upstream', { role: 'upstream', port: fx.upstreamPort });
    // d. the operator first (the adapter dials it), then the adapter, one at a time.
    const operatorStart = await coldStart('operator', {
      role: 'operator',
      certDir: fx.pkiDir,
      scaledObjectsFile: fx.scaledObjectsFile,
      caDir: fx.caDir,
      metricsPort: await freePort(),
    });
    const operator = operatorStart.child;
    const adapterMetricsPort = await freePort();
    const adapterStart = await coldStart('adapter', {
      role: 'adapter',
      pkiDir: fx.pkiDir,
      certDir: fx.adapterCerts.dir,
      metricsPort: adapterMetricsPort,
      source: { kind: 'operator', address: `localhost:${operator.port}` },
    });
    const adapter = adapterStart.child;
    const fullPath = [adapter, operator];

    // The first metric through the whole path: gRPC connection, scaler built, upstream connection.
    const fullClient = hpaClient(adapter.port, SETTINGS.connections);
    const path = metricPath(THROUGHPUT_METRIC);
    let reference: Reply | undefined;
    while (performance.now() - adapter.forkedAt < FIRST_METRIC_TIMEOUT_MS) {
      reference = await fullClient.get(path).catch((err: unknown) => ({ status: 0, contentType: '', body: String(err) }));
      if (reference.status === 200) break;
      await sleep(5);
    }
    const forkToFirstMetricMs = performance.now() - adapter.forkedAt;
    if (reference?.status !== 200) throw new Error(`the full path answered ${reference?.status} for ${path}: ${reference?.body}`);
    if (!reference.body.includes(`"value":"${METRIC_VALUE}"`)) throw new Error(`the full path answered an unexpected value: ${reference.body}`);
    await sleep(500);
    const [adapterStartedUp] = await statsOf(fullPath);
    // Idle: once the adapter has had a quiet interval and given back what start-up left behind.
    if (!(await waitForIdleTrim(adapterMetricsPort))) problems.push('the adapter did not trim its heap within 30 s of quiet: its idle RSS is measured before any trim');
    const [adapterIdle, operatorIdle] = await statsOf(fullPath);
    say(`adapter RSS: ${(adapterStartedUp!.rss / 2 ** 20).toFixed(1)} MiB right after start-up, ${(adapterIdle!.rss / 2 ** 20).toFixed(1)} MiB idle`);

    const baseline = await fork('baseline', { role: 'baseline', pkiDir: fx.pkiDir, route: METRIC_ROUTE, body: reference.body, contentType: reference.contentType });
    // The same request bytes for every target: the identity headers are simply ignored by the baseline.
    const baselineClient = createClient({ kind, port: baseline.port, ca, ...admin, headers: HPA_HEADERS, connections: SETTINGS.connections });
    clients.push(baselineClient);
    const baselineReply = await baselineClient.get(path);
    if (baselineReply.body !== reference.body) throw new Error('baseline does not answer the full path\'s bytes');

    // The timestamp changes every second, never the length.
    const sameLengthAs =
      (ref: Reply): Check =>
      (r: Reply) =>
        r.status === 200 && r.body.length === ref.body.length ? true : `status ${r.status}, ${r.body.length} bytes: ${r.body.slice(0, 200)}`;
    const fullCheck = sameLengthAs(reference);

    // a. closed-loop throughput.
    const cachedPath = metricPath(CACHED_METRIC);
    const measure = async (target: Target, client: Client, servers: ServerChild[], check: Check, on = path): Promise<ThroughputRun> => {
      const loop = { path: on, check, concurrency: SETTINGS.connections, maxRequests: SETTINGS.maxRequestsPerRun };
      noteErrors(`${target} warm-up`, await closedLoop(client, { ...loop, durationMs: SETTINGS.warmupMs }));
      const before = await snapshot(servers);
      const r = await closedLoop(client, { ...loop, durationMs: SETTINGS.durationMs });
      const used = usage(before, await snapshot(servers), r.ok);
      noteErrors(`${target} throughput`, r);
      say(`${target}: ${r.rps.toFixed(0)} req/s, ${used.serverCpuUsPerRequest.toFixed(1)} µs server CPU per request`);
      return { target, ...r, ...used, serverRssBytes: used.processes.reduce((sum, p) => sum + p.rssBytes, 0) };
    };
    const runs: ThroughputRun[] = [];
    runs.push(await measure('baseline', baselineClient, [baseline], fullCheck));
    runs.push(await measure('full path', fullClient, fullPath, fullCheck));
    runs.push(await measure('baseline', baselineClient, [baseline], fullCheck));
    runs.push(await measure('full path, cached', fullClient, fullPath, fullCheck, cachedPath));
    runs.push(await measure('baseline', baselineClient, [baseline], fullCheck));
    // The adapter alone: its own child on the file source, started for its run only.
    const fileStart = await coldStart('adapter-file', {
      role: 'adapter',
      pkiDir: fx.pkiDir,
      certDir: fx.pkiDir,
      metricsPort: await freePort(),
      source: { kind: 'file', file: fx.metricsFile },
    });
    const fileAdapter = fileStart.child;
    const fileClient = hpaClient(fileAdapter.port, SETTINGS.connections);
    const fileReference = await fileClient.get(path);
    if (fileReference.status !== 200 || !fileReference.body.includes(`"value":"${METRIC_VALUE}"`)) {
      throw new Error(`the file-source adapter answered ${fileReference.status}: ${fileReference.body}`);
    }
    runs.push(await measure('adapter, file source', fileClient, [fileAdapter], sameLengthAs(fileReference)));
    await fileClient.close();
    await fileAdapter.stop();
    runs.push(await measure('baseline', baselineClient, [baseline], fullCheck));
    // The floor of the design: the full path's hops made of bare parts, same bytes in and out.
    const floorBack = await fork('floor-back', { role: 'floor-back', certDir: fx.pkiDir, upstreamPort: fx.upstreamPort });
    const floorFront = await fork('floor-front', {
      role: 'floor-front',
      pkiDir: fx.pkiDir,
      route: METRIC_ROUTE,
      body: reference.body,
      contentType: reference.contentType,
      backPort: floorBack.port,
      clientCertDir: fx.adapterCerts.dir,
    });
    const floor = [floorFront, floorBack];
    const floorClient = createClient({ kind, port: floorFront.port, ca, ...admin, headers: HPA_HEADERS, connections: SETTINGS.connections });
    clients.push(floorClient);
    runs.push(await measure('floor chain', floorClient, floor, fullCheck));
    runs.push(await measure('baseline', baselineClient, [baseline], fullCheck));
    await baselineClient.close();
    await baseline.stop();
    const [adapterAfterA, operatorAfterA] = await statsOf(fullPath);

    const baselineRuns = runs.filter((r) => r.target === 'baseline');
    const baselineRpss = baselineRuns.map((r) => r.rps);
    const baselineMeanRps = baselineRpss.reduce((s, x) => s + x, 0) / baselineRpss.length;
    const compare = (target: Target, goal = SETTINGS.throughputTarget): Comparison => {
      const i = runs.findIndex((r) => r.target === target);
      const around = [runs[i - 1]!, runs[i + 1]!];
      const baselineRps = (around[0]!.rps + around[1]!.rps) / 2;
      const baselineCpu = (around[0]!.serverCpuUsPerRequest + around[1]!.serverCpuUsPerRequest) / 2;
      const ratio = runs[i]!.rps / baselineRps;
      return {
        target,
        rps: runs[i]!.rps,
        baselineRps,
        ratio,
        cpuRatio: baselineCpu / runs[i]!.serverCpuUsPerRequest,
        goal,
        meetsTarget: ratio >= goal,
      };
    };

    // b. open loop at a fixed rate.
    const openBefore = await snapshot(fullPath);
    const open = await openLoop(fullClient, { path, check: fullCheck, rate: SETTINGS.openRate, durationMs: SETTINGS.openDurationMs });
    const openUse = usage(openBefore, await snapshot(fullPath), open.ok);
    noteErrors('open loop', open);
    say(`open loop: p99 ${open.latency.p99Ms} ms`);
    const openCachedBefore = await snapshot(fullPath);
    const openCached = await openLoop(fullClient, { path: cachedPath, check: fullCheck, rate: SETTINGS.openRate, durationMs: SETTINGS.openDurationMs });
    const openCachedUse = usage(openCachedBefore, await snapshot(fullPath), openCached.ok);
    noteErrors('open loop, cached', openCached);
    say(`open loop, cached: p99 ${openCached.latency.p99Ms} ms`);
    const openFloorBefore = await snapshot(floor);
    const openFloor = await openLoop(floorClient, { path, check: fullCheck, rate: SETTINGS.openRate, durationMs: SETTINGS.openDurationMs });
    const openFloorUse = usage(openFloorBefore, await snapshot(floor), openFloor.ok);
    noteErrors('open loop, floor chain', openFloor);
    say(`open loop, floor chain: p99 ${openFloor.latency.p99Ms} ms`);
    await floorClient.close();
    await Promise.all(floor.map((c) => c.stop()));

    // c. every ScaledObject's metric at once, as 1,000 HPAs syncing together: first with every
    // scaler built on demand (as after an operator restart), then again with them all warm.
    const distinctRequests = Array.from({ length: DISTINCT_METRICS }, (_, i) => {
      const m = distinctMetric(i);
      const expected = `"metricName":"${m.name}"`;
      return { path: metricPath(m), check: (r: Reply) => (r.status === 200 && r.body.includes(expected) ? true : `status ${r.status}: ${r.body.slice(0, 200)}`) };
    });
    const bursts: BurstRun[] = [];
    for (const label of ['scalers cold', 'scalers warm']) {
      const before = await snapshot(fullPath);
      const b = await burst(fullClient, distinctRequests);
      const used = usage(before, await snapshot(fullPath), b.ok);
      noteErrors(`distinct metrics, ${label}`, b);
      bursts.push({ label, ...b, ...used });
      say(`${DISTINCT_METRICS} distinct metrics, ${label}: ${b.elapsedMs.toFixed(0)} ms`);
    }
    const [adapterAfterC, operatorAfterC] = await statsOf(fullPath);
    // f. start-up: the CLI alone (after the servers' runs, on a quieter machine).
    const helpMs = await helpWallMs(SETTINGS.helpRuns);

    // e. serving-certificate rotation under load.
    const caPem = { certPem: ca.toString('utf8'), keyPem: (await pem('ca.key')).toString('utf8') };
    const probeTls: ProbeTls = { ca, ...admin };
    const rotationClient = hpaClient(adapter.port, SETTINGS.rotationConnections);
    const rotationBefore = await snapshot(fullPath);
    const stopLoop = new AbortController();
    const loopCapMs = 2_000 + SETTINGS.rotations * (SETTINGS.rotationSwitchTimeoutMs + SETTINGS.rotationAfterSwitchMs + 1_000);
    const rotationLoop = closedLoop(rotationClient, {
      path,
      check: fullCheck,
      concurrency: SETTINGS.rotationConnections,
      durationMs: loopCapMs,
      maxRequests: SETTINGS.maxRequestsPerRun,
      stop: stopLoop.signal,
    });
    const switchMs: number[] = [];
    let probes = 0;
    let probeErrors = 0;
    const probeErrorSamples: string[] = [];
    try {
      await sleep(500);
      for (let i = 0; i < SETTINGS.rotations; i++) {
        const leaf = await issueCertificate(caPem, {
          commonName: 'keda-ts',
          // localhost/127.0.0.1 for the bench, the Service names so the adapter's SAN self-check stays quiet.
          dnsNames: ['localhost', ...dialedServiceNames('keda-metrics-apiserver', 'keda')],
          ipAddresses: ['127.0.0.1'],
          // The adapter's key pair is also its client certificate towards the operator.
          extendedUsages: ['serverAuth', 'clientAuth'],
        });
        const writtenAt = performance.now();
        const writing = fx.adapterCerts.write({ 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem, 'ca.crt': caPem.certPem });
        const seen = await waitForSerial(adapter.port, probeTls, leaf.serialNumber, { intervalMs: SETTINGS.rotationPollMs, timeoutMs: SETTINGS.rotationSwitchTimeoutMs });
        await writing;
        probes += seen.probes;
        probeErrors += seen.errors;
        probeErrorSamples.push(...seen.errorSamples.slice(0, 5 - probeErrorSamples.length));
        if (seen.seenAt === undefined) {
          problems.push(`rotation ${i + 1}: no new handshake got serial ${leaf.serialNumber} within ${SETTINGS.rotationSwitchTimeoutMs} ms`);
          break;
        }
        switchMs.push(seen.seenAt - writtenAt);
        say(`rotation ${i + 1}: new certificate served after ${(seen.seenAt - writtenAt).toFixed(0)} ms`);
        await sleep(SETTINGS.rotationAfterSwitchMs);
      }
    } finally {
      stopLoop.abort();
    }
    const rotationRun = await rotationLoop;
    const rotationUse = usage(rotationBefore, await snapshot(fullPath), rotationRun.ok);
    noteErrors('rotation loop', rotationRun);
    if (probeErrors > 0) problems.push(`rotation: ${probeErrors} probe handshakes failed (${probeErrorSamples.join(' | ')})`);
    // New connections after the last rotation: the new certificate on the way in, the adapter's new gRPC channel on the way out.
    const freshClient = hpaClient(adapter.port, 1);
    const fresh = await freshClient.get(path).catch((err: unknown) => ({ status: 0, contentType: '', body: String(err) }));
    const freshClientOk = fullCheck(fresh) === true;
    if (!freshClientOk) problems.push(`rotation: a new client after the last rotation got ${fresh.status}: ${fresh.body.slice(0, 200)}`);

    const report: BenchReport = {
      timestamp: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', platform: platform(), release: release(), totalMemBytes: totalmem(), loadavgAtStart },
      node: process.version,
      client: kind,
      settings: { ...SETTINGS },
      quietAtStart: quiet,
      topology: TOPOLOGY,
      responseBytes: {
        fullPath: Buffer.byteLength(reference.body),
        fileSource: Buffer.byteLength(fileReference.body),
        baseline: Buffer.byteLength(baselineReply.body),
        contentType: reference.contentType,
      },
      throughput: {
        runs,
        baselineMeanRps,
        baselineSpread: (Math.max(...baselineRpss) - Math.min(...baselineRpss)) / baselineMeanRps,
        fullPath: compare('full path', SETTINGS.uncachedThroughputTarget),
        fullPathCached: compare('full path, cached'),
        fileSource: compare('adapter, file source'),
        floorChain: compare('floor chain', SETTINGS.uncachedThroughputTarget),
      },
      openLoop: {
        ...open,
        ...openUse,
        p99TargetMs: SETTINGS.p99TargetMs,
        meetsTarget: open.latency.p99Ms < SETTINGS.p99TargetMs,
      },
      openLoopCached: {
        ...openCached,
        ...openCachedUse,
        p99TargetMs: SETTINGS.p99TargetMs,
        meetsTarget: openCached.latency.p99Ms < SETTINGS.p99TargetMs,
      },
      openLoopFloor: { ...openFloor, ...openFloorUse },
      distinctMetrics: { metrics: DISTINCT_METRICS, bursts },
      coldStart: {
        operator: { forkToListeningMs: operatorStart.forkToListeningMs, forkToReadyMs: operatorStart.forkToReadyMs, idle: operatorIdle!, afterThroughput: operatorAfterA!, afterDistinct: operatorAfterC! },
        adapter: {
          forkToListeningMs: adapterStart.forkToListeningMs,
          forkToReadyMs: adapterStart.forkToReadyMs,
          forkToFirstMetricMs,
          afterStartUp: adapterStartedUp!,
          idle: adapterIdle!,
          afterThroughput: adapterAfterA!,
          afterDistinct: adapterAfterC!,
        },
      },
      rotation: {
        rotations: SETTINGS.rotations,
        connections: SETTINGS.rotationConnections,
        afterSwitchMs: SETTINGS.rotationAfterSwitchMs,
        switchMs,
        minMs: Math.min(...switchMs),
        medianMs: median(switchMs),
        maxMs: Math.max(...switchMs),
        loop: rotationRun,
        otherCpuCores: rotationUse.otherCpuCores,
        probes,
        probeErrors,
        probeErrorSamples,
        freshClientOk,
        meetsTarget: rotationRun.errors === 0 && switchMs.length === SETTINGS.rotations && freshClientOk,
      },
      startupAndMemory: startupAndMemory(helpMs, fileStart.forkToReadyMs, adapterIdle!.rss, Math.max(adapterAfterA!.maxRss, adapterAfterC!.maxRss)),
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
    if (args['cpu-prof']) {
      console.log(`\nCPU profiles of the server children in ${profDir}`);
      for (const name of ['adapter', 'operator']) {
        try {
          console.log(formatProfile(await summarizeProfile(join(profDir, `${name}.cpuprofile`))));
        } catch (err) {
          console.log(`${name}: no profile (${(err as Error).message})`);
        }
      }
    }
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
