// A ScaledObject's status as KEDA's tooling reads it (conditions Ready, Active, Fallback and
// Paused; hpaName, externalMetricNames, scaleTargetKind, health, lastActiveTime,
// originalReplicaCount, pausedReplicaCount), plus our `FullySupported` condition naming the
// fields this operator does not act on. Pure: computed, then compared, so that a write happens
// only when something a reader can see changed.
import { isDeepStrictEqual } from 'node:util';
import { metaTime } from '../../k8s/types.js';
import type { PollReport } from '../metrics-engine.js';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime?: string;
}

export type Verdict = Pick<Condition, 'status' | 'reason' | 'message'>;

export interface StatusInput {
  ready: Verdict;
  report: PollReport | undefined;
  unsupported: readonly string[];
  hpaName?: string;
  scaleTargetKind?: string;
  externalMetricNames?: string[];
  lastActiveTime?: string;
  /** KEDA's pause annotations, as acted on. */
  paused?: { replicas?: number };
  originalReplicaCount?: number;
  /** The status as it is now, for lastTransitionTime and the fields we do not own. */
  previous: Record<string, unknown> | undefined;
  now: Date;
}


/** KEDA's Active condition for a polled object (ScaledObject or ScaledJob); undefined: not polled yet. */
export function activityVerdict(active: boolean | undefined): Verdict {
  if (active === undefined) return { status: 'Unknown', reason: 'NotPolledYet', message: 'The triggers have not been polled yet' };
  if (active) return { status: 'True', reason: 'ScalerActive', message: 'Scaling is performed because triggers are active' };
  return { status: 'False', reason: 'ScalerNotActive', message: 'Scaling is not performed because triggers are not active' };
}

function activeVerdict(report: PollReport | undefined): Verdict {
  const failing = report?.triggers.filter((t) => t.error !== undefined) ?? [];
  if (report && !report.active && failing.length > 0 && failing.length === report.triggers.filter((t) => t.metricName !== undefined).length) {
    return { status: 'Unknown', reason: 'ScalerErrors', message: `Every trigger failed: ${failing.map((t) => t.error).join('; ')}` };
  }
  return activityVerdict(report?.active);
}

/** Our FullySupported condition: the fields set that this operator does not act on. */
export function supportedVerdict(unsupported: readonly string[]): Verdict {
  return unsupported.length === 0
    ? { status: 'True', reason: 'AllFieldsSupported', message: 'Every field set is acted on' }
    : { status: 'False', reason: 'UnsupportedFields', message: unsupported.join('; ') };
}

/** Builds conditions that keep the lastTransitionTime of `previous` while their status stays. */
export function conditionBuilder(previous: Record<string, unknown> | undefined, now: Date): (type: string, v: Verdict) => Condition {
  const prevConditions = (Array.isArray(previous?.conditions) ? previous.conditions : []) as Condition[];
  return (type, v) => {
    const prev = prevConditions.find((c) => c.type === type);
    const since = prev && prev.status === v.status && prev.lastTransitionTime ? prev.lastTransitionTime : metaTime(now);
    return { type, ...v, lastTransitionTime: since };
  };
}

function fallbackVerdict(report: PollReport | undefined): Verdict {
  const falling = report?.triggers.filter((t) => t.fallback) ?? [];
  if (falling.length === 0) return { status: 'False', reason: 'NoFallbackFound', message: 'No fallbacks are active on this scaled object' };
  return { status: 'True', reason: 'FallbackExists', message: `At least one trigger is falling back on this scaled object: ${falling.map((t) => t.metricName).join(', ')}` };
}

export function buildStatus(input: StatusInput): Record<string, unknown> {
  const condition = conditionBuilder(input.previous, input.now);
  const paused: Verdict =
    input.paused === undefined ? { status: 'False', reason: 'ScaledObjectUnpaused', message: 'Autoscaling is not paused' }
    : { status: 'True', reason: 'ScaledObjectPaused', message: input.paused.replicas === undefined ? 'Autoscaling is paused: replicas are held where they are' : `Autoscaling is paused at ${input.paused.replicas} replicas` };
  const status: Record<string, unknown> = {
    conditions: [
      condition('Ready', input.ready),
      condition('Active', activeVerdict(input.report)),
      condition('Fallback', fallbackVerdict(input.report)),
      condition('Paused', paused),
      condition('FullySupported', supportedVerdict(input.unsupported)),
    ],
  };
  if (input.paused?.replicas !== undefined) status.pausedReplicaCount = input.paused.replicas;
  // A merge patch removes a field only when told null.
  else if (input.previous?.pausedReplicaCount !== undefined) status.pausedReplicaCount = null;
  if (input.originalReplicaCount !== undefined) status.originalReplicaCount = input.originalReplicaCount;
  if (input.hpaName !== undefined) status.hpaName = input.hpaName;
  if (input.scaleTargetKind !== undefined) status.scaleTargetKind = input.scaleTargetKind;
  if (input.externalMetricNames !== undefined) status.externalMetricNames = input.externalMetricNames;
  if (input.lastActiveTime !== undefined) status.lastActiveTime = input.lastActiveTime;
  if (input.report) {
    // KEDA's health map: per metric, failures in a row and Happy/Failing.
    const health: Record<string, { numberOfFailures: number; status: 'Happy' | 'Failing' }> = {};
    for (const t of input.report.triggers) {
      if (t.metricName !== undefined) health[t.metricName] = { numberOfFailures: t.failures, status: t.error === undefined ? 'Happy' : 'Failing' };
    }
    status.health = health;
  } else if (input.previous?.health !== undefined) {
    status.health = input.previous.health;
  }
  return status;
}

/** Would writing `next` change what a reader sees? (A new lastTransitionTime alone does not count when nothing else moved.) */
export function statusDiffers(previous: Record<string, unknown> | undefined, next: Record<string, unknown>): boolean {
  const strip = (s: Record<string, unknown> | undefined) => {
    if (!s) return {};
    const conditions = Array.isArray(s.conditions) ? (s.conditions as Condition[]).map(({ lastTransitionTime: _, ...c }) => c) : undefined;
    const picked: Record<string, unknown> = {};
    for (const k of Object.keys(next)) if (k !== 'conditions') picked[k] = s[k];
    return { ...picked, conditions };
  };
  return !isDeepStrictEqual(strip(previous), strip(next));
}

export function readyTrue(): Verdict {
  return { status: 'True', reason: 'ScaledObjectReady', message: 'ScaledObject is defined correctly and is ready for scaling' };
}

export function readyFalse(reason: string, message: string): Verdict {
  return { status: 'False', reason, message };
}

