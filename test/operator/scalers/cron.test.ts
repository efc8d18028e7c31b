// KEDA's cron scaler on a fixed clock: the window (same-day, overnight, weekdays, other time
// zones), its edges, KEDA's metric name and target, and every configuration error.
import t from 'tap';
import { pino } from 'pino';
import { CustomCaTrust } from '../../../src/tls/custom-ca.js';
import { createScaler, ScalerConfigError, type Scaler } from '../../../src/operator/scalers/index.js';

const trust = new CustomCaTrust([], pino({ level: 'silent' }));
const cron = (metadata: Record<string, string>, at?: string, index = 0): Scaler =>
  createScaler({ triggerIndex: index, trigger: { type: 'cron', metadata }, auth: {}, trust, timeoutMs: 1000, ...(at ? { now: () => Date.parse(at) } : {}) });
const reading = async (metadata: Record<string, string>, at: string) => {
  const s = cron(metadata, at);
  const value = await s.getMetricValue(AbortSignal.timeout(1000));
  return { value, active: s.isActive(value) };
};
const office = { timezone: 'Etc/UTC', start: '0 6 * * *', end: '0 20 * * *', desiredReplicas: '10' };

t.test('desiredReplicas inside the window, 1 outside; active only inside', async (t) => {
  t.strictSame(await reading(office, '2026-11-27T12:00:00Z'), { value: 10, active: true });
  t.strictSame(await reading(office, '2026-11-27T05:59:59Z'), { value: 1, active: false });
  t.strictSame(await reading(office, '2026-11-27T06:00:00Z'), { value: 10, active: true }, 'from start');
  t.strictSame(await reading(office, '2026-11-27T20:00:00Z'), { value: 1, active: false }, 'until end');
  const night = { ...office, start: '0 22 * * *', end: '0 6 * * *' };
  t.strictSame(await reading(night, '2026-11-27T23:30:00Z'), { value: 10, active: true }, 'a window over midnight');
  t.strictSame(await reading(night, '2026-11-28T03:00:00Z'), { value: 10, active: true });
  t.strictSame(await reading(night, '2026-11-27T12:00:00Z'), { value: 1, active: false });
  const weekdays = { ...office, start: '0 9 * * 1-5', end: '0 17 * * 1-5' };
  t.strictSame(await reading(weekdays, '2026-11-27T10:00:00Z'), { value: 10, active: true }, 'a Friday');
  t.strictSame(await reading(weekdays, '2026-11-28T10:00:00Z'), { value: 1, active: false }, 'a Saturday');
  t.strictSame(await reading({ ...weekdays, start: '0 9 ? * MON-FRI' }, '2026-11-27T10:00:00Z'), { value: 10, active: true }, '? and day names, as robfig/cron reads them');
});

t.test('read in the given time zone', async (t) => {
  const india = { timezone: 'Asia/Kolkata', start: '0 9 * * *', end: '0 17 * * *', desiredReplicas: '4' };
  t.strictSame(await reading(india, '2026-11-27T04:00:00Z'), { value: 4, active: true }, '09:30 in Kolkata');
  t.strictSame(await reading(india, '2026-11-27T12:00:00Z'), { value: 1, active: false }, '17:30 in Kolkata');
  const paris = { timezone: 'Europe/Paris', start: '0 8 * * *', end: '0 9 * * *', desiredReplicas: '2' };
  t.strictSame(await reading(paris, '2026-07-01T06:30:00Z'), { value: 2, active: true }, 'summer time: UTC+2');
  t.strictSame(await reading(paris, '2026-12-01T06:30:00Z'), { value: 1, active: false }, 'winter time: UTC+1, 07:30');
});

t.test('KEDA\'s metric name and target', async (t) => {
  const s = cron({ timezone: 'Asia/Kolkata', start: '30 * * * *', end: '45 * * * *', desiredReplicas: '10' });
  t.equal(s.metricName, 's0-cron-Asia-Kolkata-30xxxx-45xxxx');
  t.equal(s.targetValue, 1);
  t.equal(cron({ ...office, start: '*/5 * * * *' }, undefined, 2).metricName, 's2-cron-Etc-UTC-xSl5xxxx-020xxx');
});

t.test('configuration errors', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ start: office.start, end: office.end, desiredReplicas: '1' }, /^cron: no timezone given in metadata$/],
    [{ ...office, timezone: 'Mars/Olympus' }, /^cron: timezone "Mars\/Olympus" is not an IANA time zone/],
    [{ ...office, start: '0 6 * *' }, /^cron: start "0 6 \* \*" must have five fields/],
    [{ ...office, end: '0 25 * * *' }, /^cron: end "0 25 \* \* \*" is not a valid cron expression: /],
    [{ ...office, end: office.start }, /^cron: start and end must differ$/],
    [{ ...office, desiredReplicas: '0' }, /desiredReplicas 0 is not a whole number of replicas, at least 1/],
    [{ ...office, desiredReplicas: '1.5' }, /desiredReplicas 1\.5 is not a whole number/],
    [{ ...office, desiredReplicas: 'ten' }, /desiredReplicas "ten" is not a number/],
  ];
  for (const [md, message] of cases) t.throws(() => cron(md), { name: ScalerConfigError.name, message }, JSON.stringify(md));
});
