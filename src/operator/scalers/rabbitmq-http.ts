// The rabbitmq scaler over the management API (protocol http): GET /api/queues/<vhost>/<queue>,
// or, with useRegex, the vhost's queues whose names match, combined by `operation`. Requests go
// through the shared, pooled UpstreamClient (one keep-alive pool for every scaler that connects
// the same way).
import type { CustomCaTrust } from '../../tls/custom-ca.js';
import { UpstreamClient, httpStatusProblem } from './http-upstream.js';
import type { Operation, QueueReader, QueueStatus } from './rabbitmq.js';
import type { ScalerError } from './scaler.js';
import { oneLine, truncate, type TlsMaterial } from './upstream.js';

export interface HttpTarget {
  /** The request: the queue, or the vhost's queue list filtered by the regex. */
  url: URL;
  /** For messages: the URL without credentials or query. */
  shown: string;
  /** The vhost and queue, decoded, for messages. */
  vhost: string;
  queueName: string;
}

/**
 * KEDA's reading of host: the last segment of its path is the vhost (`%2F`, the default vhost,
 * when empty), anything before it a path prefix (a management API behind a reverse proxy).
 * vhostName replaces the vhost.
 */
export function httpTarget(host: URL, vhostName: string | undefined, queueName: string, useRegex: boolean, pageSize: number): HttpTarget {
  const parts = host.pathname.split('/');
  let vhostSegment = parts.pop() ?? '';
  const prefix = parts.filter((s) => s !== '').map((s) => `/${s}`).join('');
  if (vhostName !== undefined) vhostSegment = pathSegment(vhostName);
  if (vhostSegment === '') vhostSegment = '%2F';
  const base = `${host.origin}${prefix}/api/queues/${vhostSegment}`;
  const shown = useRegex ? base : `${base}/${pathSegment(queueName)}`;
  const url = new URL(shown);
  if (useRegex) {
    // KEDA's query: the first page of the matching queues, pageSize of them.
    url.search = new URLSearchParams({ page: '1', use_regex: 'true', pagination: 'false', name: queueName, page_size: String(pageSize) }).toString();
  }
  return { url, shown, vhost: safeDecode(vhostSegment), queueName };
}

export interface HttpReaderOptions {
  target: HttpTarget;
  headers: Record<string, string>;
  useRegex: boolean;
  operation: Operation;
  excludeUnacknowledged: boolean;
  trust: CustomCaTrust;
  timeoutMs: number;
  unsafeSsl: boolean;
  tls: TlsMaterial;
  fail: (problem: string) => ScalerError;
}

/** One queue as the management API describes it (the fields read). */
interface QueueInfo {
  name?: unknown;
  messages?: unknown;
  messages_ready?: unknown;
  message_stats?: { publish_details?: { rate?: unknown } };
}

export class RabbitmqHttpReader implements QueueReader {
  private readonly client: UpstreamClient;

  constructor(private readonly o: HttpReaderOptions) {
    this.client = new UpstreamClient({
      trust: o.trust,
      timeoutMs: o.timeoutMs,
      https: o.target.url.protocol === 'https:',
      unsafeSsl: o.unsafeSsl,
      tls: o.tls,
      clientCertHint: 'give cert and key in the trigger authentication, with tls enable',
      clientCertRefusedHint: 'does it trust the CA that issued the auth parameter cert?',
      fail: o.fail,
    });
  }

  async read(signal: AbortSignal): Promise<QueueStatus> {
    const { fail, target } = this.o;
    const res = await this.client.get(target.url, this.o.headers, signal);
    if (!res.ok) throw fail(httpStatusProblem(res.status, res.text) + this.statusHint(res.status));
    let doc: unknown;
    try {
      doc = JSON.parse(res.text);
    } catch {
      throw fail(`the answer is not JSON (${truncate(oneLine(res.text), 64)}): is host the management API (port 15672 or 15671)?`);
    }
    if (!this.o.useRegex) return this.status(doc);
    const page = doc as { items?: unknown; page_count?: unknown } | null;
    if (page === null || typeof page !== 'object' || !Array.isArray(page.items)) throw fail('the answer is not a list of queues: is host the management API?');
    if (typeof page.page_count === 'number' && page.page_count > 1) {
      throw fail(`the regex "${truncate(target.queueName, 64)}" matches more queues than pageSize (${page.items.length}): raise pageSize (RabbitMQ allows up to 500) or narrow the regex`);
    }
    return combine(page.items.map((q) => this.status(q)), this.o.operation);
  }

  close(): void {
    this.client.close();
  }

  /** A queue's counts; a queue without them (its statistics not in yet) is an error, not 0. */
  private status(doc: unknown): QueueStatus {
    const q = doc as QueueInfo | null;
    if (q === null || typeof q !== 'object' || typeof q.name !== 'string') throw this.o.fail('the answer does not describe a queue: is host the management API?');
    const field = this.o.excludeUnacknowledged ? 'messages_ready' : 'messages';
    const messages = q[field];
    if (typeof messages !== 'number' || !Number.isFinite(messages)) {
      throw this.o.fail(`RabbitMQ has no ${field} count for queue "${truncate(q.name, 64)}" yet (its statistics come every few seconds; a queue just created, or one that is down, has none)`);
    }
    const rate = q.message_stats?.publish_details?.rate;
    // No publish statistics: nothing was published lately.
    return { messages, publishRate: typeof rate === 'number' && Number.isFinite(rate) ? rate : 0 };
  }

  private statusHint(status: number): string {
    const { vhost, queueName } = this.o.target;
    if (status === 404) {
      return this.o.useRegex ?
          ` (no vhost "${truncate(vhost, 64)}": check vhostName or the vhost in host's path)`
        : ` (no queue "${truncate(queueName, 64)}" in vhost "${truncate(vhost, 64)}": check queueName, and vhostName or the vhost in host's path)`;
    }
    if (status === 401) return ' (check the username and password: the trigger authentication, or host\'s; the user needs a management tag, e.g. monitoring, and access to the vhost)';
    return '';
  }
}

/** KEDA's composition of the queues a regex matched: sum, avg (queue lengths rounded down) or max. */
function combine(queues: QueueStatus[], operation: Operation): QueueStatus {
  if (queues.length === 0) return { messages: 0, publishRate: 0 };
  const sum = queues.reduce((a, q) => ({ messages: a.messages + q.messages, publishRate: a.publishRate + q.publishRate }), { messages: 0, publishRate: 0 });
  switch (operation) {
    case 'sum':
      return sum;
    case 'avg':
      return { messages: Math.floor(sum.messages / queues.length), publishRate: sum.publishRate / queues.length };
    case 'max':
      return { messages: Math.max(0, ...queues.map((q) => q.messages)), publishRate: Math.max(0, ...queues.map((q) => q.publishRate)) };
  }
}

/** A path segment: percent-encoded, and never `.` or `..` (which URLs resolve away). */
function pathSegment(s: string): string {
  const e = encodeURIComponent(s);
  return e === '.' || e === '..' ? e.replace(/\./g, '%2E') : e;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
