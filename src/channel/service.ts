// The channel's wire contract, loaded from the .proto files: each method's path and its message
// codecs (protobufjs, through proto-loader), and the message shapes those codecs give.
import { fileURLToPath } from 'node:url';
import { loadSync, type ServiceDefinition } from '@grpc/proto-loader';

export const GET_METRICS_PATH = '/api.MetricsService/GetMetrics';

export interface ScaledObjectRef {
  name: string;
  namespace: string;
  metricName: string;
}

export interface WireQuantity {
  string: string;
}

export interface WireTime {
  /** int64 as a decimal string (longs: String), not to lose precision. */
  seconds: string;
  nanos: number;
}

export interface ExternalMetricValue {
  metricName: string;
  metricLabels: Record<string, string>;
  timestamp: WireTime | null;
  window?: string;
  value: WireQuantity | null;
}

export interface ExternalMetricValueList {
  metadata: { selfLink?: string; resourceVersion?: string; continue?: string; remainingItemCount?: string } | null;
  items: ExternalMetricValue[];
}

export const MIRROR_WATCH_PATH = '/kedats.v1.MetricsMirror/Watch';

export interface MirrorKey {
  namespace: string;
  name: string;
  metricName: string;
}

export interface MirrorEntry {
  key: MirrorKey | null;
  value: string;
  /** int64 as a decimal string (longs: String), milliseconds. */
  ttlMs: string;
}

export type MirrorListener = (upserts: readonly MirrorEntry[], removals: readonly MirrorKey[]) => void;

/** What the operator's Watch streams from: the current values, and every change. */
export interface MirrorSource {
  snapshot(): MirrorEntry[];
  /** Called after every change; returns the unsubscribe function. */
  subscribe(listener: MirrorListener): () => void;
}

export interface MirrorEvent {
  snapshot: boolean;
  upserts: MirrorEntry[];
  removals: MirrorKey[];
}

/** One service of a .proto file, by its full name. */
const load = (file: string, service: string) =>
  loadSync(fileURLToPath(new URL(file, import.meta.url)), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [fileURLToPath(new URL('.', import.meta.url))],
  })[service] as ServiceDefinition;

export const metricsServiceDefinition = load('./metrics.proto', 'api.MetricsService');
export const metricsMirrorDefinition = load('./mirror.proto', 'kedats.v1.MetricsMirror');

export const BATCH_GET_METRICS_PATH = '/kedats.v1.MetricsBatch/GetMetrics';

export interface GetMetricsBatch {
  refs: ScaledObjectRef[];
}

/** One query's answer: `list` when code is OK (0), else GetMetrics' status. */
export interface GetMetricsResult {
  index: number;
  list: ExternalMetricValueList | null;
  code: number;
  message: string;
}

export const metricsBatchDefinition = load('./batch.proto', 'kedats.v1.MetricsBatch');

export function toWireTime(d: Date): WireTime {
  const ms = d.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

export function fromWireTime(t: WireTime | null): Date {
  if (!t) return new Date(0);
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000));
}
