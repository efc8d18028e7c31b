// A scaler turns one trigger of one ScaledObject into a number read from an upstream system.
import type { Logger } from 'pino';
import type { CustomCaTrust } from '../../tls/custom-ca.js';
import type { AuthParams, Trigger } from '../scaledobjects/types.js';
import type { ContainerEnvironment } from '../scaledobjects/resolve-env.js';
import type { PodCounter } from './pod-index.js';

export interface Scaler {
  /** KEDA's metric name for this trigger, index prefix included (e.g. `s0-metric-api-data-value`). */
  readonly metricName: string;
  /** The current value from the upstream; throws ScalerError with a message a user can act on. */
  getMetricValue(signal: AbortSignal): Promise<number>;
  /** KEDA's activation: is the workload needed at all at this value. */
  isActive(value: number): boolean;
  /** The HPA target (targetValue / threshold). */
  readonly targetValue: number;
  close(): void;
}

/** The upstream is unreachable, slow, or answered something unusable. Never a made-up value. */
export class ScalerError extends Error {
  override readonly name = 'ScalerError';
}

/** The trigger's metadata is invalid: a configuration error, reported as such. */
export class ScalerConfigError extends Error {
  override readonly name = 'ScalerConfigError';
}

export interface ScalerContext {
  triggerIndex: number;
  trigger: Trigger;
  /** Resolved from the trigger's authenticationRef; empty without one. */
  auth: AuthParams;
  /** System roots plus every CA in the --ca-dir folders, live. */
  trust: CustomCaTrust;
  /** Per-call upstream timeout. */
  timeoutMs: number;
  /** For the few things a scaler must say itself (e.g. `unsafeSsl` in use); optional. */
  log?: Logger;
  /**
   * Build only to validate the trigger (an admission webhook, which cannot read the Secrets behind
   * an authenticationRef): invalid metadata is still refused, absent auth parameters are not.
   * Such a scaler never queries its upstream.
   */
  validateOnly?: boolean;
  /** The clock, for scalers that read it (cron); Date.now by default. */
  now?: () => number;
  /** The ScaledObject's namespace (kubernetes-workload counts Pods there by default). */
  namespace?: string;
  /** The cluster's Pods, counted from a watch; absent without a cluster. */
  pods?: PodCounter;
  /** The workload container's variables, for `<parameter>FromEnv`; given when the trigger has such a parameter. */
  env?: ContainerEnvironment;
}

export type ScalerFactory = (ctx: ScalerContext) => Scaler;
