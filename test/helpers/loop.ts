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
