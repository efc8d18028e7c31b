// The operator's end of the channel over mutual TLS 1.3: KEDA's api.MetricsService/GetMetrics,
// our kedats.v1.MetricsBatch/GetMetrics (several of them in one call), and our
// kedats.v1.MetricsMirror/Watch stream when the operator has a mirror to serve.
import { status } from './status.js';
import type { Logger } from 'pino';
import { parseBindAddress } from '../config/bind-address.js';
import type { GrpcMetrics } from '../observability/metrics.js';
import type { LiveTls } from '../tls/live-tls.js';
import { startGrpcServer, type GrpcMethod, type ServerCall } from './grpc-server.js';
import {
  BATCH_GET_METRICS_PATH,
  GET_METRICS_PATH,
  MIRROR_WATCH_PATH,
  metricsBatchDefinition,
  metricsMirrorDefinition,
  metricsServiceDefinition,
  type ExternalMetricValueList,
  type MethodDefinition,
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
  const methods = new Map<string, GrpcMethod>();
  methods.set(
    GET_METRICS_PATH,
    method(metricsServiceDefinition.GetMetrics, (call) => {
      const started = performance.now();
      void answer(call.request, call.signal).then(({ code, list, message }) => {
        opts.metrics.observe(GET_METRICS_PATH, status[code] ?? String(code), (performance.now() - started) / 1000);
        if (code === status.OK && list) call.write(list);
        call.end(code, message);
      });
    }),
  );
  if (opts.batch !== false) {
    methods.set(
      BATCH_GET_METRICS_PATH,
      method(metricsBatchDefinition.GetMetrics, (call) => {
        const started = performance.now();
        const refs = call.request.refs ?? [];
        let left = refs.length;
        const finish = () => {
          opts.metrics.observe(BATCH_GET_METRICS_PATH, 'OK', (performance.now() - started) / 1000);
          call.end();
        };
        if (left === 0) return finish();
        refs.forEach((ref, index) => {
          void answer(ref, call.signal).then(({ code, list, message }) => {
            call.write({ index, list: list ?? null, code, message });
            if (--left === 0) finish();
          });
        });
      }),
    );
  }
  // Open Watch streams never end by themselves: shutdown ends them, or it would wait its whole grace.
  const watches = new Set<ServerCall<object, MirrorEvent>>();
  if (opts.mirror) {
    const mirror = opts.mirror;
    methods.set(
      MIRROR_WATCH_PATH,
      method(metricsMirrorDefinition.Watch, (call) => {
        watches.add(call);
        call.signal.addEventListener('abort', () => watches.delete(call));
        streamMirror(call, mirror);
      }),
    );
  }
  // KEDA's `:port` (and 0.0.0.0, ::) is every interface of both address families, as in Go (listenHost).
  const { host, port } = parseBindAddress(opts.bindAddress, 'metrics service bind address');
  const server = await startGrpcServer(host, port, { tls: opts.tls, trust: opts.trust, methods, log: opts.log, maxConnectionAgeMs: opts.maxConnectionAgeMs, maxConnectionAgeGraceMs: opts.maxConnectionAgeGraceMs });
  opts.metrics.state.set(1);
  opts.log.info({ address: opts.bindAddress, port: server.port }, 'metrics service listening (gRPC, mutual TLS 1.3)');
  return {
    port: server.port,
    async shutdown(graceMs) {
      opts.metrics.state.set(0);
      for (const w of watches) w.end();
      await server.shutdown(graceMs);
    },
  };
}

/** A method of the channel's services, served by `handle`. */
function method<Req, Res>(def: MethodDefinition<Req, Res>, handle: (call: ServerCall<Req, Res>) => void): GrpcMethod {
  return {
    decode: (bytes) => def.requestDeserialize(bytes),
    encode: (message) => def.responseSerialize(message as Res),
    handle: handle as (call: ServerCall<unknown, unknown>) => void,
  };
}

/**
 * One adapter's Watch: the snapshot, then the changes, coalesced per turn of the event loop (and
 * for as long as the connection is not ready for more: the latest value of a key wins).
 */
function streamMirror(call: ServerCall<object, MirrorEvent>, mirror: MirrorSource): void {
  const upserts = new Map<string, MirrorEntry>();
  const removals = new Map<string, MirrorKey>();
  let scheduled = false;
  let blocked = false;
  const keyOf = (k: MirrorKey) => `${k.namespace}/${k.name}/${k.metricName}`;
  const flush = () => {
    scheduled = false;
    if (blocked || call.ended || (upserts.size === 0 && removals.size === 0)) return;
    const event: MirrorEvent = { snapshot: false, upserts: [...upserts.values()], removals: [...removals.values()] };
    upserts.clear();
    removals.clear();
    if (!call.write(event)) {
      blocked = true;
      call.onDrain(() => {
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
  call.signal.addEventListener('abort', unsubscribe);
  call.write({ snapshot: true, upserts: mirror.snapshot(), removals: [] });
}
