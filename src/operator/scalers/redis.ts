// KEDA's `redis` scaler: the length of a list in a standalone Redis.
// https://keda.sh/docs/latest/scalers/redis-lists/
//
// As KEDA: one Lua script reads the key's type and answers LLEN, SCARD, ZCARD or HLEN (a missing
// key is an empty list: 0); metric name `s<index>-redis-<listName>`; target listLength (default
// 5); active strictly above activationListLength (default 0). Where KEDA's script fails obscurely
// on a key of another type (a string, a stream), ours says which type it found.
//
// The connection (address or host/port, username/password, databaseIndex, TLS) is shared with
// redis-streams: see redis-connection.ts.
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { readParameters, type ParamSpec } from './parameters.js';
import { REDIS_CONNECTION_PARAMETERS, REDIS_SERVER_PARAMETERS, RedisUpstream, wholeNumber } from './redis-connection.js';
import type { Scaler, ScalerContext, ScalerFactory } from './scaler.js';
import { truncate } from './upstream.js';

const TYPE = 'redis';

/** KEDA's script, with an error naming the type where KEDA's calls a nil command. */
const LENGTH_SCRIPT = `
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'list' or t == 'none' then return redis.call('LLEN', KEYS[1]) end
if t == 'set' then return redis.call('SCARD', KEYS[1]) end
if t == 'zset' then return redis.call('ZCARD', KEYS[1]) end
if t == 'hash' then return redis.call('HLEN', KEYS[1]) end
return redis.error_reply('WRONGTYPE ' .. t)
`;

/** What the redis scaler reads (the README's table is generated from this). */
export const REDIS_PARAMETERS: readonly ParamSpec[] = [
  ...REDIS_SERVER_PARAMETERS,
  { name: 'listName', type: 'string', from: 'metadata', required: true, doc: 'The key: a list (LLEN), set (SCARD), sorted set (ZCARD) or hash (HLEN); a missing key counts 0.' },
  { name: 'listLength', type: 'number', from: 'metadata', default: 5, doc: 'The HPA target (a whole number).' },
  { name: 'activationListLength', type: 'number', from: 'metadata', default: 0, doc: 'Active (scaled from zero) strictly above this length (a whole number).' },
  ...REDIS_CONNECTION_PARAMETERS,
];

export const createRedisScaler: ScalerFactory = (ctx) => new RedisScaler(ctx);

class RedisScaler implements Scaler {
  readonly metricName: string;
  readonly targetValue: number;
  private readonly activationListLength: number;
  private readonly listName: string;
  private readonly upstream: RedisUpstream;

  constructor(ctx: ScalerContext) {
    const p = readParameters(TYPE, REDIS_PARAMETERS, ctx);
    this.listName = p.string('listName')!;
    this.targetValue = wholeNumber(TYPE, p, 'listLength')!;
    this.activationListLength = wholeNumber(TYPE, p, 'activationListLength')!;
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`redis-${this.listName}`));
    this.upstream = new RedisUpstream(TYPE, p, ctx);
  }

  isActive(value: number): boolean {
    return value > this.activationListLength; // KEDA: strictly above
  }

  async getMetricValue(signal: AbortSignal): Promise<number> {
    const key = `listName "${truncate(this.listName, 100)}"`;
    const reply = await this.upstream.call(
      signal,
      (c) => c.eval(LENGTH_SCRIPT, 1, this.listName),
      (error) => {
        const m = /^WRONGTYPE (\S+)/.exec(error);
        if (m) return `${key} holds a ${m[1]}, not a list, set, sorted set or hash`;
        if (/^NOPERM/.test(error)) return `the user may not do this: ${error} (the ACL user needs eval, type, llen, scard, zcard and hlen on the key)`;
        if (/^NOSCRIPT|scripting|Lua/i.test(error)) return `the length script failed: ${error}`;
        return undefined;
      },
    );
    if (typeof reply !== 'number') throw this.upstream.fail(`the length script answered ${truncate(JSON.stringify(reply) ?? String(reply), 64)}, not a number`);
    return reply;
  }

  close(): void {
    this.upstream.close();
  }
}
