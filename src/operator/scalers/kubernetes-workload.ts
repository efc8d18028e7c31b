// KEDA's `kubernetes-workload` scaler: the number of Pods matching podSelector (in the
// ScaledObject's namespace, another one, or all with `*`), not counting Succeeded or Failed ones.
// Counted from the operator's Pod watch (pod-index.ts), never by a list per poll.
// https://keda.sh/docs/latest/scalers/kubernetes-workload/
import { parseSelector, SelectorError, type LabelSelector } from '../../k8s/labels.js';
import { configError } from './upstream.js';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { readParameters, type ParamSpec } from './parameters.js';
import { ScalerError, type Scaler, type ScalerContext, type ScalerFactory } from './scaler.js';

const TYPE = 'kubernetes-workload';

/** What the kubernetes-workload scaler reads (the README's table is generated from this). */
export const KUBERNETES_WORKLOAD_PARAMETERS: readonly ParamSpec[] = [
  { name: 'podSelector', type: 'string', from: 'metadata', required: true, doc: 'A Kubernetes label selector (`app=worker`, `tier in (a,b)`, `!canary`).' },
  { name: 'value', type: 'number', from: 'metadata', required: true, doc: 'The HPA target: Pods per replica (greater than 0).' },
  { name: 'activationValue', type: 'number', from: 'metadata', default: 0, doc: 'Active (scaled from zero) strictly above this many Pods.' },
  { name: 'namespace', type: 'string', from: 'metadata', doc: 'Where to count: default the ScaledObject\'s namespace; `*` for all.' },
];

export const createKubernetesWorkloadScaler: ScalerFactory = (ctx) => new KubernetesWorkloadScaler(ctx);

class KubernetesWorkloadScaler implements Scaler {
  readonly metricName: string;
  readonly targetValue: number;
  private readonly activationValue: number;
  private readonly selector: LabelSelector;
  private readonly namespace: string;

  constructor(private readonly ctx: ScalerContext) {
    const p = readParameters(TYPE, KUBERNETES_WORKLOAD_PARAMETERS, ctx);
    try {
      this.selector = parseSelector(p.string('podSelector')!.trim());
    } catch (err) {
      if (err instanceof SelectorError) throw configError(TYPE, `podSelector is not a label selector: ${err.message}`);
      throw err;
    }
    this.targetValue = p.number('value')!;
    if (this.targetValue <= 0) throw configError(TYPE, `value ${this.targetValue} must be greater than 0`);
    this.activationValue = p.number('activationValue')!;
    const ns = p.string('namespace')?.trim();
    this.namespace = ns === '*' ? '' : (ns ?? ctx.namespace ?? '');
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`workload-${this.namespace}`));
    if (!ctx.pods && ctx.validateOnly !== true) throw configError(TYPE, 'counts Pods through the API server: it needs the operator to run against a cluster');
  }

  getMetricValue(): Promise<number> {
    const n = this.ctx.pods?.count(this.namespace, this.selector);
    if (n === undefined) return Promise.reject(new ScalerError(`${TYPE}: the Pod watch has not listed the Pods yet`));
    return Promise.resolve(n);
  }

  isActive(value: number): boolean {
    return value > this.activationValue;
  }

  close(): void {}
}
