// The one seam between the adapter's HTTP machinery and wherever metric values come from. The
// gRPC client to the operator implements it; so do the local demo and file sources. Nothing in
// the HTTP layer knows which one it is talking to.
import type { LabelSelector } from '../k8s/labels.js';

export interface ExternalMetricQuery {
  namespace: string;
  metricName: string;
  selector: LabelSelector;
  /** The selector as the client sent it, canonicalised; some sources key on it. */
  selectorText: string;
}

export interface ExternalMetricSample {
  metricName: string;
  metricLabels: Record<string, string> | null;
  timestamp: Date;
  windowSeconds?: number;
  /** A Kubernetes quantity in canonical form. */
  value: string;
}

export interface Readiness {
  ready: boolean;
  reason?: string;
}

export interface ExternalMetricsProvider {
  readonly name: string;
  getExternalMetric(query: ExternalMetricQuery, signal: AbortSignal): Promise<ExternalMetricSample[]>;
  readiness(): Readiness;
  close(): Promise<void>;
}

/** The metric or the scaled object behind it does not exist: 404. */
export class MetricNotFoundError extends Error {
  override readonly name = 'MetricNotFoundError';
}
/** The source cannot be reached right now: 503. */
export class SourceUnavailableError extends Error {
  override readonly name = 'SourceUnavailableError';
}
/** The source did not answer within its deadline: 504. */
export class SourceTimeoutError extends Error {
  override readonly name = 'SourceTimeoutError';
}
/** The source answered with a failure of its own (a scaler's upstream failed, say): 500, a reason to report, not a bug. */
export class SourceFailedError extends Error {
  override readonly name = 'SourceFailedError';
}
/** The query cannot be answered as asked (e.g. no scaled object named in the selector): 400. */
export class InvalidMetricQueryError extends Error {
  override readonly name = 'InvalidMetricQueryError';
}

/** A client-supplied string fit for an error message: bounded, so a huge input is not echoed back. */
export function quoted(s: string, max = 120): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}...` : s);
}
