// Kubernetes' two time formats: metav1.Time (whole seconds) and metav1.MicroTime.
import t from 'tap';
import { metaTime, microTime } from '../../src/k8s/types.js';

t.test('metaTime: RFC 3339 in whole seconds, truncated, whatever came before', async (t) => {
  t.equal(metaTime(new Date('2026-11-27T23:59:59.999Z')), '2026-11-27T23:59:59Z');
  t.equal(metaTime(new Date('2026-11-27T23:59:59.001Z')), '2026-11-27T23:59:59Z', 'the same second again');
  t.equal(metaTime(new Date('2026-11-28T00:00:00.000Z')), '2026-11-28T00:00:00Z', 'the next one');
  t.equal(metaTime(new Date('1969-12-31T23:59:59.500Z')), '1969-12-31T23:59:59Z', 'before the epoch: down, not toward zero');
  t.throws(() => metaTime(new Date(NaN)), RangeError, 'an invalid date is not a time');
});

t.test('microTime: microseconds, as Lease times are written', async (t) => {
  t.equal(microTime(new Date('2026-11-27T23:59:59.123Z')), '2026-11-27T23:59:59.123000Z');
});
