// The operator's view of KEDA's custom resources (keda.sh/v1alpha1): the compatible subset we
// act on. Shapes follow KEDA's CRDs field for field, so that manifests written for KEDA apply.

export interface ScaleTargetRef {
  name: string;
  kind?: string;
  apiVersion?: string;
  /** The container whose environment `*FromEnv` reads (default: the first). */
  envSourceContainerName?: string;
}

export interface AuthenticationRef {
  name: string;
  /** TriggerAuthentication (default) or ClusterTriggerAuthentication. */
  kind?: 'TriggerAuthentication' | 'ClusterTriggerAuthentication';
}

export interface Trigger {
  type: string;
  metadata: Record<string, string>;
  name?: string;
  metricType?: 'AverageValue' | 'Value' | 'Utilization';
  useCachedMetrics?: boolean;
  authenticationRef?: AuthenticationRef;
}

export interface ScaledObject {
  namespace: string;
  name: string;
  uid: string;
  /** Bumped on every change of the spec; scalers are rebuilt when it moves. */
  generation: number;
  spec: {
    scaleTargetRef: ScaleTargetRef;
    pollingInterval: number;
    cooldownPeriod: number;
    minReplicaCount: number;
    maxReplicaCount: number;
    /** Replicas while no trigger is active (KEDA supports 0 only; see the manifest reader). */
    idleReplicaCount?: number;
    /** Seconds after creation before a never-active object may scale to zero. */
    initialCooldownPeriod: number;
    triggers: Trigger[];
    fallback?: Fallback;
    advanced?: {
      /** On deletion, scale the workload back to status.originalReplicaCount. */
      restoreToOriginalReplicaCount?: boolean;
      scalingModifiers?: ScalingModifiers;
      horizontalPodAutoscalerConfig?: {
        /** The HPA's name instead of `keda-hpa-<scaledobject>`. */
        name?: string;
        /** autoscaling/v2 HorizontalPodAutoscalerBehavior, passed through as written. */
        behavior?: Record<string, unknown>;
      };
    };
  };
  /** KEDA's pause annotations (autoscaling.keda.sh/paused*), when any is set. */
  pause?: Pause;
  /** KEDA fields set on the object that this operator does not act on, one sentence each. */
  unsupported: readonly string[];
}

/** KEDA's name for the one metric a formula makes of the triggers' values. */
export const COMPOSITE_METRIC_NAME = 'composite-metric';

/**
 * KEDA's advanced.scalingModifiers: the named triggers' values combined by `formula` into one
 * HPA metric (COMPOSITE_METRIC_NAME) with this target; active when it is above activationTarget.
 */
export interface ScalingModifiers {
  formula: string;
  target: number;
  activationTarget: number;
  metricType: 'AverageValue' | 'Value';
}

/** How the fallback replica count is chosen (KEDA's `fallback.behavior`). */
export const FALLBACK_BEHAVIORS = ['static', 'currentReplicas', 'currentReplicasIfHigher', 'currentReplicasIfLower'] as const;
export type FallbackBehavior = (typeof FALLBACK_BEHAVIORS)[number];

/**
 * KEDA's `fallback`: once a trigger has failed more than failureThreshold times in a row, its
 * metric is answered with a value that makes the HPA settle on the fallback replica count.
 */
export interface Fallback {
  failureThreshold: number;
  replicas: number;
  behavior: FallbackBehavior;
}

/** The replica count a fallback stands for, given the workload's current count (KEDA's behaviours). */
export function fallbackReplicas(fb: Fallback, current: number): number {
  switch (fb.behavior) {
    case 'static':
      return fb.replicas;
    case 'currentReplicas':
      return current;
    case 'currentReplicasIfHigher':
      return Math.max(current, fb.replicas);
    case 'currentReplicasIfLower':
      return Math.min(current, fb.replicas);
  }
}

/**
 * KEDA's pause annotations: `paused-replicas: "N"` (scale to N and hold, no HPA), `paused: "true"`
 * (hold where it is, no HPA), `paused-scale-in` / `paused-scale-out: "true"` (the HPA keeps
 * working in the other direction only; scaling to zero counts as scaling in).
 */
export interface Pause {
  replicas?: number;
  /** No autoscaling at all (paused-replicas or paused). */
  all: boolean;
  scaleIn: boolean;
  scaleOut: boolean;
}

export interface SecretTargetRef {
  parameter: string;
  name: string;
  key: string;
}

/** KEDA's `boundServiceAccountToken`: a TokenRequest token for a service account of the ScaledObject's namespace. */
export interface BoundServiceAccountTokenRef {
  parameter: string;
  serviceAccountName: string;
  /** Our addition: the token's audiences (default: the operator's --service-account-token-audience, else the API server's). */
  audiences?: string[];
  /** Our addition: requested lifetime (default --service-account-token-expiration). */
  expirationSeconds?: number;
}

/** Trigger parameters from a TriggerAuthentication, resolved: parameter name -> value. Never logged. */
export type AuthParams = Record<string, string>;

/** What a TriggerAuthentication or ClusterTriggerAuthentication asks for. */
export interface AuthSpec {
  secretTargetRef: SecretTargetRef[];
  boundServiceAccountToken: BoundServiceAccountTokenRef[];
  /** Spec fields KEDA has and this operator does not resolve, one sentence each. */
  unsupported: string[];
}

/** An authenticationRef found: what it asks for, and where its Secrets live. */
export interface AuthLookup {
  /** `TriggerAuthentication ns/name` or `ClusterTriggerAuthentication name`, for messages. */
  label: string;
  /** The ScaledObject's namespace for a TriggerAuthentication; KEDA's own for a ClusterTriggerAuthentication. */
  secretNamespace: string;
  spec: AuthSpec;
}

export interface ScaledObjectStore {
  get(namespace: string, name: string): ScaledObject | undefined;
  list(): ScaledObject[];
  /** The authentication a trigger's authenticationRef names (throws `... not found` when there is none). */
  lookupAuth(namespace: string, ref: AuthenticationRef): AuthLookup;
  /** A Secret's decoded values, or undefined when it does not exist. */
  readSecret(namespace: string, name: string): Promise<Map<string, string> | undefined>;
  /** A ConfigMap's values (`*FromEnv`), or undefined when it does not exist; absent without a cluster. */
  readConfigMap?(namespace: string, name: string): Promise<Map<string, string> | undefined>;
  /**
   * The version of a dependency (see dependencyKey) as known now: it changes whenever the object
   * may have changed, and is undefined while it does not exist. Scalers built from an older
   * version are rebuilt.
   */
  dependencyVersion(key: string): string | undefined;
  /** Called with the dependencyKey of a TriggerAuthentication, ClusterTriggerAuthentication, Secret or ConfigMap that appeared, changed or went. */
  onDependencyChange(listener: (key: string) => void): void;
  /** Called after every successful (re)load. */
  onChange(listener: () => void): void;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** What a scaler is built from besides its ScaledObject. */
export type DependencyKind = 'Secret' | 'ConfigMap' | 'TriggerAuthentication' | 'ClusterTriggerAuthentication';

/** `Kind/namespace/name` (namespace empty for a ClusterTriggerAuthentication). */
export function dependencyKey(kind: DependencyKind, namespace: string, name: string): string {
  return `${kind}/${kind === 'ClusterTriggerAuthentication' ? '' : namespace}/${name}`;
}
