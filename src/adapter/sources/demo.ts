// A built-in source for trying the adapter without an operator: a few series whose values move
// with the clock, so that a first-time user sees a changing metric.
import { matchesSelector } from '../../k8s/labels.js';
import { formatQuantity, quantityFromNumber } from '../../k8s/quantity.js';
import { MetricNotFoundError, quoted, type ExternalMetricQuery, type ExternalMetricSample, type ExternalMetricsProvider } from '../provider.js';

const LABELS = { 'scaledobject.keda.sh/name': 'demo' };

const SERIES: Record<string, (t: number) => number> = {
  // A 2-minute wave between 10 and 90: enough movement to watch an HPA react.
  'demo-sine': (t) => Math.round((50 + 40 * Math.sin((2 * Math.PI * t) / 120_000)) * 1000) / 1000,
  // Grows by one per second: a queue that nobody drains.
  'demo-backlog': (t) => Math.floor(t / 1000) % 10_000,
};

export class DemoSource implements ExternalMetricsProvider {
  readonly name = 'demo';
  constructor(private readonly now: () => number = Date.now) {}

  async getExternalMetric(q: ExternalMetricQuery): Promise<ExternalMetricSample[]> {
    const series = SERIES[q.metricName];
    if (!series || !matchesSelector(q.selector, LABELS)) {
      throw new MetricNotFoundError(`no demo metric "${q.metricName}" matches selector ${quoted(q.selectorText)} (known: ${Object.keys(SERIES).join(', ')})`);
    }
    const t = this.now();
    return [{ metricName: q.metricName, metricLabels: LABELS, timestamp: new Date(t), value: formatQuantity(quantityFromNumber(series(t))) }];
  }

  readiness() {
    return { ready: true };
  }

  async close(): Promise<void> {}
}
