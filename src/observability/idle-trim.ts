// Gives memory back once the process has gone quiet. V8 sizes its heap for the busiest moment it
// has seen (start-up, a burst of queries) and, with nothing allocating afterwards, never runs the
// garbage collection that would shrink it again: a server that idles keeps its peak young
// generation (16 MB here) and the pages of its start-up garbage. When the event loop has been
// nearly idle for a whole check interval and the committed heap has grown since the last trim,
// one memory-reducing collection (V8's "last resort" flavour: compaction, smaller young
// generation, pages returned to the OS) runs; it pauses the process for a few tens of
// milliseconds, which is why it waits for a quiet moment and for a minimum interval between trims.
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void;

export interface IdleTrimOptions {
  /** How often the event loop's utilization is looked at (default 10 s). */
  checkEveryMs?: number;
  /** Busy share of the last interval under which the process counts as quiet (default 0.05). */
  quietUtilization?: number;
  /** Growth of the committed heap since the last trim that makes another worth its pause (default 4 MiB). */
  minGrowthBytes?: number;
  /** The shortest time between two trims (default 5 min): a process that keeps allocating regrows its young generation, and trimming it again and again would only cost pauses. */
  minIntervalMs?: number;
  log?: Logger;
  registry?: Registry;
}

export interface IdleTrim {
  /** Trims so far. */
  readonly trims: number;
  stop(): void;
}

/** Starts the checks; their timer never keeps the process alive. Without a usable gc(), a no-op that says so once. */
export function startIdleTrim(options: IdleTrimOptions = {}): IdleTrim {
  const checkEveryMs = options.checkEveryMs ?? 10_000;
  const quietUtilization = options.quietUtilization ?? 0.05;
  const minGrowthBytes = options.minGrowthBytes ?? 4 * 1024 * 1024;
  const minIntervalMs = options.minIntervalMs ?? 300_000;
  const gc = memoryReducingGc();
  if (!gc) {
    options.log?.info('idle memory trim is off: this runtime gives no gc() to call');
    return { trims: 0, stop: () => undefined };
  }
  const counted = options.registry ? trimMetrics(options.registry) : undefined;
  let window: EventLoopUtilization = performance.eventLoopUtilization();
  let committedAfterTrim = 0;
  let lastTrimAt = -Infinity;
  let trims = 0;

  const check = () => {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, window).utilization;
    window = now;
    const committed = getHeapStatistics().total_heap_size;
    if (busy >= quietUtilization || committed - committedAfterTrim < minGrowthBytes || performance.now() - lastTrimAt < minIntervalMs) return;
    const started = performance.now();
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const pauseMs = performance.now() - started;
    committedAfterTrim = getHeapStatistics().total_heap_size;
    lastTrimAt = performance.now();
    // The pause itself is not the process being busy.
    window = performance.eventLoopUtilization();
    trims++;
    counted?.trims.inc();
    counted?.pause.inc(pauseMs / 1e3);
    options.log?.debug({ committedBytesBefore: committed, committedBytesAfter: committedAfterTrim, pauseMs: Math.round(pauseMs) }, 'idle: heap trimmed');
  };
  const timer = setInterval(check, checkEveryMs);
  timer.unref();
  return {
    get trims() {
      return trims;
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * V8's gc(), without exposing it as a global: the flag makes the next context carry the gc
 * extension, and that context hands the function over. A process started with --expose-gc
 * already has it.
 */
function memoryReducingGc(): GcFunction | undefined {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as GcFunction;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    return typeof gc === 'function' ? (gc as GcFunction) : undefined;
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

function trimMetrics(registry: Registry) {
  return {
    trims: new Counter({ name: 'idle_heap_trims_total', help: 'Memory-reducing garbage collections run because the process was quiet', registers: [registry] }),
    pause: new Counter({ name: 'idle_heap_trim_pause_seconds_total', help: 'Time the process was paused by those collections', registers: [registry] }),
  };
}
