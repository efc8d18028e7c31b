// The bench's figures: one JSON document, and a table of it for people.
import { mkdir, writeFile } from 'node:fs/promises';
import type { Latency, OpenLoopResult, RunResult } from './load.js';
import type { ServerStats } from './servers.js';

export interface ThroughputRun extends RunResult {
  target: 'baseline' | 'adapter';
  /** Server CPU (user + system) per answered request, microseconds. */
  serverCpuUsPerRequest: number;
  /** Server CPU time / wall time: 1.0 is one core busy. */
  serverCpuCores: number;
  /** This (load-generating) process's CPU / wall time, to see whether the generator was the limit. */
  generatorCpuCores: number;
  /** Everything else on the machine (other processes, kernel) over the run; NaN off Linux. */
  otherCpuCores: number;
  serverRssBytes: number;
  serverMaxRssBytes: number;
}

export interface BenchReport {
  timestamp: string;
  machine: { cpus: number; model: string; platform: string; release: string; totalMemBytes: number; loadavgAtStart: number[] };
  node: string;
  client: string;
  settings: Record<string, number | string>;
  responseBytes: { adapter: number; baseline: number; contentType: string };
  throughput: {
    runs: ThroughputRun[];
    baselineMeanRps: number;
    /** |baseline 1 - baseline 2| / mean: above ~10% the machine was not quiet and the ratio is rough. */
    baselineSpread: number;
    adapterRps: number;
    ratio: number;
    /** Baseline server CPU per request / adapter's: the ratio a CPU-bound server would reach, less sensitive to a busy box. */
    cpuRatio: number;
    target: number;
    meetsTarget: boolean;
  };
  openLoop: OpenLoopResult & { serverCpuUsPerRequest: number; p99TargetMs: number; meetsTarget: boolean };
  distinctMetrics: RunResult & { metrics: number; serverCpuUsPerRequest: number };
  coldStart: { forkToListeningMs: number; forkToReadyMs: number; idle: ServerStats; afterThroughput: ServerStats };
  valid: boolean;
  problems: string[];
  runTimeMs: number;
}

const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const mib = (b: number) => `${f(b / 2 ** 20, 1)} MiB`;
const lat = (l: Latency) => [f(l.p50Ms, 3), f(l.p99Ms, 3), f(l.p999Ms, 3), f(l.maxMs, 3)];

function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function formatReport(r: BenchReport): string {
  const out: string[] = [];
  out.push(`keda-ts adapter benchmark  ${r.timestamp}`);
  out.push(`machine: ${r.machine.cpus} x ${r.machine.model}, ${r.machine.platform} ${r.machine.release}, load average ${r.machine.loadavgAtStart.map((l) => f(l)).join(' ')}; node ${r.node}; client ${r.client}`);
  out.push(`response: ${r.responseBytes.adapter} bytes (${r.responseBytes.contentType}), baseline ${r.responseBytes.baseline} bytes`);
  out.push('');
  out.push(`a. closed loop, ${r.settings.connections} connections, ${r.settings.warmupMs} ms warm-up + ${r.settings.durationMs} ms measured`);
  out.push(
    table(
      ['run', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'srv CPU µs/req', 'srv cores', 'gen cores', 'other cores', 'srv RSS'],
      r.throughput.runs.map((x, i) => [
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
  const t = r.throughput;
  out.push(
    `adapter/baseline = ${f(t.adapterRps, 0)} / ${f(t.baselineMeanRps, 0)} = ${f(t.ratio * 100, 1)}%  (target >= ${t.target * 100}%: ${t.meetsTarget ? 'MET' : 'MISSED'})`,
  );
  out.push(`server CPU per request, baseline/adapter = ${f(t.cpuRatio * 100, 1)}% (what the ratio would be with the server as the only limit)`);
  const busy = t.runs.filter((x) => x.otherCpuCores > 0.25).map((x) => `${t.runs.indexOf(x) + 1}. ${x.target}`);
  if (busy.length > 0) out.push(`warning: other work used more than a quarter of a core during ${busy.join(', ')}: those figures are low`);
  if (t.baselineSpread > 0.1) {
    out.push(`warning: the two baseline runs differ by ${f(t.baselineSpread * 100, 0)}%: something else was using the CPU, the ratio is rough`);
  }
  out.push('');
  const o = r.openLoop;
  out.push(`b. open loop against the adapter, ${o.targetRps} req/s for ${r.settings.openDurationMs} ms (latency from scheduled send)`);
  out.push(
    table(
      ['', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'srv CPU µs/req'],
      [
        ['adapter', f(o.rps, 0), ...lat(o.latency), o.errors, f(o.serverCpuUsPerRequest, 1)],
        ['(generator send lag)', '', ...lat(o.sendLag), '', ''],
      ],
    ),
  );
  out.push(`p99 ${f(o.latency.p99Ms, 3)} ms  (target < ${o.p99TargetMs} ms: ${o.meetsTarget ? 'MET' : 'MISSED'})`);
  out.push('');
  const d = r.distinctMetrics;
  out.push(`c. ${d.metrics} distinct metrics requested at once over ${r.settings.connections} connections`);
  out.push(
    table(
      ['', 'all served ms', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'srv CPU µs/req'],
      [['adapter', f(d.elapsedMs, 1), ...lat(d.latency), d.errors, f(d.serverCpuUsPerRequest, 1)]],
    ),
  );
  out.push('');
  const c = r.coldStart;
  out.push('d. adapter cold start');
  out.push(
    table(
      ['fork -> listening', 'fork -> /readyz 200', 'RSS idle', 'RSS after a.', 'max RSS after a.'],
      [[`${f(c.forkToListeningMs, 0)} ms`, `${f(c.forkToReadyMs, 0)} ms`, mib(c.idle.rss), mib(c.afterThroughput.rss), mib(c.afterThroughput.maxRss)]],
    ),
  );
  out.push('');
  out.push(`run time ${f(r.runTimeMs / 1e3, 1)} s; ${r.valid ? 'all requests answered as expected' : `INVALID: ${r.problems.join('; ')}`}`);
  return out.join('\n');
}

export async function writeReport(r: BenchReport, file: URL): Promise<void> {
  await mkdir(new URL('.', file), { recursive: true });
  await writeFile(file, JSON.stringify(r, null, 2) + '\n');
}
