// KEDA's ScaledJob (keda.sh/v1alpha1), the compatible subset this operator acts on: Jobs created
// from jobTargetRef per the triggers' values, as KEDA's docs describe it.
import type { Trigger } from '../scaledobjects/types.js';

export const SCALING_STRATEGIES = ['default', 'custom', 'accurate', 'eager'] as const;
export const MULTIPLE_SCALERS_CALCULATIONS = ['max', 'min', 'avg', 'sum'] as const;
export const ROLLOUT_STRATEGIES = ['default', 'gradual'] as const;

export interface ScalingStrategy {
  strategy: (typeof SCALING_STRATEGIES)[number];
  /** custom: jobs subtracted from the queue's count. */
  customScalingQueueLengthDeduction: number;
  /** custom: the share of running jobs subtracted. */
  customScalingRunningJobPercentage: number;
  /** Pod conditions that must all be True for a Job to stop counting as pending (default: a Pod Running or Succeeded). */
  pendingPodConditions: string[];
  multipleScalersCalculation: (typeof MULTIPLE_SCALERS_CALCULATIONS)[number];
}

export interface ScaledJob {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  spec: {
    /** batch/v1 JobSpec, as written: the API server validates it when a Job is created. */
    jobTargetRef: Record<string, unknown>;
    /** The container of jobTargetRef's template whose environment `*FromEnv` reads (default: the first). */
    envSourceContainerName?: string;
    pollingInterval: number;
    successfulJobsHistoryLimit: number;
    failedJobsHistoryLimit: number;
    minReplicaCount: number;
    maxReplicaCount: number;
    /** On a spec change: `default` deletes the Jobs of earlier generations, `gradual` lets them finish. */
    rollout: { strategy: (typeof ROLLOUT_STRATEGIES)[number]; propagationPolicy: 'background' | 'foreground' };
    scalingStrategy: ScalingStrategy;
    triggers: Trigger[];
  };
  /** autoscaling.keda.sh/paused: "true": no Job is created. */
  paused: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  unsupported: readonly string[];
}
