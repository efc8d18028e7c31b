// The bench's figures: one JSON document, and a table of it for people.
import { mkdir, writeFile } from 'node:fs/promises';
import type { Latency, OpenLoopResult, RunResult } from './load.js';
import type { ServerStats } from './servers.js';

export type Target = 'baseline' | 'full path' | 'full path, cached' | 'adapter, file source' | 'floor chain';

/** One server process's share of a run. */
export interface ProcessUse {
  name: string;
  /** CPU (user + system) per answered request, microseconds. */
  cpuUsPerRequest: number;
  /** CPU time / wall time: 1.0 is one core busy. */
  cpuCores: number;
  rssBytes: number;
  maxRssBytes: number;
}

/** Who used the CPU over a run. */
export interface Usage {
  processes: ProcessUse[];
  /** Server CPU (user + system, every server process of the target) per answered request, microseconds. */
  serverCpuUsPerRequest: number;
  /** Server CPU time / wall time: 1.0 is one core busy. */
  serverCpuCores: number;
  /** This (load-generating) process's CPU / wall time, to see whether the generator was the limit. */
  generatorCpuCores: number;
  /** Everything else on the machine (other processes, kernel) over the run; NaN off Linux. */
  otherCpuCores: number;
}

export interface ThroughputRun extends RunResult, Usage {
  target: Target;
  /** Sum over the target's server processes. */
  serverRssBytes: number;
}

/** One target against the mean of the baseline runs just before and just after it. */
export interface Comparison {
  target: Target;
  rps: number;
  baselineRps: number;
  ratio: number;
  /** Baseline server CPU per request / the target's: the ratio a CPU-bound server would reach, less sensitive to a busy box. */
  cpuRatio: number;
  goal: number;
  meetsTarget: boolean;
}

export interface ColdStart {
  forkToListeningMs: number;
  forkToReadyMs: number;
  /** Half a second after its first answer, before any quiet interval. */
  afterStartUp?: ServerStats;
  /** After its first idle heap trim. */
  idle: ServerStats;
  afterThroughput: ServerStats;
  afterDistinct: ServerStats;
}

export interface BurstRun extends RunResult, Usage {
  label: string;
}

export interface BenchReport {
  timestamp: string;
  machine: { cpus: number; model: string; platform: string; release: string; totalMemBytes: number; loadavgAtStart: number[] };
  node: string;
  client: string;
  settings: Record<string, number | string>;
  /** The machine before the bench started (see SETTINGS.quietCores). */
  quietAtStart: { waitedMs: number; busyCores: number; quiet: boolean };
  topology: string;
  responseBytes: { fullPath: number; fileSource: number; baseline: number; contentType: string };
  throughput: {
    runs: ThroughputRun[];
    baselineMeanRps: number;
    /** (max - min) / mean of the baseline runs: above ~10% the machine was not quiet and the ratios are rough. */
    baselineSpread: number;
    fullPath: Comparison;
    /** The same path with `useCachedMetrics: true`: no upstream fetch per query. */
    fullPathCached: Comparison;
    fileSource: Comparison;
    /** The full path's hops made of bare parts: what the uncached target's design can reach here (a reference, not a target). */
    floorChain: Comparison;
  };
  openLoop: OpenLoopResult & Usage & { p99TargetMs: number; meetsTarget: boolean };
  openLoopCached: OpenLoopResult & Usage & { p99TargetMs: number; meetsTarget: boolean };
  openLoopFloor: OpenLoopResult & Usage;
  distinctMetrics: { metrics: number; bursts: BurstRun[] };
  coldStart: { operator: ColdStart; adapter: ColdStart & { forkToFirstMetricMs: number } };
  rotation: {
    rotations: number;
    connections: number;
    afterSwitchMs: number;
    /** From the start of the write into the projected dir to the end of the first new handshake that got the new serial. */
    switchMs: number[];
    minMs: number;
    medianMs: number;
    maxMs: number;
    loop: RunResult;
    /** CPU used by everything but the servers and the generator during the loop. */
    otherCpuCores: number;
    probes: number;
    probeErrors: number;
    probeErrorSamples: string[];
    /** A brand-new client (new connections) got 200 after the last rotation. */
    freshClientOk: boolean;
    meetsTarget: boolean;
  };
  /** f. start-up and the adapter's memory, each against its target. */
  startupAndMemory: {
    help: { runsMs: number[]; medianMs: number; targetMs: number; meetsTarget: boolean };
    fileSourceReady: { ms: number; targetMs: number; meetsTarget: boolean };
    adapterIdleRss: { bytes: number; targetBytes: number; meetsTarget: boolean };
    /** The adapter's max RSS over the closed-loop runs and the distinct-metrics bursts. */
    adapterLoadRss: { bytes: number; targetBytes: number; meetsTarget: boolean };
  };
  valid: boolean;
  problems: string[];
  runTimeMs: number;
}

const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const mib = (b: number) => `${f(b / 2 ** 20, 1)} MiB`;
const lat = (l: Latency) => [f(l.p50Ms, 3), f(l.p99Ms, 3), f(l.p999Ms, 3), f(l.maxMs, 3)];
const pct = (x: number) => `${f(x * 100, 1)}%`;

function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

const perProcess = (ps: { name: string; cpuUsPerRequest: number }[]) => ps.map((p) => `${p.name} ${f(p.cpuUsPerRequest, 1)}`).join(' + ');

export function formatReport(r: BenchReport): string {
  const out: string[] = [];
  out.push(`keda-ts benchmark  ${r.timestamp}`);
  out.push(`machine: ${r.machine.cpus} x ${r.machine.model}, ${r.machine.platform} ${r.machine.release}, load average ${r.machine.loadavgAtStart.map((l) => f(l)).join(' ')}; node ${r.node}; client ${r.client}`);
  out.push(`topology: ${r.topology}`);
  const q = r.quietAtStart;
  out.push(`machine before start: ${f(q.busyCores)} cores busy${q.quiet ? '' : ` after waiting ${f(q.waitedMs / 1e3, 1)} s: NOT QUIET, every figure is rough`}`);
  out.push(`response: ${r.responseBytes.fullPath} bytes full path, ${r.responseBytes.fileSource} bytes file source (${r.responseBytes.contentType}); baseline ${r.responseBytes.baseline} bytes (the full path's)`);
  out.push('');

  out.push(`a. closed loop, ${r.settings.connections} connections, ${r.settings.warmupMs} ms warm-up + ${r.settings.durationMs} ms measured, each run`);
  const t = r.throughput;
  out.push(
    table(
      ['run', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'srv CPU µs/req', 'srv cores', 'gen cores', 'other cores', 'srv RSS'],
      t.runs.map((x, i) => [
        `${i + 1}. ${x.target}`,
        f(x.rps, 0),
        ...lat(x.latency),
        x.errors,
        f(x.serverCpuUsPerRequest, 1),
        f(x.serverCpuCores),
        f(x.generatorCpuCores),
        f(x.otherCpuCores),
        mib(x.serverRssBytes),
      ]),
    ),
  );
  out.push('');
  out.push(
    table(
      ['run', 'process', 'CPU µs/req', 'cores', 'RSS', 'max RSS'],
      t.runs.flatMap((x, i) => x.processes.map((p) => [`${i + 1}. ${x.target}`, p.name, f(p.cpuUsPerRequest, 1), f(p.cpuCores), mib(p.rssBytes), mib(p.maxRssBytes)])),
    ),
  );
  const cmp = (c: Comparison, what: string) =>
    `${what} = ${f(c.rps, 0)} / ${f(c.baselineRps, 0)} = ${pct(c.ratio)}  (target >= ${Math.round(c.goal * 100)}%: ${c.meetsTarget ? 'MET' : 'MISSED'}); server CPU per request baseline/${c.target} = ${pct(c.cpuRatio)}`;
  out.push(cmp(t.fullPath, 'FULL PATH / baseline'));
  out.push(cmp(t.fullPathCached, 'FULL PATH, useCachedMetrics / baseline'));
  out.push(cmp(t.fileSource, 'secondary: adapter with file source / baseline (the adapter\'s own cost, no gRPC, no operator)'));
  const fl = t.floorChain;
  out.push(
    `reference: FLOOR CHAIN / baseline = ${f(fl.rps, 0)} / ${f(fl.baselineRps, 0)} = ${pct(fl.ratio)}; server CPU per request baseline/floor = ${pct(fl.cpuRatio)} ` +
      `(the full path's hops of bare parts: the most this design reaches here; the full path, uncached, reaches ${pct(t.fullPath.ratio / fl.ratio)} of it)`,
  );
  out.push('(each ratio against the mean of the baseline runs just before and after it; the CPU ratio is what the req/s ratio would be with the servers as the only limit)');
  const busy = t.runs.filter((x) => x.otherCpuCores > 0.25).map((x) => `${t.runs.indexOf(x) + 1}. ${x.target}`);
  if (busy.length > 0) out.push(`warning: other work used more than a quarter of a core during ${busy.join(', ')}: those figures are low`);
  if (t.baselineSpread > 0.1) out.push(`warning: the baseline runs differ by ${f(t.baselineSpread * 100, 0)}%: something else was using the CPU, the ratios are rough`);
  out.push('');

  const o = r.openLoop;
  const oc = r.openLoopCached;
  out.push(`b. open loop against the full path, ${o.targetRps} req/s for ${r.settings.openDurationMs} ms (latency from scheduled send)`);
  out.push(
    table(
      ['', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'srv CPU µs/req', 'other cores'],
      [
        ['full path', f(o.rps, 0), ...lat(o.latency), o.errors, `${f(o.serverCpuUsPerRequest, 1)} (${perProcess(o.processes)})`, f(o.otherCpuCores)],
        ['(generator send lag)', '', ...lat(o.sendLag), '', '', ''],
        ['full path, cached', f(oc.rps, 0), ...lat(oc.latency), oc.errors, `${f(oc.serverCpuUsPerRequest, 1)} (${perProcess(oc.processes)})`, f(oc.otherCpuCores)],
        ['(generator send lag)', '', ...lat(oc.sendLag), '', '', ''],
        ['floor chain (reference)', f(r.openLoopFloor.rps, 0), ...lat(r.openLoopFloor.latency), r.openLoopFloor.errors, `${f(r.openLoopFloor.serverCpuUsPerRequest, 1)} (${perProcess(r.openLoopFloor.processes)})`, f(r.openLoopFloor.otherCpuCores)],
        ['(generator send lag)', '', ...lat(r.openLoopFloor.sendLag), '', '', ''],
      ],
    ),
  );
  out.push(
    `p99 ${f(o.latency.p99Ms, 3)} ms  (target < ${o.p99TargetMs} ms: ${o.meetsTarget ? 'MET' : 'MISSED'}); with useCachedMetrics p99 ${f(oc.latency.p99Ms, 3)} ms (${oc.meetsTarget ? 'MET' : 'MISSED'}); ` +
      `floor chain p99 ${f(r.openLoopFloor.latency.p99Ms, 3)} ms (reference)`,
  );
  out.push('');

  const d = r.distinctMetrics;
  out.push(`c. ${d.metrics} distinct metrics (${d.metrics} ScaledObjects, one metrics-api trigger each) requested at once over ${r.settings.connections} connections, full path`);
  out.push(
    table(
      ['', 'all served ms', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'srv CPU µs/req', 'other cores'],
      d.bursts.map((b) => [b.label, f(b.elapsedMs, 1), ...lat(b.latency), b.errors, `${f(b.serverCpuUsPerRequest, 1)} (${perProcess(b.processes)})`, f(b.otherCpuCores)]),
    ),
  );
  out.push('');

  const c = r.coldStart;
  out.push('d. cold start (fork -> plain-HTTP /readyz 200, polled every 2 ms), operator first, then the adapter');
  out.push(
    table(
      ['', 'fork -> listening', 'fork -> /readyz 200', 'fork -> first metric', 'RSS idle', 'RSS after a.', 'RSS after c.', 'max RSS'],
      [
        ['operator', `${f(c.operator.forkToListeningMs, 0)} ms`, `${f(c.operator.forkToReadyMs, 0)} ms`, '', mib(c.operator.idle.rss), mib(c.operator.afterThroughput.rss), mib(c.operator.afterDistinct.rss), mib(c.operator.afterDistinct.maxRss)],
        ['adapter', `${f(c.adapter.forkToListeningMs, 0)} ms`, `${f(c.adapter.forkToReadyMs, 0)} ms`, `${f(c.adapter.forkToFirstMetricMs, 0)} ms`, mib(c.adapter.idle.rss), mib(c.adapter.afterThroughput.rss), mib(c.adapter.afterDistinct.rss), mib(c.adapter.afterDistinct.maxRss)],
      ],
    ),
  );
  out.push('');

  const e = r.rotation;
  out.push(
    `e. serving-certificate rotation under load: ${e.rotations} new certificates (same CA) written to the adapter's kubelet-style cert dir while ${e.connections} connections loop on the full path, ${e.afterSwitchMs} ms of loop after each switch`,
  );
  out.push(
    table(
      ['write -> new handshake sees new serial', 'min', 'median', 'max', 'each'],
      [['', `${f(e.minMs, 0)} ms`, `${f(e.medianMs, 0)} ms`, `${f(e.maxMs, 0)} ms`, e.switchMs.map((x) => f(x, 0)).join(', ')]],
    ),
  );
  out.push(
    `loop: ${e.loop.ok} requests ok over ${f(e.loop.elapsedMs / 1e3, 1)} s (${f(e.loop.rps, 0)} req/s, p99 ${f(e.loop.latency.p99Ms, 3)} ms, max ${f(e.loop.latency.maxMs, 3)} ms), ${e.loop.errors} failed (target 0: ${e.meetsTarget ? 'MET' : 'MISSED'}); ` +
      `${e.probes} probe handshakes, ${e.probeErrors} failed; fresh client after the last rotation: ${e.freshClientOk ? 'ok' : 'FAILED'}; other cores ${f(e.otherCpuCores)}`,
  );
  out.push('');

  const sm = r.startupAndMemory;
  const verdict = (ok: boolean) => (ok ? 'MET' : 'MISSED');
  out.push('f. start-up and the adapter\'s memory');
  out.push(`keda-ts --help, a new process each time: median ${f(sm.help.medianMs, 0)} ms of ${sm.help.runsMs.map((x) => f(x, 0)).join(', ')}  (target < ${sm.help.targetMs} ms: ${verdict(sm.help.meetsTarget)})`);
  out.push(`adapter on the file source, fork -> /readyz 200: ${f(sm.fileSourceReady.ms, 0)} ms  (target < ${sm.fileSourceReady.targetMs} ms: ${verdict(sm.fileSourceReady.meetsTarget)})`);
  out.push(`adapter RSS idle ${mib(sm.adapterIdleRss.bytes)}  (target < ${mib(sm.adapterIdleRss.targetBytes)}: ${verdict(sm.adapterIdleRss.meetsTarget)}); under load (max over a. and c.) ${mib(sm.adapterLoadRss.bytes)}  (target < ${mib(sm.adapterLoadRss.targetBytes)}: ${verdict(sm.adapterLoadRss.meetsTarget)})`);
  out.push('');

  out.push(`run time ${f(r.runTimeMs / 1e3, 1)} s; ${r.valid ? 'all requests answered as expected' : `INVALID: ${r.problems.join('; ')}`}`);
  return out.join('\n');
}

export async function writeReport(r: BenchReport, file: URL): Promise<void> {
  await mkdir(new URL('.', file), { recursive: true });
  await writeFile(file, JSON.stringify(r, null, 2) + '\n');
}
