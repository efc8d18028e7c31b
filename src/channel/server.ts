// The operator's end of the channel over mutual TLS 1.3: KEDA's api.MetricsService/GetMetrics,
// and our kedats.v1.MetricsMirror/Watch stream when the operator has a mirror to serve.
import { Server, status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { GrpcMetrics } from '../observability/metrics.js';
import type { LiveTls } from '../tls/live-tls.js';
import { LiveServerCredentials } from './credentials.js';
import { GET_METRICS_PATH, metricsMirrorDefinition, metricsServiceDefinition, type ExternalMetricValueList, type MirrorEntry, type MirrorEvent, type MirrorKey, type MirrorSource, type ScaledObjectRef } from './service.js';

/** A failure with the gRPC status the adapter should see (NOT_FOUND, UNAVAILABLE, ...). */
export class ChannelError extends Error {
  override readonly name = 'ChannelError';
  constructor(readonly code: status, message: string) {
    super(message);
  }
}

export interface MetricsHandler {
  getMetrics(ref: ScaledObjectRef, signal: AbortSignal): Promise<ExternalMetricValueList>;
}

export interface ChannelServerOptions {
  /** `host:port`, or KEDA's `:port` for every interface. */
  bindAddress: string;
  tls: LiveTls;
  /** Bundles client certificates must chain to (the cert dir's ca.crt). */
  trust: readonly string[];
  handler: MetricsHandler;
  /** The values to mirror to adapters (none: no MetricsMirror service, as a KEDA operator). */
  mirror?: MirrorSource;
  metrics: GrpcMetrics;
  log: Logger;
  /** Connections are closed after this age so rotated certificates take effect on all of them. */
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
}

export interface RunningChannelServer {
  port: number;
  shutdown(graceMs: number): Promise<void>;
}

export async function startChannelServer(opts: ChannelServerOptions): Promise<RunningChannelServer> {
  const server = new Server({
    'grpc.max_connection_age_ms': opts.maxConnectionAgeMs,
    'grpc.max_connection_age_grace_ms': opts.maxConnectionAgeGraceMs,
    // Adapters keep the connection warm with pings; allow them without calls in flight.
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    // Per-call bookkeeping for a debugging interface we do not expose.
    'grpc.enable_channelz': 0,
  });
  server.addService(metricsServiceDefinition, {
    GetMetrics: (call: ServerUnaryCall<ScaledObjectRef, ExternalMetricValueList>, callback: sendUnaryData<ExternalMetricValueList>) => {
      const started = performance.now();
      const abort = new AbortController();
      let answered = false;
      // grpc-js emits 'cancelled' after every call, answered or not: only a real cancellation aborts.
      call.on('cancelled', () => {
        if (!answered) abort.abort();
      });
      const done = (code: status) => {
        answered = true;
        opts.metrics.observe(GET_METRICS_PATH, status[code] ?? String(code), (performance.now() - started) / 1000);
      };
      opts.handler.getMetrics(call.request, abort.signal).then(
        (list) => {
          done(status.OK);
          callback(null, list);
        },
        (err: unknown) => {
          const code = err instanceof ChannelError ? err.code : status.INTERNAL;
          const message = (err as Error)?.message ?? String(err);
          if (code === status.INTERNAL) opts.log.error({ err, ref: call.request }, 'GetMetrics failed');
          done(code);
          callback({ code, details: message });
        },
      );
    },
  });
  // Open Watch streams never end by themselves: shutdown ends them, or it would wait its whole grace.
  const watches = new Set<ServerWritableStream<object, MirrorEvent>>();
  if (opts.mirror) {
    const mirror = opts.mirror;
    server.addService(metricsMirrorDefinition, {
      Watch: (call: ServerWritableStream<object, MirrorEvent>) => {
        watches.add(call);
        call.on('close', () => watches.delete(call));
        streamMirror(call, mirror);
      },
    });
  }
  const address = opts.bindAddress.startsWith(':') ? `0.0.0.0${opts.bindAddress}` : opts.bindAddress;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, new LiveServerCredentials(opts.tls, opts.trust), (err, p) => (err ? reject(err) : resolve(p))),
  );
  opts.metrics.state.set(1);
  opts.log.info({ address, port }, 'metrics service listening (gRPC, mutual TLS 1.3)');
  return {
    port,
    async shutdown(graceMs) {
      opts.metrics.state.set(0);
      for (const w of watches) w.end();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}

/**
 * One adapter's Watch: the snapshot, then the changes, coalesced per turn of the event loop (and
 * for as long as the connection is not ready for more: the latest value of a key wins).
 */
function streamMirror(call: ServerWritableStream<object, MirrorEvent>, mirror: MirrorSource): void {
  const upserts = new Map<string, MirrorEntry>();
  const removals = new Map<string, MirrorKey>();
  let scheduled = false;
  let blocked = false;
  const keyOf = (k: MirrorKey) => `${k.namespace}/${k.name}/${k.metricName}`;
  const flush = () => {
    scheduled = false;
    if (blocked || call.cancelled || (upserts.size === 0 && removals.size === 0)) return;
    const event: MirrorEvent = { snapshot: false, upserts: [...upserts.values()], removals: [...removals.values()] };
    upserts.clear();
    removals.clear();
    if (!call.write(event)) {
      blocked = true;
      call.once('drain', () => {
        blocked = false;
        flush();
      });
    }
  };
  const unsubscribe = mirror.subscribe((ups, rems) => {
    for (const e of ups) {
      const k = keyOf(e.key!);
      removals.delete(k);
      upserts.set(k, e);
    }
    for (const key of rems) {
      const k = keyOf(key);
      upserts.delete(k);
      removals.set(k, key);
    }
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });
  call.on('cancelled', unsubscribe);
  call.on('close', unsubscribe);
  call.on('error', unsubscribe);
  call.write({ snapshot: true, upserts: mirror.snapshot(), removals: [] });
}
