// The adapter's end of the channel: one long-lived HTTP/2 connection with keepalive, a deadline
// on every call, retries with backoff for UNAVAILABLE only, reconnection by itself, and a fresh
// channel (with the new certificates) whenever the TLS material changes. Queries that arrive
// together (in one turn of the event loop) go in one MetricsBatch call when the operator has it,
// each answered as GetMetrics would answer it; a lone query, or any against a KEDA operator, is
// a GetMetrics call.
import { Metadata, connectivityState, credentials, status, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { GrpcMetrics } from '../observability/metrics.js';
import type { LiveTls } from '../tls/live-tls.js';
import { channelCredentials } from './credentials.js';
import {
  BATCH_GET_METRICS_PATH,
  GET_METRICS_PATH,
  MetricsBatchClient,
  MetricsMirrorClient,
  MetricsServiceClient,
  type ExternalMetricValueList,
  type GetMetricsBatch,
  type GetMetricsResult,
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

const STATES = ['IDLE', 'CONNECTING', 'READY', 'TRANSIENT_FAILURE', 'SHUTDOWN'] as const;

// The method name must be present, or grpc-js ignores the policy (KEDA's client has this bug).
const SERVICE_CONFIG = JSON.stringify({
  methodConfig: [
    {
      name: [
        { service: 'api.MetricsService', method: 'GetMetrics' },
        { service: 'kedats.v1.MetricsBatch', method: 'GetMetrics' },
      ],
      retryPolicy: {
        maxAttempts: 4,
        initialBackoff: '0.1s',
        maxBackoff: '1s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
});

type GetMetrics = (
  ref: ScaledObjectRef,
  options: { deadline: Date },
  callback: (err: ServiceError | null, value?: ExternalMetricValueList) => void,
) => { cancel(): void };

/** A query waiting for the next flush, or in a batch call. */
interface Pending {
  ref: ScaledObjectRef;
  signal: AbortSignal;
  deadline: number;
  started: number;
  settled: boolean;
  resolve(list: ExternalMetricValueList): void;
  reject(err: ServiceError): void;
}

export class ChannelClient {
  private client: Client;
  private batchClient: Client;
  private downSince: number | undefined;
  private lastError = '';
  private closed = false;
  private queue: Pending[] = [];
  /** Until when the operator is taken to have no MetricsBatch (it answered UNIMPLEMENTED). */
  private batchUnsupportedUntil = 0;

  constructor(private readonly opts: ChannelClientOptions) {
    [this.client, this.batchClient] = this.connect();
    opts.tls.onChange(() => this.rotate());
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
    try {
      if (queries.length === 1 || Date.now() < this.batchUnsupportedUntil) for (const q of queries) this.unary(q);
      else if (queries.length > 1) this.batch(queries);
    } catch (err) {
      // grpc-js throws, instead of failing the call, on a channel closed meanwhile (the adapter stopping).
      for (const q of queries) this.settle(q, GET_METRICS_PATH, this.client, serviceError(status.UNAVAILABLE, (err as Error).message));
    }
  }

  private unary(q: Pending): void {
    const current = this.client;
    const client = current as unknown as { GetMetrics: GetMetrics };
    const call = client.GetMetrics(q.ref, { deadline: new Date(q.deadline) }, (err, value) => {
      q.signal.removeEventListener('abort', cancel);
      this.settle(q, GET_METRICS_PATH, current, err ?? undefined, value);
    });
    const cancel = () => call.cancel();
    q.signal.addEventListener('abort', cancel, { once: true });
  }

  /** One MetricsBatch call; each answer settles its query as it arrives. */
  private batch(queries: Pending[]): void {
    const current = this.client;
    const request: GetMetricsBatch = { refs: queries.map((q) => q.ref) };
    const client = this.batchClient as unknown as { GetMetrics(req: GetMetricsBatch, options: { deadline: Date }): ClientReadableStream<GetMetricsResult> };
    const call = client.GetMetrics(request, { deadline: new Date(Math.min(...queries.map((q) => q.deadline))) });
    const aborts = queries.map((q) => {
      const abort = () => {
        this.settle(q, BATCH_GET_METRICS_PATH, current, cancelled());
        if (queries.every((x) => x.settled)) call.cancel();
      };
      q.signal.addEventListener('abort', abort, { once: true });
      return () => q.signal.removeEventListener('abort', abort);
    });
    call.on('data', (r: GetMetricsResult) => {
      const q = queries[r.index];
      if (!q) return;
      this.settle(q, BATCH_GET_METRICS_PATH, current, r.code === status.OK ? undefined : serviceError(r.code, r.message), r.list ?? undefined);
    });
    // The call's status comes last, after every answer: what is left unanswered is settled by it.
    call.on('error', () => {});
    call.on('status', (s: { code: status; details: string }) => {
      for (const remove of aborts) remove();
      const left = queries.filter((q) => !q.settled);
      if (s.code === status.UNIMPLEMENTED) {
        // A KEDA operator: each query as GetMetrics, and no batch for a while.
        this.batchUnsupportedUntil = Date.now() + (this.opts.batchRetryMs ?? 60_000);
        this.opts.log.info({ address: this.opts.address }, 'the operator has no MetricsBatch (a KEDA operator?): each query is a GetMetrics call');
        for (const q of left) this.unary(q);
        return;
      }
      if (left.length === 0) return;
      const err = s.code === status.OK ? serviceError(status.INTERNAL, 'the operator ended the batch without answering this query') : serviceError(s.code, s.details);
      for (const q of left) this.settle(q, BATCH_GET_METRICS_PATH, current, err);
    });
  }

  /** Resolves or rejects a query once, recording it and what it says of the channel. */
  private settle(q: Pending, path: string, client: Client, err: ServiceError | undefined, value?: ExternalMetricValueList): void {
    if (q.settled) return;
    q.settled = true;
    const code = err ? err.code : status.OK;
    this.opts.metrics.observe(path, status[code] ?? String(code), (performance.now() - q.started) / 1000);
    if (err) {
      const unreachable = err.code === status.UNAVAILABLE || (err.code === status.DEADLINE_EXCEEDED && !this.connected(client));
      if (unreachable) this.noteDown(err.details);
      // Retries against an operator that is not there can use up the deadline: that is still
      // "unreachable" (503), not "slow" (504).
      q.reject(err.code === status.DEADLINE_EXCEEDED && unreachable ? Object.assign(err, { code: status.UNAVAILABLE }) : err);
    } else {
      this.downSince = undefined;
      q.resolve(value as ExternalMetricValueList);
    }
  }

  /** The operator's metrics mirror stream (kedats.v1.MetricsMirror/Watch), on the current channel. */
  watchMirror(): ClientReadableStream<MirrorEvent> {
    // The same HTTP/2 connection as GetMetrics; the credentials argument is not used with it.
    const mirror = new MetricsMirrorClient(this.opts.address, credentials.createInsecure(), { channelOverride: this.client.getChannel() });
    return (mirror as unknown as { Watch(req: object): ClientReadableStream<MirrorEvent> }).Watch({});
  }

  /** Ready while the channel works, and for a grace period after it stops working. */
  readiness(): { ready: boolean; reason?: string } {
    if (this.downSince === undefined) return { ready: true };
    const downMs = Date.now() - this.downSince;
    if (downMs <= this.opts.readinessGraceMs) return { ready: true };
    return { ready: false, reason: `channel to ${this.opts.address} down for ${Math.round(downMs / 1000)}s: ${this.lastError || 'not connected'}` };
  }

  private connected(client: Client): boolean {
    return client.getChannel().getConnectivityState(false) === connectivityState.READY;
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }

  private connect(): [Client, Client] {
    const client = new MetricsServiceClient(this.opts.address, channelCredentials(this.opts.tls, this.opts.trust), {
      'grpc.service_config': SERVICE_CONFIG,
      'grpc.enable_retries': 1,
      'grpc.keepalive_time_ms': 20_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      // Reconnect promptly after the operator restarts or moves.
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5_000,
      'grpc.client_idle_timeout_ms': 2_147_483_647,
      'grpc.enable_channelz': 0,
      ...(this.opts.authority ? { 'grpc.ssl_target_name_override': this.opts.authority, 'grpc.default_authority': this.opts.authority } : {}),
    });
    this.watch(client);
    // The same HTTP/2 connection; the credentials argument is not used with it.
    return [client, new MetricsBatchClient(this.opts.address, credentials.createInsecure(), { channelOverride: client.getChannel() })];
  }

  private watch(client: Client): void {
    const channel = client.getChannel();
    const step = () => {
      if (this.closed || this.client !== client) return;
      const state = channel.getConnectivityState(true);
      this.opts.metrics.setState(STATES[state] ?? 'IDLE', STATES);
      if (state === connectivityState.READY) this.downSince = undefined;
      else if (state === connectivityState.TRANSIENT_FAILURE) this.noteDown('connection failed');
      channel.watchConnectivityState(state, Infinity, step);
    };
    // The first watch must wait for the constructor to store the client.
    queueMicrotask(step);
  }

  private noteDown(reason: string): void {
    this.downSince ??= Date.now();
    this.lastError = reason;
  }

  /** New material: new channel for new calls; the old one finishes what it has, then closes. */
  private rotate(): void {
    const old = this.client;
    [this.client, this.batchClient] = this.connect();
    this.opts.log.info({ address: this.opts.address }, 'TLS material changed: new calls use a new channel');
    setTimeout(() => old.close(), this.opts.timeoutMs + 1_000).unref();
  }
}

function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

const cancelled = () => serviceError(status.CANCELLED, 'Cancelled on client');
