// KEDA's `redis-streams` scaler: a Redis stream's backlog, read one of three ways.
// https://keda.sh/docs/latest/scalers/redis-streams/
//
// KEDA's rules for which one applies:
//   - no consumerGroup: the stream's length (XLEN; a missing stream is 0), target streamLength;
//   - consumerGroup and a lagCount other than 0: the group's lag (XINFO GROUPS; Redis 7+), target
//     lagCount. A missing stream is 0; a stream without the group yet counts its whole length
//     (what the lag will be once the group exists), as KEDA does;
//   - consumerGroup otherwise: the group's pending entries (XPENDING), target pendingEntriesCount.
// pendingEntriesCount and streamLength default to 5. Active strictly above activationLagCount
// (default 0) in every mode, as in KEDA. Metric name `s<index>-redis-streams-<stream>`.
//
// Differences: a lag Redis cannot compute is an error saying why, not KEDA's 0 (XINFO GROUPS
// answers nil after entries past the group's position were deleted, and Redis 7.0 does for a
// group created at `$` on a stream that had entries, until it has read to the end: KEDA's 0 keeps
// the workload at zero). lagCount against a Redis older than 7 is told from XINFO GROUPS itself
// (no `lag` field) rather than from INFO, which a least-privilege ACL user may not run.
//
// The connection (address or host/port, username/password, databaseIndex, TLS) is shared with
// the redis scaler: see redis-connection.ts.
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { readParameters, type ParamSpec } from './parameters.js';
import { REDIS_CONNECTION_PARAMETERS, REDIS_SERVER_PARAMETERS, RedisUpstream, wholeNumber } from './redis-connection.js';
import type { Scaler, ScalerContext, ScalerFactory } from './scaler.js';
import { truncate } from './upstream.js';

const TYPE = 'redis-streams';

type Mode = 'streamLength' | 'pendingEntriesCount' | 'lagCount';

/** What the redis-streams scaler reads (the README's table is generated from this). */
export const REDIS_STREAMS_PARAMETERS: readonly ParamSpec[] = [
  ...REDIS_SERVER_PARAMETERS,
  { name: 'stream', type: 'string', from: 'metadata', required: true, doc: 'The stream\'s key.' },
  { name: 'consumerGroup', type: 'string', from: 'metadata', doc: 'A consumer group: its pending entries (XPENDING), or its lag with lagCount. Without it, the stream\'s length (XLEN).' },
  { name: 'pendingEntriesCount', type: 'number', from: 'metadata', default: 5, doc: 'With consumerGroup and no lagCount: the HPA target (a whole number).' },
  { name: 'streamLength', type: 'number', from: 'metadata', default: 5, doc: 'Without consumerGroup: the HPA target (a whole number).' },
  { name: 'lagCount', type: 'number', from: 'metadata', doc: 'With consumerGroup, other than 0: scale on the group\'s lag (Redis 7+), this being the HPA target (a whole number).' },
  { name: 'activationLagCount', type: 'number', from: 'metadata', default: 0, doc: 'Active (scaled from zero) strictly above this value, whichever is read (a whole number).' },
  ...REDIS_CONNECTION_PARAMETERS,
];

export const createRedisStreamsScaler: ScalerFactory = (ctx) => new RedisStreamsScaler(ctx);

class RedisStreamsScaler implements Scaler {
  readonly metricName: string;
  readonly targetValue: number;
  private readonly activationLagCount: number;
  private readonly stream: string;
  private readonly group: string | undefined;
  private readonly mode: Mode;
  private readonly upstream: RedisUpstream;

  constructor(ctx: ScalerContext) {
    const p = readParameters(TYPE, REDIS_STREAMS_PARAMETERS, ctx);
    this.stream = p.string('stream')!;
    this.group = p.string('consumerGroup');
    const pending = wholeNumber(TYPE, p, 'pendingEntriesCount')!;
    const length = wholeNumber(TYPE, p, 'streamLength')!;
    const lag = wholeNumber(TYPE, p, 'lagCount') ?? 0;
    this.activationLagCount = wholeNumber(TYPE, p, 'activationLagCount')!;
    // KEDA's rules (redisStreamsMetadata.Validate).
    if (this.group === undefined) {
      this.mode = 'streamLength';
      this.targetValue = length;
    } else if (lag !== 0) {
      this.mode = 'lagCount';
      this.targetValue = lag;
    } else {
      this.mode = 'pendingEntriesCount';
      this.targetValue = pending;
    }
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`redis-streams-${this.stream}`));
    this.upstream = new RedisUpstream(TYPE, p, ctx);
  }

  isActive(value: number): boolean {
    return value > this.activationLagCount; // KEDA: strictly above, in every mode
  }

  async getMetricValue(signal: AbortSignal): Promise<number> {
    switch (this.mode) {
      case 'streamLength':
        return this.count(await this.upstream.call(signal, (c) => c.xlen(this.stream), (e) => this.explain(e, 'XLEN')), 'XLEN');
      case 'pendingEntriesCount': {
        const reply = await this.upstream.call(signal, (c) => c.xpending(this.stream, this.group!), (e) => this.explain(e, 'XPENDING'));
        // The summary form: [count, smallest id, greatest id, [[consumer, count], ...]].
        return this.count(Array.isArray(reply) ? reply[0] : reply, 'XPENDING');
      }
      case 'lagCount':
        return this.lag(signal);
    }
  }

  close(): void {
    this.upstream.close();
  }

  private async lag(signal: AbortSignal): Promise<number> {
    const group = this.group!;
    const answer = await this.upstream.call(
      signal,
      async (c) => {
        let groups: unknown;
        try {
          groups = await c.xinfo('GROUPS', this.stream);
        } catch (err) {
          // No stream yet: nothing to catch up with (KEDA: 0).
          if (err instanceof Error && /^ERR no such key/.test(err.message)) return { lag: 0 as number | null };
          throw err;
        }
        if (!Array.isArray(groups)) return { unexpected: groups };
        for (const g of groups) {
          const fields = pairs(g);
          if (fields.get('name') !== group) continue;
          if (!fields.has('lag')) return { noLagField: true };
          const lag = fields.get('lag');
          return { lag: lag === null ? null : Number(lag) };
        }
        // The stream exists, the group not yet (its consumers are scaled to zero and create it on
        // start): the lag it will have is the stream's length (KEDA's rule).
        return { lag: await c.xlen(this.stream), noGroup: true };
      },
      (e) => this.explain(e, 'XINFO GROUPS'),
    );
    if ('unexpected' in answer) throw this.upstream.fail(`XINFO GROUPS answered ${truncate(JSON.stringify(answer.unexpected) ?? String(answer.unexpected), 64)}, not a list of groups`);
    if ('noLagField' in answer) throw this.upstream.fail('lagCount needs Redis 7 or newer: this server\'s XINFO GROUPS has no lag (use pendingEntriesCount, or no lagCount)');
    if (answer.lag === null) {
      throw this.upstream.fail(
        `Redis cannot tell the lag of consumer group "${truncate(group, 100)}" on stream "${truncate(this.stream, 100)}" (XINFO GROUPS: lag nil, after entries past the group's position were deleted, or on Redis 7.0 for a group created at $ on a stream that had entries, until it has read to the end); KEDA reads 0 here, which keeps a workload at zero: scale on pendingEntriesCount, or create the group with XGROUP CREATE ... ENTRIESREAD`,
      );
    }
    return this.count(answer.lag, 'XINFO GROUPS');
  }

  private count(reply: unknown, command: string): number {
    const n = typeof reply === 'number' ? reply : typeof reply === 'string' && /^\d+$/.test(reply) ? Number(reply) : NaN;
    if (!Number.isFinite(n)) throw this.upstream.fail(`${command} answered ${truncate(JSON.stringify(reply) ?? String(reply), 64)}, not a count`);
    return n;
  }

  private explain(error: string, command: string): string | undefined {
    const stream = `stream "${truncate(this.stream, 100)}"`;
    if (/^WRONGTYPE/.test(error)) return `${stream} is not a stream: ${error}`;
    if (/^NOGROUP/.test(error)) return `no consumer group "${truncate(this.group ?? '', 100)}" on ${stream}, or no such stream: ${error}`;
    if (/^NOPERM/.test(error)) return `the user may not do this: ${error} (the ACL user needs ${command} on the stream's key)`;
    return undefined;
  }
}

/** A RESP2 flat [field, value, ...] list as a map. */
function pairs(entry: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!Array.isArray(entry)) return out;
  for (let i = 0; i + 1 < entry.length; i += 2) out.set(String(entry[i]), entry[i + 1]);
  return out;
}
