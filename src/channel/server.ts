// The operator's end of the channel over mutual TLS 1.3: KEDA's api.MetricsService/GetMetrics,
// our kedats.v1.MetricsBatch/GetMetrics (several of them in one call), and our
// kedats.v1.MetricsMirror/Watch stream when the operator has a mirror to serve.
import { Server, status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { GrpcMetrics } from '../observability/metrics.js';
import type { LiveTls } from '../tls/live-tls.js';
import { LiveServerCredentials } from './credentials.js';
import {
  BATCH_GET_METRICS_PATH,
  GET_METRICS_PATH,
  metricsBatchDefinition,
  metricsMirrorDefinition,
  metricsServiceDefinition,
  type ExternalMetricValueList,
  type GetMetricsBatch,
  type GetMetricsResult,
  type MirrorEntry,
  type MirrorEvent,
  type MirrorKey,
  type MirrorSource,
  type ScaledObjectRef,
} from './service.js';

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
  /** Serve MetricsBatch (default true; false: only KEDA's GetMetrics, as a KEDA operator). */
  batch?: boolean;
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
  /** One GetMetrics, answered with the status the adapter should see. */
  const answer = async (ref: ScaledObjectRef, signal: AbortSignal): Promise<{ code: status; list?: ExternalMetricValueList; message: string }> => {
    try {
      return { code: status.OK, list: await opts.handler.getMetrics(ref, signal), message: '' };
    } catch (err) {
      const code = err instanceof ChannelError ? err.code : status.INTERNAL;
      if (code === status.INTERNAL) opts.log.error({ err, ref }, 'GetMetrics failed');
      return { code, message: (err as Error)?.message ?? String(err) };
    }
  };
  /** An AbortSignal for a call: grpc-js emits 'cancelled' after every call, answered or not, so only one before the end aborts. */
  const callSignal = (call: { on(event: 'cancelled', listener: () => void): unknown }) => {
    const abort = new AbortController();
    let ended = false;
    call.on('cancelled', () => {
      if (!ended) abort.abort();
    });
    return { signal: abort.signal, end: () => void (ended = true) };
  };
  server.addService(metricsServiceDefinition, {
    GetMetrics: (call: ServerUnaryCall<ScaledObjectRef, ExternalMetricValueList>, callback: sendUnaryData<ExternalMetricValueList>) => {
      const started = performance.now();
      const { signal, end } = callSignal(call);
      void answer(call.request, signal).then(({ code, list, message }) => {
        end();
        opts.metrics.observe(GET_METRICS_PATH, status[code] ?? String(code), (performance.now() - started) / 1000);
        if (code === status.OK) callback(null, list);
        else callback({ code, details: message });
      });
    },
  });
  if (opts.batch !== false) {
    server.addService(metricsBatchDefinition, {
      GetMetrics: (call: ServerWritableStream<GetMetricsBatch, GetMetricsResult>) => {
        const started = performance.now();
        const { signal, end } = callSignal(call);
        const refs = call.request.refs ?? [];
        let left = refs.length;
        const finish = () => {
          end();
          opts.metrics.observe(BATCH_GET_METRICS_PATH, 'OK', (performance.now() - started) / 1000);
          call.end();
        };
        if (left === 0) return finish();
        refs.forEach((ref, index) => {
          void answer(ref, signal).then(({ code, list, message }) => {
            if (!call.cancelled) call.write({ index, list: list ?? null, code, message });
            if (--left === 0) finish();
          });
        });
      },
    });
  }
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
