// The channel's wire contract (metrics.proto, batch.proto, mirror.proto): each method's path, its
// messages' shapes, and their codecs (codecs.ts).
import { decode, encode, externalMetricValueList, getMetricsBatch, getMetricsResult, mirrorEvent, scaledObjectRef, watchRequest, type Codec } from './codecs.js';

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

/** A method: its path, and its request's and answer's codecs (named as grpc-js names them). */
export interface MethodDefinition<Req, Res> {
  path: string;
  /** Answers are a stream (any number of messages before the status). */
  responseStream: boolean;
  requestSerialize(value: Req): Buffer;
  requestDeserialize(bytes: Buffer): Req;
  responseSerialize(value: Res): Buffer;
  responseDeserialize(bytes: Buffer): Res;
}

function method<Req, Res>(path: string, request: Codec<Req>, response: Codec<Res>, responseStream = false): MethodDefinition<Req, Res> {
  return {
    path,
    responseStream,
    requestSerialize: (value) => encode(request, value),
    requestDeserialize: (bytes) => decode(request, bytes),
    responseSerialize: (value) => encode(response, value),
    responseDeserialize: (bytes) => decode(response, bytes),
  };
}

export const metricsServiceDefinition = { GetMetrics: method(GET_METRICS_PATH, scaledObjectRef, externalMetricValueList) };
export const metricsMirrorDefinition = { Watch: method(MIRROR_WATCH_PATH, watchRequest, mirrorEvent, true) };

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

export const metricsBatchDefinition = { GetMetrics: method(BATCH_GET_METRICS_PATH, getMetricsBatch, getMetricsResult, true) };

export function toWireTime(d: Date): WireTime {
  const ms = d.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

export function fromWireTime(t: WireTime | null): Date {
  if (!t) return new Date(0);
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000));
}
