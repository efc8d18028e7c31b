// One trigger polled every second by the real metrics engine, as the operator polls it, from a
// real KEDA file (a Secret, a TriggerAuthentication pointing at it, a ScaledObject): what a test
// needs to show that a trigger's health (its failures, its error) and its metric follow the
// upstream going away and coming back, without restarting anything.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { stringify } from 'yaml';
import { MetricsEngine, type TriggerReport } from '../../src/operator/metrics-engine.js';
import { FileScaledObjectStore } from '../../src/operator/scaledobjects/file-store.js';
import type { CustomCaTrust } from '../../src/tls/custom-ca.js';
import { settles } from './loop.js';

export interface PolledTrigger {
  /** The last poll's view of the trigger (value, failures, error). */
  report(): TriggerReport | undefined;
  /** What the HPA would be served now (asks the upstream). */
  query(): Promise<string>;
  /** Waits until the last poll satisfies `check` (default 30 s). */
  until(check: (r: TriggerReport) => boolean, timeoutMs?: number): Promise<TriggerReport>;
}

export async function pollTrigger(
  t: { testdir(): string; teardown(fn: () => unknown): void },
  o: { type: string; metadata: Record<string, string>; auth?: Record<string, string>; trust: CustomCaTrust; log: Logger; timeoutMs?: number },
): Promise<PolledTrigger> {
  const docs: unknown[] = [];
  if (o.auth) {
    docs.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'upstream-credentials', namespace: 'default' }, stringData: o.auth });
    docs.push({
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'TriggerAuthentication',
      metadata: { name: 'upstream', namespace: 'default' },
      spec: { secretTargetRef: Object.keys(o.auth).map((k) => ({ parameter: k, name: 'upstream-credentials', key: k })) },
    });
  }
  docs.push({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'workload', namespace: 'default' },
    spec: {
      scaleTargetRef: { name: 'workload' },
      pollingInterval: 1,
      triggers: [{ type: o.type, metadata: o.metadata, ...(o.auth ? { authenticationRef: { name: 'upstream' } } : {}) }],
    },
  });
  const file = join(t.testdir(), 'keda.yaml');
  await writeFile(file, docs.map((d) => stringify(d)).join('---\n'));
  const store = new FileScaledObjectStore(file, o.log, { watch: { debounceMs: 30 } });
  const engine = new MetricsEngine(store, { trust: o.trust, scalerTimeoutMs: o.timeoutMs ?? 3000, log: o.log, poll: true });
  await store.start();
  t.teardown(async () => {
    engine.close();
    await store.close();
  });
  const report = () => engine.lastReport('default', 'workload')?.triggers[0];
  return {
    report,
    query: async () => {
      const name = report()?.metricName;
      if (name === undefined) throw new Error(`the trigger has no metric yet: ${JSON.stringify(report())}`);
      const list = await engine.getMetrics({ namespace: 'default', name: 'workload', metricName: name }, new AbortController().signal);
      return list.items[0]!.value!.string;
    },
    until: (check, timeoutMs = 30_000) =>
      settles("the trigger's poll to match", async () => report(), (r) => r !== undefined && check(r), timeoutMs) as Promise<TriggerReport>,
  };
}
