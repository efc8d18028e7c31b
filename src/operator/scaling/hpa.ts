// The HorizontalPodAutoscaler a ScaledObject stands for, as KEDA writes it: `keda-hpa-<name>`
// (or advanced.horizontalPodAutoscalerConfig.name), owned by the ScaledObject, one External
// metric per trigger selected by `scaledobject.keda.sh/name`, behavior passed through. Pure.
import { isDeepStrictEqual } from 'node:util';
import { formatQuantity, quantityFromNumber } from '../../k8s/quantity.js';
import { KEDA_API_VERSION } from '../scaledobjects/manifest.js';
import { COMPOSITE_METRIC_NAME, type Pause, type ScaledObject } from '../scaledobjects/types.js';
import type { TriggerReport } from '../metrics-engine.js';
import type { OwnerReference } from '../../k8s/types.js';

export const SCALED_OBJECT_LABEL = 'scaledobject.keda.sh/name';
export const MANAGED_BY = 'keda-operator';

export interface Hpa {
  apiVersion: 'autoscaling/v2';
  kind: 'HorizontalPodAutoscaler';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    ownerReferences: OwnerReference[];
    resourceVersion?: string;
    uid?: string;
    annotations?: Record<string, string>;
  };
  spec: {
    scaleTargetRef: { apiVersion: string; kind: string; name: string };
    minReplicas: number;
    maxReplicas: number;
    metrics: ExternalMetric[];
    behavior?: Record<string, unknown>;
  };
  status?: unknown;
}

interface ExternalMetric {
  type: 'External';
  external: {
    metric: { name: string; selector: { matchLabels: Record<string, string> } };
    target: { type: 'AverageValue'; averageValue: string } | { type: 'Value'; value: string };
  };
}

export function hpaName(so: ScaledObject): string {
  return so.spec.advanced?.horizontalPodAutoscalerConfig?.name ?? `keda-hpa-${so.name}`;
}

/** The scale target with KEDA's defaults (apps/v1 Deployment). */
export function scaleTarget(so: ScaledObject): { apiVersion: string; kind: string; name: string } {
  const ref = so.spec.scaleTargetRef;
  return { apiVersion: ref.apiVersion ?? 'apps/v1', kind: ref.kind ?? 'Deployment', name: ref.name };
}

function ownerReferenceTo(so: ScaledObject): OwnerReference {
  return { apiVersion: KEDA_API_VERSION, kind: 'ScaledObject', name: so.name, uid: so.uid, controller: true, blockOwnerDeletion: true };
}

/** Is this HPA ours to manage for this ScaledObject (its controller reference is the object)? */
export function ownedBy(hpa: { metadata?: { ownerReferences?: OwnerReference[] } }, uid: string): boolean {
  return (hpa.metadata?.ownerReferences ?? []).some((o) => o.controller === true && o.kind === 'ScaledObject' && o.uid === uid);
}

export interface DesiredHpa {
  /** Absent when no HPA can be made (see desiredHpa). */
  hpa?: Hpa;
  /** Triggers left out, with the reason: they surface in the status. */
  skipped: string[];
}

/**
 * The HPA for the triggers that built (with scalingModifiers, the one composite metric). None when
 * no trigger built, or with scalingModifiers when any did not (the formula needs them all): an
 * HPA without metrics would fall back to CPU utilisation, which nobody asked for.
 */
export function desiredHpa(so: ScaledObject, triggers: TriggerReport[], labels: Record<string, string> = {}): DesiredHpa {
  const metrics: ExternalMetric[] = [];
  const skipped: string[] = [];
  for (const t of triggers) {
    if (t.metricName === undefined || t.targetValue === undefined) {
      skipped.push(t.buildError ?? `trigger ${t.index} (${t.type}) has no metric`);
      continue;
    }
    if (t.metricType === 'Utilization') {
      skipped.push(`trigger ${t.index} (${t.type}): metricType Utilization is only for the cpu and memory triggers`);
      continue;
    }
    metrics.push(externalMetric(so, t.metricName, t.metricType, t.targetValue));
  }
  const modifiers = so.spec.advanced?.scalingModifiers;
  if (metrics.length === 0 || (modifiers && skipped.length > 0)) return { skipped };
  if (modifiers) {
    metrics.splice(0, metrics.length, externalMetric(so, COMPOSITE_METRIC_NAME, modifiers.metricType, modifiers.target));
  }
  const name = hpaName(so);
  const behavior = withPausedDirections(so.spec.advanced?.horizontalPodAutoscalerConfig?.behavior, so.pause);
  return {
    hpa: {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: {
        name,
        namespace: so.namespace,
        // KEDA's labels; the ScaledObject's own labels are copied first, as KEDA does.
        labels: { ...labels, 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': so.name, 'app.kubernetes.io/managed-by': MANAGED_BY, [SCALED_OBJECT_LABEL]: so.name },
        ownerReferences: [ownerReferenceTo(so)],
      },
      spec: {
        scaleTargetRef: scaleTarget(so),
        // The HPA cannot go below 1; scaling to and from zero is the operator's (see scale-to-zero.ts).
        minReplicas: Math.max(so.spec.minReplicaCount, 1),
        maxReplicas: so.spec.maxReplicaCount,
        metrics,
        ...(behavior ? { behavior } : {}),
      },
    },
    skipped,
  };
}

function externalMetric(so: ScaledObject, name: string, metricType: 'AverageValue' | 'Value', target: number): ExternalMetric {
  const quantity = formatQuantity(quantityFromNumber(target));
  return {
    type: 'External',
    external: {
      metric: { name, selector: { matchLabels: { [SCALED_OBJECT_LABEL]: so.name } } },
      target: metricType === 'Value' ? { type: 'Value', value: quantity } : { type: 'AverageValue', averageValue: quantity },
    },
  };
}

/** Does the live HPA differ from the desired one in anything we own? (The API server's defaults are not differences.) */
export function hpaDiffers(live: Hpa, desired: Hpa): boolean {
  const labels = live.metadata.labels ?? {};
  if (Object.entries(desired.metadata.labels).some(([k, v]) => labels[k] !== v)) return true;
  if (!isDeepStrictEqual(live.metadata.ownerReferences ?? [], desired.metadata.ownerReferences)) return true;
  const a = live.spec;
  const b = desired.spec;
  if (a.minReplicas !== b.minReplicas || a.maxReplicas !== b.maxReplicas) return true;
  if (!isDeepStrictEqual(a.scaleTargetRef, b.scaleTargetRef) || !isDeepStrictEqual(a.metrics, b.metrics)) return true;
  // A direction we disabled (paused-scale-in/out) and no longer do: the API server never defaults
  // to Disabled, so a live Disabled we do not want is ours to undo.
  for (const dir of ['scaleUp', 'scaleDown']) {
    const disabled = (x: Record<string, unknown> | undefined) => (x?.[dir] as { selectPolicy?: string } | undefined)?.selectPolicy === 'Disabled';
    if (disabled(a.behavior) && !disabled(b.behavior)) return true;
  }
  // The API server fills in defaults inside behavior: compare only what we set.
  return b.behavior !== undefined ? !contains(a.behavior, b.behavior) : false;
}

function contains(have: unknown, want: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(have) && have.length === want.length && want.every((w, i) => contains(have[i], w));
  if (want !== null && typeof want === 'object') {
    if (have === null || typeof have !== 'object') return false;
    return Object.entries(want).every(([k, v]) => contains((have as Record<string, unknown>)[k], v));
  }
  return have === want;
}

/** KEDA's paused-scale-in / paused-scale-out: that direction's policies disabled, the rest as written. */
function withPausedDirections(behavior: Record<string, unknown> | undefined, pause: Pause | undefined): Record<string, unknown> | undefined {
  if (!pause?.scaleIn && !pause?.scaleOut) return behavior;
  const out: Record<string, unknown> = { ...(behavior ?? {}) };
  if (pause.scaleIn) out.scaleDown = { ...((behavior?.scaleDown as Record<string, unknown> | undefined) ?? {}), selectPolicy: 'Disabled' };
  if (pause.scaleOut) out.scaleUp = { ...((behavior?.scaleUp as Record<string, unknown> | undefined) ?? {}), selectPolicy: 'Disabled' };
  return out;
}
