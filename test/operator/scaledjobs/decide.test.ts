// KEDA's ScaledJob arithmetic, case by case as KEDA's docs and its executor compute them.
import t from 'tap';
import { decide, type TriggerMetric } from '../../../src/operator/scaledjobs/decide.js';
import type { ScaledJob, ScalingStrategy } from '../../../src/operator/scaledjobs/types.js';

const spec = (strategy: Partial<ScalingStrategy> = {}, extra: Partial<ScaledJob['spec']> = {}): ScaledJob['spec'] => ({
  jobTargetRef: { template: {} },
  pollingInterval: 30,
  successfulJobsHistoryLimit: 100,
  failedJobsHistoryLimit: 100,
  minReplicaCount: 0,
  maxReplicaCount: 10,
  rollout: { strategy: 'default', propagationPolicy: 'background' },
  scalingStrategy: { strategy: 'default', customScalingQueueLengthDeduction: 0, customScalingRunningJobPercentage: 0, pendingPodConditions: [], multipleScalersCalculation: 'max', ...strategy },
  triggers: [],
  ...extra,
});
const queue = (value: number, target = 1, active = value > 0): TriggerMetric => ({ value, target, active });

t.test('default: one Job per target\'s worth of queue, minus the Jobs running, capped at maxReplicaCount', async (t) => {
  t.match(decide(spec(), [queue(3)], { running: 0, pending: 0 }), { active: true, queueLength: 3, maxScale: 3, create: 3 });
  t.equal(decide(spec(), [queue(3)], { running: 3, pending: 3 }).create, 0, 'all running already');
  t.equal(decide(spec(), [queue(5)], { running: 3, pending: 0 }).create, 2);
  t.equal(decide(spec(), [queue(10, 2)], { running: 0, pending: 0 }).create, 5, '10 messages, 2 per Job');
  t.equal(decide(spec(), [queue(7, 2)], { running: 0, pending: 0 }).create, 4, 'rounded up');
  t.equal(decide(spec(), [queue(50)], { running: 4, pending: 0 }).create, 6, 'maxReplicaCount 10 in all');
  t.match(decide(spec(), [queue(0)], { running: 0, pending: 0 }), { active: false, create: 0 });
});

t.test('minReplicaCount: always active, and topped up first', async (t) => {
  t.match(decide(spec({}, { minReplicaCount: 2 }), [queue(0)], { running: 0, pending: 0 }), { active: true, create: 2 });
  t.equal(decide(spec({}, { minReplicaCount: 2 }), [queue(0)], { running: 2, pending: 0 }).create, 0);
  t.equal(decide(spec({}, { minReplicaCount: 2 }), [queue(3)], { running: 2, pending: 0 }).create, 3, 'the queue on top of the minimum');
});

t.test('custom: queue minus customScalingQueueLengthDeduction minus a share of the running Jobs', async (t) => {
  const custom = spec({ strategy: 'custom', customScalingQueueLengthDeduction: 1, customScalingRunningJobPercentage: 0.5 });
  t.equal(decide(custom, [queue(4)], { running: 0, pending: 0 }).create, 3);
  t.equal(decide(custom, [queue(4)], { running: 3, pending: 0 }).create, 2, '4 - 1 - trunc(1.5)');
  t.equal(decide(custom, [queue(4)], { running: 6, pending: 0 }).create, 0);
});

t.test('accurate: pending Jobs count against the queue; running ones only against maxReplicaCount', async (t) => {
  const accurate = spec({ strategy: 'accurate' });
  t.equal(decide(accurate, [queue(2)], { running: 2, pending: 2 }).create, 0, 'both still pending: they will take the two messages');
  t.equal(decide(accurate, [queue(2)], { running: 2, pending: 1 }).create, 1, 'one started (took a message off the queue): one more');
  t.equal(decide(accurate, [queue(5)], { running: 8, pending: 0 }).create, 2, 'capped: 10 - 8');
});

t.test('eager: fill up to maxReplicaCount', async (t) => {
  const eager = spec({ strategy: 'eager' });
  t.equal(decide(eager, [queue(3)], { running: 0, pending: 0 }).create, 3);
  t.equal(decide(eager, [queue(3)], { running: 2, pending: 1 }).create, 3, 'min(10 - 2 - 1, 3)');
  t.equal(decide(eager, [queue(30)], { running: 8, pending: 1 }).create, 1);
});

t.test('multipleScalersCalculation over the active triggers', async (t) => {
  const triggers = [queue(2), queue(6), queue(40, 1, false)];
  t.equal(decide(spec(), triggers, { running: 0, pending: 0 }).create, 6, 'max (the inactive one ignored)');
  t.equal(decide(spec({ multipleScalersCalculation: 'min' }), triggers, { running: 0, pending: 0 }).create, 2);
  t.equal(decide(spec({ multipleScalersCalculation: 'avg' }), triggers, { running: 0, pending: 0 }).create, 4);
  t.equal(decide(spec({ multipleScalersCalculation: 'sum' }), triggers, { running: 0, pending: 0 }).create, 8);
});
