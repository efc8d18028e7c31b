// The adapter's end of the channel: one long-lived HTTP/2 connection with keepalive, a deadline
// on every call, retries with backoff for UNAVAILABLE only, reconnection by itself, and a fresh
// channel (with the new certificates) whenever the TLS material changes.
import { connectivityState, credentials, status, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { GrpcMetrics } from '../observability/metrics.js';
import type { LiveTls } from '../tls/live-tls.js';
import { channelCredentials } from './credentials.js';
import { GET_METRICS_PATH, MetricsMirrorClient, MetricsServiceClient, type ExternalMetricValueList, type MirrorEvent, type ScaledObjectRef } from './service.js';

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
}

const STATES = ['IDLE', 'CONNECTING', 'READY', 'TRANSIENT_FAILURE', 'SHUTDOWN'] as const;

// The method name must be present, or grpc-js ignores the policy (KEDA's client has this bug).
const SERVICE_CONFIG = JSON.stringify({
  methodConfig: [
    {
      name: [{ service: 'api.MetricsService', method: 'GetMetrics' }],
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

export class ChannelClient {
  private client: Client;
  private downSince: number | undefined;
  private lastError = '';
  private closed = false;

  constructor(private readonly opts: ChannelClientOptions) {
    this.client = this.connect();
    opts.tls.onChange(() => this.rotate());
  }

  getMetrics(ref: ScaledObjectRef, signal: AbortSignal): Promise<ExternalMetricValueList> {
    const started = performance.now();
    const current = this.client;
    const client = current as unknown as { GetMetrics: GetMetrics };
    return new Promise((resolve, reject) => {
      const call = client.GetMetrics(ref, { deadline: new Date(Date.now() + this.opts.timeoutMs) }, (err, value) => {
        signal.removeEventListener('abort', cancel);
        const code = err ? err.code : status.OK;
        this.opts.metrics.observe(GET_METRICS_PATH, status[code] ?? String(code), (performance.now() - started) / 1000);
        if (err) {
          const unreachable = err.code === status.UNAVAILABLE || (err.code === status.DEADLINE_EXCEEDED && !this.connected(current));
          if (unreachable) this.noteDown(err.details);
          // Retries against an operator that is not there can use up the deadline: that is still
          // "unreachable" (503), not "slow" (504).
          reject(err.code === status.DEADLINE_EXCEEDED && unreachable ? Object.assign(err, { code: status.UNAVAILABLE }) : err);
        } else {
          this.downSince = undefined;
          resolve(value as ExternalMetricValueList);
        }
      });
      const cancel = () => call.cancel();
      signal.addEventListener('abort', cancel, { once: true });
    });
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

  private connect(): Client {
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
    return client;
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
    this.client = this.connect();
    this.opts.log.info({ address: this.opts.address }, 'TLS material changed: new calls use a new channel');
    setTimeout(() => old.close(), this.opts.timeoutMs + 1_000).unref();
  }
}
