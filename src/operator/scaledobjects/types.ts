// The operator's view of KEDA's custom resources (keda.sh/v1alpha1): the compatible subset we
// act on. Shapes follow KEDA's CRDs field for field, so that manifests written for KEDA apply.

export interface ScaleTargetRef {
  name: string;
  kind?: string;
  apiVersion?: string;
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
    pollingInterval?: number;
    cooldownPeriod?: number;
    minReplicaCount?: number;
    maxReplicaCount?: number;
    triggers: Trigger[];
  };
}

/** secretTargetRef entries already resolved: trigger parameter name -> value. */
export type AuthParams = Record<string, string>;

export interface ScaledObjectStore {
  get(namespace: string, name: string): ScaledObject | undefined;
  list(): ScaledObject[];
  /** The parameters a trigger's authenticationRef resolves to (throws with a clear message when it cannot). */
  resolveAuth(namespace: string, ref: AuthenticationRef): AuthParams;
  /** Called after every successful (re)load. */
  onChange(listener: () => void): void;
  start(): Promise<void>;
  close(): Promise<void>;
}
