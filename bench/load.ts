// The load generator: closed loop, open loop (fixed rate) and one-shot burst, with latency
// histograms (node:perf_hooks HDR histograms, 3 significant digits, recorded in nanoseconds).
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import type { Client, Reply } from './client.js';

export interface Latency {
  count: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export interface RunResult {
  /** Answered as expected. */
  ok: number;
  /** Transport errors, unexpected status codes, unexpected bodies. */
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
  /** ok / elapsed. */
  rps: number;
  latency: Latency;
}

/** Whether an answer is the one expected; a string says what is wrong with it. */
export type Check = (r: Reply) => true | string;

const newHistogram = () => createHistogram({ lowest: 1, highest: 120e9, figures: 3 });
const recordMs = (h: RecordableHistogram, ms: number) => h.record(Math.max(1, Math.round(ms * 1e6)));

function summarize(h: RecordableHistogram): Latency {
  const ms = (ns: number) => Math.round(ns / 1e3) / 1e3;
  if (h.count === 0) return { count: 0, meanMs: NaN, p50Ms: NaN, p99Ms: NaN, p999Ms: NaN, maxMs: NaN };
  return { count: h.count, meanMs: ms(h.mean), p50Ms: ms(h.percentile(50)), p99Ms: ms(h.percentile(99)), p999Ms: ms(h.percentile(99.9)), maxMs: ms(h.max) };
}

class Tally {
  ok = 0;
  errors = 0;
  readonly samples: string[] = [];
  readonly latency = newHistogram();

  async send(client: Client, path: string, check: Check, startedAt: number): Promise<void> {
    let problem: string;
    try {
      const r = await client.get(path);
      const verdict = check(r);
      if (verdict === true) {
        recordMs(this.latency, performance.now() - startedAt);
        this.ok++;
        return;
      }
      problem = verdict;
    } catch (err) {
      problem = (err as Error).message;
    }
    this.errors++;
    if (this.samples.length < 5) this.samples.push(problem);
  }

  result(elapsedMs: number): RunResult {
    return { ok: this.ok, errors: this.errors, errorSamples: this.samples, elapsedMs, rps: (this.ok / elapsedMs) * 1e3, latency: summarize(this.latency) };
  }
}

/**
 * `concurrency` workers, each sending its next request as soon as the previous one is answered,
 * until `durationMs` has passed, `maxRequests` were sent, or `stop` is aborted (whichever first).
 */
export async function closedLoop(
  client: Client,
  o: { path: string; check: Check; concurrency: number; durationMs: number; maxRequests: number; stop?: AbortSignal },
): Promise<RunResult> {
  const tally = new Tally();
  const start = performance.now();
  const deadline = start + o.durationMs;
  let issued = 0;
  const worker = async () => {
    while (issued < o.maxRequests && performance.now() < deadline && !o.stop?.aborted) {
      issued++;
      await tally.send(client, o.path, o.check, performance.now());
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  return tally.result(performance.now() - start);
}

export interface OpenLoopResult extends RunResult {
  targetRps: number;
  /** Time from a request's scheduled send to the generator actually sending it (the generator's own lag). */
  sendLag: Latency;
}

/**
 * Requests scheduled by the wall clock at `rate`/s whatever the server does; latency is measured
 * from the scheduled send time, so a stalled server cannot hide its backlog (coordinated omission).
 */
export async function openLoop(client: Client, o: { path: string; check: Check; rate: number; durationMs: number }): Promise<OpenLoopResult> {
  const tally = new Tally();
  const lag = newHistogram();
  const total = Math.round((o.rate * o.durationMs) / 1e3);
  const interval = 1e3 / o.rate;
  const start = performance.now() + 1;
  const inFlight: Promise<void>[] = [];
  await new Promise<void>((done) => {
    let sent = 0;
    const pump = () => {
      const now = performance.now();
      while (sent < total && start + sent * interval <= now) {
        const scheduled = start + sent * interval;
        recordMs(lag, now - scheduled);
        inFlight.push(tally.send(client, o.path, o.check, scheduled));
        sent++;
      }
      if (sent < total) setTimeout(pump, Math.max(0, start + sent * interval - performance.now()));
      else done();
    };
    pump();
  });
  await Promise.all(inFlight);
  const elapsed = performance.now() - start;
  return { ...tally.result(elapsed), targetRps: o.rate, sendLag: summarize(lag) };
}

/** Every request started at once; latency of each from that common start. */
export async function burst(client: Client, requests: readonly { path: string; check: Check }[]): Promise<RunResult> {
  const tally = new Tally();
  const start = performance.now();
  await Promise.all(requests.map((r) => tally.send(client, r.path, r.check, start)));
  return tally.result(performance.now() - start);
}
