// Metric values from a YAML file, reloaded on change: handy for local runs and tests that want
// exact values. A bad edit keeps the last good file in use, like certificates do.
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import { matchesSelector } from '../../k8s/labels.js';
import { canonicalQuantity, formatQuantity, quantityFromNumber } from '../../k8s/quantity.js';
import { ReloadableFiles } from '../../tls/reloadable.js';
import { MetricNotFoundError, quoted, type ExternalMetricQuery, type ExternalMetricSample, type ExternalMetricsProvider } from '../provider.js';

interface FileMetric {
  namespace: string | undefined;
  name: string;
  labels: Record<string, string> | null;
  value: string;
  window: number | undefined;
}

export function parseMetricsFile(text: string): FileMetric[] {
  const doc = parseYaml(text) as { metrics?: unknown } | null;
  if (!doc || !Array.isArray(doc.metrics)) throw new Error('expected a top-level "metrics" list');
  return doc.metrics.map((m: Record<string, unknown>, i: number) => {
    const where = `metrics[${i}]`;
    if (typeof m?.name !== 'string' || m.name === '') throw new Error(`${where}: "name" must be a non-empty string`);
    if (m.namespace !== undefined && typeof m.namespace !== 'string') throw new Error(`${where}: "namespace" must be a string`);
    const value =
      typeof m.value === 'number' ? formatQuantity(quantityFromNumber(m.value))
      : typeof m.value === 'string' ? canonicalQuantity(m.value)
      : undefined;
    if (value === undefined) throw new Error(`${where}: "value" must be a number or a quantity string`);
    const labels = m.labels === undefined || m.labels === null ? null : Object.fromEntries(Object.entries(m.labels as object).map(([k, v]) => [k, String(v)]));
    const window = m.window === undefined ? undefined : Number(m.window);
    return { namespace: m.namespace as string | undefined, name: m.name, labels, value, window };
  });
}

/** Entries by metric name: a lookup per query, not a scan of the whole file. */
function indexByName(metrics: FileMetric[]): Map<string, FileMetric[]> {
  const byName = new Map<string, FileMetric[]>();
  for (const m of metrics) byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  return byName;
}

export class FileSource implements ExternalMetricsProvider {
  readonly name = 'file';
  private readonly file: ReloadableFiles<Map<string, FileMetric[]>>;

  constructor(path: string, log: Logger) {
    this.file = new ReloadableFiles('metrics source file', [path], ([text]) => indexByName(parseMetricsFile(text as string)), log);
  }

  async start(): Promise<void> {
    await this.file.start();
  }

  async getExternalMetric(q: ExternalMetricQuery): Promise<ExternalMetricSample[]> {
    const now = new Date();
    const items = (this.file.current.get(q.metricName) ?? [])
      .filter((m) => (m.namespace === undefined || m.namespace === q.namespace) && matchesSelector(q.selector, m.labels))
      .map((m) => ({ metricName: m.name, metricLabels: m.labels, timestamp: now, value: m.value, ...(m.window !== undefined ? { windowSeconds: m.window } : {}) }));
    if (items.length === 0) {
      throw new MetricNotFoundError(`no metric "${q.metricName}" in namespace "${q.namespace}" matches selector ${quoted(q.selectorText)}`);
    }
    return items;
  }

  readiness() {
    return { ready: true };
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
