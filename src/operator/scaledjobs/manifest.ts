// A ScaledJob read and validated, from the API server's JSON (the cluster watch, the admission
// webhook): KEDA's fields, defaults and rules, every error naming the object and the field.
import { ManifestError, ObjectReader, quote, readMetadata, readTriggers, type Note } from '../scaledobjects/manifest.js';
import { MULTIPLE_SCALERS_CALCULATIONS, ROLLOUT_STRATEGIES, SCALING_STRATEGIES, type ScaledJob, type ScalingStrategy } from './types.js';

export const SCALED_JOB_DEFAULTS = Object.freeze({ pollingInterval: 30, successfulJobsHistoryLimit: 100, failedJobsHistoryLimit: 100, minReplicaCount: 0, maxReplicaCount: 100 });
export const PAUSED_ANNOTATION = 'autoscaling.keda.sh/paused';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const KNOWN_SPEC = new Set(['jobTargetRef', 'envSourceContainerName', 'pollingInterval', 'successfulJobsHistoryLimit', 'failedJobsHistoryLimit', 'minReplicaCount', 'maxReplicaCount', 'rollout', 'rolloutStrategy', 'scalingStrategy', 'triggers']);

export type ScaledJobManifest = Omit<ScaledJob, 'uid' | 'generation'>;

export function readScaledJob(r: ObjectReader, raw: Obj): ScaledJobManifest {
  const { namespace, name } = readMetadata(r, raw, 'ScaledJob', true);
  const metadata = raw.metadata as Obj;
  const spec = r.mapping(raw.spec, 'spec', true) as Obj;

  const jobTargetRef = r.mapping(spec.jobTargetRef, 'spec.jobTargetRef', true) as Obj;
  r.mapping(jobTargetRef.template, 'spec.jobTargetRef.template', true);
  const envSourceContainerName = r.string(spec.envSourceContainerName, 'spec.envSourceContainerName', false);

  const d = SCALED_JOB_DEFAULTS;
  const pollingInterval = r.int(spec.pollingInterval, 'spec.pollingInterval', d.pollingInterval, 1);
  const successfulJobsHistoryLimit = r.int(spec.successfulJobsHistoryLimit, 'spec.successfulJobsHistoryLimit', d.successfulJobsHistoryLimit, 0);
  const failedJobsHistoryLimit = r.int(spec.failedJobsHistoryLimit, 'spec.failedJobsHistoryLimit', d.failedJobsHistoryLimit, 0);
  const minReplicaCount = r.int(spec.minReplicaCount, 'spec.minReplicaCount', d.minReplicaCount, 0);
  const maxReplicaCount = r.int(spec.maxReplicaCount, 'spec.maxReplicaCount', d.maxReplicaCount, 0);
  if (minReplicaCount > maxReplicaCount) r.fail('spec.minReplicaCount', `(${minReplicaCount}) must not be greater than spec.maxReplicaCount (${maxReplicaCount})`);

  const rollout = r.mapping(spec.rollout, 'spec.rollout', false) ?? {};
  // rolloutStrategy is KEDA's older name for rollout.strategy.
  const strategy = r.string(rollout.strategy, 'spec.rollout.strategy', false) ?? r.string(spec.rolloutStrategy, 'spec.rolloutStrategy', false) ?? 'default';
  if (!(ROLLOUT_STRATEGIES as readonly string[]).includes(strategy)) r.fail('spec.rollout.strategy', `must be one of ${ROLLOUT_STRATEGIES.join(', ')} (got ${quote(strategy)})`);
  const propagationPolicy = r.string(rollout.propagationPolicy, 'spec.rollout.propagationPolicy', false) ?? 'background';
  if (propagationPolicy !== 'background' && propagationPolicy !== 'foreground') r.fail('spec.rollout.propagationPolicy', `must be background or foreground (got ${quote(propagationPolicy)})`);

  const scalingStrategy = readScalingStrategy(r, spec.scalingStrategy);

  const triggers = readTriggers(r, spec.triggers);
  for (const [k, v] of Object.entries(spec)) if (v !== undefined && v !== null && !KNOWN_SPEC.has(k)) r.notActedOn(`spec.${k}`, 'this field is unknown');

  const annotations = stringsOf(metadata.annotations);
  const paused = annotations[PAUSED_ANNOTATION];
  if (paused !== undefined && paused !== 'true' && paused !== 'false') r.fail(`metadata.annotations[${PAUSED_ANNOTATION}]`, `must be "true" or "false" (got ${quote(paused)})`);
  return {
    namespace,
    name,
    spec: {
      jobTargetRef,
      ...(envSourceContainerName ? { envSourceContainerName } : {}),
      pollingInterval,
      successfulJobsHistoryLimit,
      failedJobsHistoryLimit,
      minReplicaCount,
      maxReplicaCount,
      rollout: { strategy: strategy as ScaledJob['spec']['rollout']['strategy'], propagationPolicy },
      scalingStrategy,
      triggers,
    },
    paused: paused === 'true',
    labels: stringsOf(metadata.labels),
    annotations,
    unsupported: r.unsupported,
  };
}

function readScalingStrategy(r: ObjectReader, raw: unknown): ScalingStrategy {
  const s = r.mapping(raw, 'spec.scalingStrategy', false) ?? {};
  const at = 'spec.scalingStrategy';
  const strategy = r.string(s.strategy, `${at}.strategy`, false) ?? 'default';
  if (!(SCALING_STRATEGIES as readonly string[]).includes(strategy)) r.fail(`${at}.strategy`, `must be one of ${SCALING_STRATEGIES.join(', ')} (got ${quote(strategy)})`);
  const calculation = r.string(s.multipleScalersCalculation, `${at}.multipleScalersCalculation`, false) ?? 'max';
  if (!(MULTIPLE_SCALERS_CALCULATIONS as readonly string[]).includes(calculation)) r.fail(`${at}.multipleScalersCalculation`, `must be one of ${MULTIPLE_SCALERS_CALCULATIONS.join(', ')} (got ${quote(calculation)})`);
  const deduction = r.int(s.customScalingQueueLengthDeduction, `${at}.customScalingQueueLengthDeduction`, 0, 0);
  // A string in KEDA's schema ("0.5"); a number is taken too.
  const rawPercentage = s.customScalingRunningJobPercentage;
  const given = (v: unknown) => v !== undefined && v !== null && v !== '';
  // KEDA quietly uses the default strategy without a percentage (and fails without a deduction).
  if (strategy === 'custom') {
    for (const field of ['customScalingQueueLengthDeduction', 'customScalingRunningJobPercentage']) if (!given(s[field])) r.fail(`${at}.${field}`, 'is required with the custom strategy');
  }
  let percentage = 0;
  if (given(rawPercentage)) {
    percentage = typeof rawPercentage === 'number' ? rawPercentage : Number(typeof rawPercentage === 'string' ? rawPercentage.trim() : Number.NaN);
    if (!Number.isFinite(percentage) || percentage < 0) r.fail(`${at}.customScalingRunningJobPercentage`, `must be a number at least 0, such as "0.5" (got ${quote(String(rawPercentage))})`);
  }
  const conditions = (r.list(s.pendingPodConditions, `${at}.pendingPodConditions`) ?? []).map((c, i) => r.string(c, `${at}.pendingPodConditions[${i}]`, true));
  return {
    strategy: strategy as ScalingStrategy['strategy'],
    customScalingQueueLengthDeduction: deduction,
    customScalingRunningJobPercentage: percentage,
    pendingPodConditions: conditions,
    multipleScalersCalculation: calculation as ScalingStrategy['multipleScalersCalculation'],
  };
}

function stringsOf(v: unknown): Record<string, string> {
  if (!isObj(v)) return {};
  return Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** A ScaledJob as the API server returns it (JSON): throws ManifestError naming the field. */
export function scaledJobFromApi(raw: unknown, notes: Note[] = []): ScaledJobManifest {
  if (!isObj(raw)) throw new ManifestError('ScaledJob: expected an object');
  return readScaledJob(new ObjectReader('', 'ScaledJob', notes), raw);
}
