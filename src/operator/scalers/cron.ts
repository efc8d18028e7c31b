// KEDA's `cron` scaler: desiredReplicas between each `start` and the next `end` (five-field cron
// expressions, in `timezone`), and 1 otherwise; active inside the window, so that with
// minReplicaCount 0 the workload is at zero outside it. No upstream: the value comes from the clock.
// https://keda.sh/docs/latest/scalers/cron/
//
// Schedules are read by croner (five fields, day-of-month and day-of-week ORed as in Vixie cron and
// KEDA's robfig/cron; `?` means `*`, as there). croner also takes L, W and # where KEDA does not.
import { Cron } from 'croner';
import { configError } from './upstream.js';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { readParameters, type ParamSpec } from './parameters.js';
import type { Scaler, ScalerContext, ScalerFactory } from './scaler.js';

const TYPE = 'cron';

/** What the cron scaler reads (the README's table is generated from this). */
export const CRON_PARAMETERS: readonly ParamSpec[] = [
  { name: 'timezone', type: 'string', from: 'metadata', required: true, doc: 'An IANA time zone (`Europe/Paris`, `Asia/Kolkata`, `Etc/UTC`) in which start and end are read.' },
  { name: 'start', type: 'string', from: 'metadata', required: true, doc: 'When the window opens: a five-field cron expression (`0 6 * * 1-5`).' },
  { name: 'end', type: 'string', from: 'metadata', required: true, doc: 'When it closes: a five-field cron expression, different from start.' },
  { name: 'desiredReplicas', type: 'number', from: 'metadata', required: true, doc: 'The replicas inside the window (a whole number, at least 1).' },
];

export const createCronScaler: ScalerFactory = (ctx) => new CronScaler(ctx);

class CronScaler implements Scaler {
  readonly metricName: string;
  /** KEDA's: the metric is a replica count, one per replica. */
  readonly targetValue = 1;
  private readonly start: Cron;
  private readonly end: Cron;
  private readonly desiredReplicas: number;
  private readonly now: () => number;
  /** Whether the last reading was inside the window (activity is the window, not the value). */
  private inside = false;

  constructor(ctx: ScalerContext) {
    const p = readParameters(TYPE, CRON_PARAMETERS, ctx);
    const timezone = p.string('timezone')!.trim();
    try {
      new Intl.DateTimeFormat('en', { timeZone: timezone });
    } catch {
      throw configError(TYPE, `timezone "${timezone}" is not an IANA time zone (such as Europe/Paris or Etc/UTC)`);
    }
    const start = p.string('start')!.trim();
    const end = p.string('end')!.trim();
    this.start = schedule('start', start, timezone);
    this.end = schedule('end', end, timezone);
    if (start === end) throw configError(TYPE, 'start and end must differ');
    const desired = p.number('desiredReplicas')!;
    if (!Number.isInteger(desired) || desired < 1) throw configError(TYPE, `desiredReplicas ${desired} is not a whole number of replicas, at least 1`);
    this.desiredReplicas = desired;
    this.now = ctx.now ?? Date.now;
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`cron-${timezone}-${metricPart(start)}-${metricPart(end)}`));
  }

  getMetricValue(): Promise<number> {
    // Inside the window when the window's end comes before its next start.
    const now = new Date(this.now());
    const nextStart = this.start.nextRun(now);
    const nextEnd = this.end.nextRun(now);
    this.inside = nextEnd !== null && (nextStart === null || nextEnd.getTime() < nextStart.getTime());
    return Promise.resolve(this.inside ? this.desiredReplicas : 1);
  }

  isActive(): boolean {
    return this.inside;
  }

  close(): void {}
}

function schedule(name: string, expression: string, timezone: string): Cron {
  const fields = expression.split(/\s+/);
  if (fields.length !== 5) throw configError(TYPE, `${name} "${expression}" must have five fields (minute hour day-of-month month day-of-week)`);
  // robfig/cron, which KEDA uses, reads `?` as `*` in the day fields.
  const pattern = fields.map((f) => (f === '?' ? '*' : f)).join(' ');
  try {
    return new Cron(pattern, { timezone, mode: '5-part', domAndDow: false, paused: true });
  } catch (err) {
    throw configError(TYPE, `${name} "${expression}" is not a valid cron expression: ${(err as Error).message}`);
  }
}

/** KEDA writes the schedules into the metric name this way (then normalizes it). */
function metricPart(expression: string): string {
  return expression.replace(/ /g, '').replace(/\*/g, 'x').replace(/\//g, 'Sl').replace(/\?/g, 'Qm');
}
