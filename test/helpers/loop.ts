// A client loop that runs for as long as a test changes things underneath it, counting failures.
export interface LoopResult {
  ok: number;
  failed: number;
  errors: string[];
}

export function clientLoop(call: () => Promise<number>, concurrency = 2): { stop(): Promise<LoopResult> } {
  const result: LoopResult = { ok: 0, failed: 0, errors: [] };
  let running = true;
  const worker = async () => {
    while (running) {
      try {
        const status = await call();
        if (status === 200) result.ok++;
        else {
          result.failed++;
          result.errors.push(`HTTP ${status}`);
        }
      } catch (err) {
        result.failed++;
        result.errors.push((err as Error).message);
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return result;
    },
  };
}

export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Reads until `done` says the value is right, and returns it; a timeout names the last value read
 * (or the error it threw), which is what tells a slow system from a wrong one.
 */
export async function settles<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  let last: { value: T } | { error: unknown } | undefined;
  try {
    return await eventually(
      what,
      async () => {
        try {
          const value = await read();
          last = { value };
          return done(value) ? { value } : undefined;
        } catch (error) {
          last = { error };
          return undefined;
        }
      },
      timeoutMs,
    ).then((r) => r.value);
  } catch (err) {
    const seen = last === undefined ? 'nothing read' : 'error' in last ? `failing: ${(last.error as Error)?.message ?? String(last.error)}` : `last read: ${typeof last.value === 'string' ? last.value : JSON.stringify(last.value)}`;
    throw new Error(`${(err as Error).message}; ${seen}`, { cause: err });
  }
}
