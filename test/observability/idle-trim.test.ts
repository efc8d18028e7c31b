// The idle trim on this very process's heap: a quiet process whose heap grew gives memory back
// (a smaller young generation, less committed heap); a busy one is left alone; a heap that has not
// grown since the last trim is not trimmed again; stop() ends it.
import t from 'tap';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { Registry } from 'prom-client';
import { startIdleTrim } from '../../src/observability/idle-trim.js';
import { eventually } from '../helpers/loop.js';

const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;
const committed = () => getHeapStatistics().total_heap_size;

/** What a start-up or a burst leaves: a young generation grown by survivors, and old garbage. */
function churn(): void {
  let survivors: object[] = [];
  for (let round = 0; round < 40; round++) {
    const next: object[] = [];
    for (let i = 0; i < 50_000; i++) next.push({ round, i, text: `item ${i}` });
    survivors = next;
  }
  if (survivors.length === 0) throw new Error('unreachable');
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a quiet process whose heap grew is trimmed: a smaller young generation, less heap committed', async (t) => {
  churn();
  const [youngBefore, committedBefore] = [newSpace(), committed()];
  const registry = new Registry();
  const trim = startIdleTrim({ checkEveryMs: 100, minIntervalMs: 0, registry });
  t.teardown(trim.stop);
  await eventually('a trim', async () => trim.trims > 0 || undefined, 10_000);
  t.ok(newSpace() < youngBefore, `young generation ${youngBefore} -> ${newSpace()} bytes`);
  t.ok(committed() < committedBefore, `heap committed ${committedBefore} -> ${committed()} bytes`);
  const metrics = await registry.metrics();
  t.match(metrics, /^idle_heap_trims_total 1$/m, 'counted');
  t.match(metrics, /^idle_heap_trim_pause_seconds_total \d/m, 'with its pause');
});

t.test('a busy event loop is left alone; once it is quiet, it is trimmed', async (t) => {
  churn();
  const trim = startIdleTrim({ checkEveryMs: 100, minIntervalMs: 0, minGrowthBytes: 0 });
  t.teardown(trim.stop);
  // About 90% busy for a second: ten checks that all see a busy loop.
  const until = Date.now() + 1_000;
  await new Promise<void>((done) => {
    const spin = () => {
      const end = Date.now() + 9;
      while (Date.now() < end);
      if (Date.now() < until) setTimeout(spin, 1);
      else done();
    };
    spin();
  });
  t.equal(trim.trims, 0, 'no trim while busy');
  await eventually('a trim once quiet', async () => trim.trims > 0 || undefined, 10_000);
  t.pass('trimmed once quiet');
});

t.test('no growth since the last trim, no second trim; growth again, another', async (t) => {
  churn();
  const trim = startIdleTrim({ checkEveryMs: 50, minIntervalMs: 0, minGrowthBytes: 4 * 1024 * 1024 });
  t.teardown(trim.stop);
  await eventually('the first trim', async () => trim.trims > 0 || undefined, 10_000);
  await settle(1_000);
  t.equal(trim.trims, 1, 'twenty quiet checks, nothing grew: one trim');
  const kept = Array.from({ length: 200_000 }, (_, i) => ({ i, text: `kept ${i}` }));
  await eventually('a second trim after growth', async () => trim.trims > 1 || undefined, 10_000);
  t.equal(kept.length, 200_000);
});

t.test('minIntervalMs holds trims apart; stop() ends them', async (t) => {
  churn();
  const trim = startIdleTrim({ checkEveryMs: 50, minIntervalMs: 60_000, minGrowthBytes: 0 });
  await eventually('the first trim', async () => trim.trims > 0 || undefined, 10_000);
  churn();
  await settle(500);
  t.equal(trim.trims, 1, 'grown again, but within the minimum interval');
  trim.stop();
  const stopped = startIdleTrim({ checkEveryMs: 50, minIntervalMs: 0, minGrowthBytes: 0 });
  stopped.stop();
  churn();
  await settle(500);
  t.equal(stopped.trims, 0, 'stopped before its first check: never trims');
});
