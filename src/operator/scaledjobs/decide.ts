// How many Jobs a ScaledJob poll creates: KEDA's arithmetic, as pure functions. Each trigger gives
// a queue length (its value) and a max value (queue / target, capped at maxReplicaCount); the
// triggers are combined by multipleScalersCalculation (active triggers only); the scaling
// strategy then turns the running and pending Jobs into the number of Jobs to create.
import type { ScaledJob } from './types.js';

export interface TriggerMetric {
  value: number;
  target: number;
  active: boolean;
}

export interface JobCounts {
  /** Jobs not finished (neither Complete nor Failed). */
  running: number;
  /** Of those, Jobs whose Pods have not started (see pendingPodConditions). */
  pending: number;
}

export interface Decision {
  active: boolean;
  /** ceil of the combined queue length, and of the combined max value. */
  queueLength: number;
  maxScale: number;
  /** Jobs to create now. */
  create: number;
}

export function decide(spec: ScaledJob['spec'], triggers: readonly TriggerMetric[], counts: JobCounts): Decision {
  const { minReplicaCount: min, maxReplicaCount: max } = spec;
  const metrics = triggers.map((t) => ({ queueLength: t.value, maxValue: t.target !== 0 ? Math.min(t.value / t.target, max) : 0, active: t.active }));
  let queueLength = 0;
  let maxValue = 0;
  let active = false;
  const activeMetrics = metrics.filter((m) => m.active);
  switch (spec.scalingStrategy.multipleScalersCalculation) {
    case 'min':
      for (const m of activeMetrics) {
        if (queueLength === 0 || m.queueLength < queueLength) ({ queueLength, maxValue, active } = m);
      }
      break;
    case 'avg':
      if (activeMetrics.length > 0) {
        queueLength = activeMetrics.reduce((a, m) => a + m.queueLength, 0) / activeMetrics.length;
        maxValue = activeMetrics.reduce((a, m) => a + m.maxValue, 0) / activeMetrics.length;
        active = true;
      }
      break;
    case 'sum':
      for (const m of activeMetrics) {
        queueLength += m.queueLength;
        maxValue += m.maxValue;
        active = true;
      }
      break;
    default:
      for (const m of activeMetrics) if (m.queueLength > queueLength) ({ queueLength, maxValue, active } = m);
  }
  if (min > 0) active = true;
  const queue = Math.ceil(queueLength);
  const maxScale = Math.ceil(Math.min(maxValue, max));

  // Below minReplicaCount: top up first.
  const [effectiveMaxScale, scaleTo] = counts.running < min ? [min - counts.running, min - counts.running] : strategy(spec, maxScale, counts.running - min, counts.pending, queue);
  const create = active && effectiveMaxScale > 0 ? Math.min(scaleTo, effectiveMaxScale) : 0;
  return { active, queueLength: queue, maxScale, create: Math.max(0, create) };
}

/** [effective max scale, scale to] per KEDA's strategies. */
function strategy(spec: ScaledJob['spec'], maxScale: number, running: number, pending: number, scaleTo: number): [number, number] {
  const s = spec.scalingStrategy;
  const max = spec.maxReplicaCount;
  switch (s.strategy) {
    case 'custom':
      return [Math.min(maxScale - s.customScalingQueueLengthDeduction - Math.trunc(running * s.customScalingRunningJobPercentage), max), scaleTo];
    case 'accurate':
      return maxScale + running > max ? [max - running, scaleTo] : [maxScale - pending, scaleTo];
    case 'eager':
      return [Math.min(max - running - pending, maxScale), max];
    default:
      return [maxScale - running, scaleTo];
  }
}
