// The adapter's end of the channel: one long-lived HTTP/2 connection with keepalive, a deadline
// on every call, retries with backoff for UNAVAILABLE only, reconnection by itself, and a fresh
// channel (with the new certificates) whenever the TLS material changes. Queries that arrive
// together (in one turn of the event loop) go in one MetricsBatch call when the operator has it,
// each answered as GetMetrics would answer it; a lone query, or any against a KEDA operator, is
// a GetMetrics call.
import { EventEmitter } from 'node:events';
import { status } from './status.js';
import type { Logger } from 'pino';
import type { GrpcMetrics } from '../observability/metrics.js';
import type { LiveTls } from '../tls/live-tls.js';
import { CONNECTIVITY_STATES, CallError, GrpcConnection } from './grpc-client.js';
import {
  BATCH_GET_METRICS_PATH,
  GET_METRICS_PATH,
  MIRROR_WATCH_PATH,
  metricsBatchDefinition,
  metricsMirrorDefinition,
  metricsServiceDefinition,
  type ExternalMetricValueList,
  type GetMetricsBatch,
  type MirrorEvent,
  type ScaledObjectRef,
} from './service.js';

export interface ChannelClientOptions {
  address: string;
  /** The name the operator's certificate must cover (and the :authority), instead of the address's host. */
  authority?: string;
  tls: LiveTls;
  /** Bundles the operator's certificate must chain to (the cert dir's ca.crt). */
  trust: readonly string[];
  /** Per-call deadline, retries included. */
  timeoutMs: number;
  /** How long the channel may be down before readiness says so. */
  readinessGraceMs: number;
  metrics: GrpcMetrics;
  log: Logger;
  /** After an operator without MetricsBatch (KEDA's) answered UNIMPLEMENTED, how long until it is tried again (default 60 s). */
  batchRetryMs?: number;
}

const getMetrics = metricsServiceDefinition.GetMetrics;
const batchGetMetrics = metricsBatchDefinition.GetMetrics;
const mirrorWatch = metricsMirrorDefinition.Watch;

/** A query waiting for the next flush, or in a call. */
interface Pending {
  ref: ScaledObjectRef;
  signal: AbortSignal;
  deadline: number;
  started: number;
  settled: boolean;
  resolve(list: ExternalMetricValueList): void;
  reject(err: CallError): void;
}

/** The operator's Watch stream as the mirror replica reads it: 'data', then 'error' or 'end'. */
export interface MirrorStream {
  on(event: 'data', listener: (event: MirrorEvent) => void): this;
  on(event: 'error', listener: (err: CallError) => void): this;
  on(event: 'end', listener: () => void): this;
  cancel(): void;
}

export class ChannelClient {
  private readonly connection: GrpcConnection;
  private downSince: number | undefined;
  private lastError = '';
  private queue: Pending[] = [];
  /** Until when the operator is taken to have no MetricsBatch (it answered UNIMPLEMENTED). */
  private batchUnsupportedUntil = 0;

  constructor(private readonly opts: ChannelClientOptions) {
    this.connection = new GrpcConnection({
      address: opts.address,
      ...(opts.authority ? { authority: opts.authority } : {}),
      tls: opts.tls,
      trust: opts.trust,
      onState: (state, reason) => {
        opts.metrics.setState(state, CONNECTIVITY_STATES);
        if (state === 'READY') this.downSince = undefined;
        else if (state === 'TRANSIENT_FAILURE') this.noteDown(reason || 'connection failed');
      },
    });
    opts.metrics.setState(this.connection.state, CONNECTIVITY_STATES);
    opts.tls.onChange(() => opts.log.info({ address: opts.address }, 'TLS material changed: new calls use a new connection'));
  }

  getMetrics(ref: ScaledObjectRef, signal: AbortSignal): Promise<ExternalMetricValueList> {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      this.queue.push({ ref, signal, deadline: Date.now() + this.opts.timeoutMs, started, settled: false, resolve, reject });
      // Everything asked in this turn of the event loop goes out together.
      if (this.queue.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const queries: Pending[] = [];
    for (const q of this.queue) {
      if (q.signal.aborted) q.reject(cancelled());
      else queries.push(q);
    }
    this.queue = [];
    if (queries.length === 1 || Date.now() < this.batchUnsupportedUntil) for (const q of queries) this.unary(q);
    else if (queries.length > 1) this.batch(queries);
  }

  private unary(q: Pending): void {
    let value: ExternalMetricValueList | undefined;
    const call = this.connection.call(
      GET_METRICS_PATH,
      getMetrics.requestSerialize(q.ref),
      q.deadline,
      {
        onMessage: (bytes) => (value = getMetrics.responseDeserialize(bytes)),
        onStatus: (code, details) => {
          q.signal.removeEventListener('abort', cancel);
          if (code === status.OK && !value) this.settle(q, GET_METRICS_PATH, new CallError(status.INTERNAL, 'the operator answered without a message'));
          else this.settle(q, GET_METRICS_PATH, code === status.OK ? undefined : new CallError(code, details), value);
        },
      },
      true,
    );
    const cancel = () => call.cancel();
    q.signal.addEventListener('abort', cancel, { once: true });
  }

  /** One MetricsBatch call; each answer settles its query as it arrives. */
  private batch(queries: Pending[]): void {
    const aborts = queries.map((q) => {
      const abort = () => {
        this.settle(q, BATCH_GET_METRICS_PATH, cancelled());
        if (queries.every((x) => x.settled)) call.cancel();
      };
      q.signal.addEventListener('abort', abort, { once: true });
      return () => q.signal.removeEventListener('abort', abort);
    });
    const request: GetMetricsBatch = { refs: queries.map((q) => q.ref) };
    const call = this.connection.call(
      BATCH_GET_METRICS_PATH,
      batchGetMetrics.requestSerialize(request),
      Math.min(...queries.map((q) => q.deadline)),
      {
        onMessage: (bytes) => {
          const r = batchGetMetrics.responseDeserialize(bytes);
          const q = queries[r.index];
          if (q) this.settle(q, BATCH_GET_METRICS_PATH, r.code === status.OK ? undefined : new CallError(r.code, r.message), r.list ?? undefined);
        },
        // The call's status comes last, after every answer: what is left unanswered is settled by it.
        onStatus: (code, details) => {
          for (const remove of aborts) remove();
          const left = queries.filter((q) => !q.settled);
          if (code === status.UNIMPLEMENTED) {
            // A KEDA operator: each query as GetMetrics, and no batch for a while.
            this.batchUnsupportedUntil = Date.now() + (this.opts.batchRetryMs ?? 60_000);
            this.opts.log.info({ address: this.opts.address }, 'the operator has no MetricsBatch (a KEDA operator?): each query is a GetMetrics call');
            for (const q of left) this.unary(q);
            return;
          }
          if (left.length === 0) return;
          const err = code === status.OK ? new CallError(status.INTERNAL, 'the operator ended the batch without answering this query') : new CallError(code, details);
          for (const q of left) this.settle(q, BATCH_GET_METRICS_PATH, err);
        },
      },
      true,
    );
  }

  /** Resolves or rejects a query once, recording it and what it says of the channel. */
  private settle(q: Pending, path: string, err: CallError | undefined, value?: ExternalMetricValueList): void {
    if (q.settled) return;
    q.settled = true;
    const code = err ? err.code : status.OK;
    this.opts.metrics.observe(path, status[code] ?? String(code), (performance.now() - q.started) / 1000);
    if (err) {
      const unreachable = err.code === status.UNAVAILABLE || (err.code === status.DEADLINE_EXCEEDED && this.connection.state !== 'READY');
      if (unreachable) this.noteDown(err.details);
      // Retries against an operator that is not there can use up the deadline: that is still
      // "unreachable" (503), not "slow" (504).
      q.reject(err.code === status.DEADLINE_EXCEEDED && unreachable ? new CallError(status.UNAVAILABLE, err.details) : err);
    } else {
      this.downSince = undefined;
      q.resolve(value as ExternalMetricValueList);
    }
  }

  /** The operator's metrics mirror stream (kedats.v1.MetricsMirror/Watch), on the same connection. */
  watchMirror(): MirrorStream {
    const stream = new EventEmitter() as EventEmitter & MirrorStream;
    const call = this.connection.call(MIRROR_WATCH_PATH, mirrorWatch.requestSerialize({}), Infinity, {
      onMessage: (bytes) => stream.emit('data', mirrorWatch.responseDeserialize(bytes)),
      // Deferred: a connection in TRANSIENT_FAILURE fails the call before the caller has listeners.
      onStatus: (code, details) => queueMicrotask(() => (code === status.OK ? stream.emit('end') : stream.emit('error', new CallError(code, details)))),
    });
    stream.cancel = () => call.cancel();
    return stream;
  }

  /** Ready while the channel works, and for a grace period after it stops working. */
  readiness(): { ready: boolean; reason?: string } {
    if (this.downSince === undefined) return { ready: true };
    const downMs = Date.now() - this.downSince;
    if (downMs <= this.opts.readinessGraceMs) return { ready: true };
    return { ready: false, reason: `channel to ${this.opts.address} down for ${Math.round(downMs / 1000)}s: ${this.lastError || 'not connected'}` };
  }

  close(): void {
    this.connection.close();
  }

  private noteDown(reason: string): void {
    this.downSince ??= Date.now();
    this.lastError = reason;
  }
}

const cancelled = () => new CallError(status.CANCELLED, 'Cancelled on client');
