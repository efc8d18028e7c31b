// The channel's wire contract, loaded from metrics.proto: the service definition both ends use
// and the message shapes as grpc-js hands them to us.
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

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
  /** int64 as a decimal string: grpc-js is configured not to lose precision. */
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

const definition = loadSync(fileURLToPath(new URL('./metrics.proto', import.meta.url)), {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

const api = (loadPackageDefinition(definition) as GrpcObject).api as GrpcObject;
export const MetricsServiceClient = api.MetricsService as ServiceClientConstructor;
export const metricsServiceDefinition: ServiceDefinition = MetricsServiceClient.service;

export function toWireTime(d: Date): WireTime {
  const ms = d.getTime();
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

export function fromWireTime(t: WireTime | null): Date {
  if (!t) return new Date(0);
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000));
}
