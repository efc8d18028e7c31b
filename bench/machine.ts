// The whole machine's CPU use, to tell a quiet run from one that shared the box with other work.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface CpuSnapshot {
  busy: number;
  total: number;
}

/** Linux /proc/stat aggregate line (clock ticks); undefined elsewhere. */
export function machineCpu(): CpuSnapshot | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Cores busy on the whole machine between two snapshots (NaN when unknown). */
export function busyCores(before: CpuSnapshot | undefined, after: CpuSnapshot | undefined): number {
  if (!before || !after || after.total === before.total) return NaN;
  return ((after.busy - before.busy) / (after.total - before.total)) * cpus().length;
}

/**
 * Waits, at most `maxMs`, for a `windowMs` window in which the whole machine keeps fewer than
 * `cores` cores busy: other work on a shared box moves every figure. Off Linux it does not wait.
 */
export async function waitForQuiet(o: { cores: number; windowMs: number; maxMs: number }): Promise<{ waitedMs: number; busyCores: number; quiet: boolean }> {
  const start = performance.now();
  let busy: number;
  do {
    const before = machineCpu();
    await new Promise((r) => setTimeout(r, o.windowMs));
    busy = busyCores(before, machineCpu());
    if (!(busy >= o.cores)) return { waitedMs: performance.now() - start, busyCores: busy, quiet: true };
  } while (performance.now() - start + o.windowMs <= o.maxMs);
  return { waitedMs: performance.now() - start, busyCores: busy, quiet: false };
}
