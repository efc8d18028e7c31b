// The adapter's end of the metrics mirror (mirror.proto): a copy of the values the operator answers
// from its last poll, kept current by the operator's Watch stream, so that the adapter answers
// those queries itself. It is used only while the stream is up and each value only within the
// time to live the operator gave it; otherwise queries go to GetMetrics as before. The stream is
// reopened with backoff (and starts with a full snapshot); an operator without the service (KEDA's)
// answers UNIMPLEMENTED, and the replica asks again only now and then.
import { status } from './status.js';
import type { Logger } from 'pino';
import type { MirrorMetrics } from '../observability/metrics.js';
import type { MirrorStream } from './client.js';
import type { CallError } from './grpc-client.js';
import type { MirrorEvent, MirrorKey } from './service.js';

export interface MirrorReplicaOptions {
  /** Opens a Watch stream on the channel to the operator. */
  open(): MirrorStream;
  log: Logger;
  metrics: MirrorMetrics;
  /** How long to wait before asking an operator that had no mirror again. */
  unsupportedRetryMs?: number;
}

const keyOf = (k: MirrorKey) => `${k.namespace}/${k.name}/${k.metricName}`;
const INITIAL_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5_000;

export class MirrorReplica {
  private readonly entries = new Map<string, { value: string; expiresAt: number }>();
  private stream: MirrorStream | undefined;
  private live = false;
  private backoffMs = INITIAL_BACKOFF_MS;
  private retry: NodeJS.Timeout | undefined;
  private unsupportedLogged = false;
  private closed = false;

  constructor(private readonly o: MirrorReplicaOptions) {}

  start(): void {
    if (this.closed || this.stream) return;
    const stream = this.o.open();
    this.stream = stream;
    stream.on('data', (event: MirrorEvent) => this.apply(event));
    stream.on('error', (err: CallError) => this.ended(stream, err));
    stream.on('end', () => this.ended(stream, undefined));
  }

  /** The value to answer with, when the stream is up and the value still within its time to live. */
  lookup(namespace: string, name: string, metricName: string): string | undefined {
    const entry = this.live ? this.entries.get(`${namespace}/${name}/${metricName}`) : undefined;
    const value = entry && entry.expiresAt > Date.now() ? entry.value : undefined;
    this.o.metrics.lookups.inc({ result: value === undefined ? 'miss' : 'hit' });
    return value;
  }

  get isLive(): boolean {
    return this.live;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.stream?.cancel();
    this.setLive(false);
  }

  private apply(event: MirrorEvent): void {
    const now = Date.now();
    if (event.snapshot) {
      this.entries.clear();
      this.backoffMs = INITIAL_BACKOFF_MS;
      if (!this.live) this.o.log.info({ values: event.upserts.length }, 'metrics mirror live: cached metrics are answered here');
      this.setLive(true);
    }
    for (const e of event.upserts) if (e.key) this.entries.set(keyOf(e.key), { value: e.value, expiresAt: now + Number(e.ttlMs) });
    for (const k of event.removals) this.entries.delete(keyOf(k));
    this.o.metrics.entries.set(this.entries.size);
  }

  private ended(stream: MirrorStream, err: CallError | undefined): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    this.setLive(false);
    this.entries.clear();
    this.o.metrics.entries.set(0);
    if (this.closed || err?.code === status.CANCELLED) return;
    let delay: number;
    if (err?.code === status.UNIMPLEMENTED) {
      if (!this.unsupportedLogged) this.o.log.info('the operator has no metrics mirror (a KEDA operator?): every query uses GetMetrics');
      this.unsupportedLogged = true;
      delay = this.o.unsupportedRetryMs ?? 60_000;
    } else {
      this.o.log.info({ reason: err?.details ?? 'stream ended', retryInMs: this.backoffMs }, 'metrics mirror down: queries use GetMetrics meanwhile');
      delay = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    }
    this.retry = setTimeout(() => this.start(), delay);
    this.retry.unref();
  }

  private setLive(live: boolean): void {
    this.live = live;
    this.o.metrics.live.set(live ? 1 : 0);
  }
}
