import t from 'tap';
import { ReviewCache, type CacheOutcome } from '../../src/k8s/review-cache.js';

let now = 0;
const clock = () => now;

t.test('identical concurrent look-ups make one call; answers live for their TTL', async (t) => {
  let calls = 0;
  const cache = new ReviewCache<string>(10, (v) => (v === 'allow' ? 1000 : 100), clock);
  const outcomes: CacheOutcome[] = [];
  const compute = async () => {
    calls++;
    await new Promise((r) => setTimeout(r, 10));
    return 'allow';
  };
  const all = await Promise.all(Array.from({ length: 50 }, () => cache.get('k', compute, (o) => outcomes.push(o))));
  t.equal(calls, 1);
  t.ok(all.every((v) => v === 'allow'));
  t.equal(outcomes.filter((o) => o === 'miss').length, 1);
  t.equal(outcomes.filter((o) => o === 'coalesced').length, 49);
  now += 999;
  await cache.get('k', compute, (o) => outcomes.push(o));
  t.equal(outcomes.at(-1), 'hit');
  now += 2;
  await cache.get('k', compute);
  t.equal(calls, 2, 'expired: asked again');
});

t.test('denied answers have their own TTL', async (t) => {
  let calls = 0;
  const cache = new ReviewCache<string>(10, (v) => (v === 'allow' ? 1000 : 100), clock);
  const deny = async () => (calls++, 'deny');
  await cache.get('d', deny);
  now += 50;
  await cache.get('d', deny);
  t.equal(calls, 1);
  now += 51;
  await cache.get('d', deny);
  t.equal(calls, 2);
});

t.test('failures are not cached and reach every waiter', async (t) => {
  let calls = 0;
  const cache = new ReviewCache<string>(10, () => 1000, clock);
  const fail = async () => {
    calls++;
    await new Promise((r) => setTimeout(r, 5));
    throw new Error('apiserver down');
  };
  const results = await Promise.allSettled([cache.get('f', fail), cache.get('f', fail)]);
  t.same(results.map((r) => r.status), ['rejected', 'rejected']);
  t.equal(calls, 1);
  await t.rejects(cache.get('f', fail), /apiserver down/);
  t.equal(calls, 2, 'the next request asks again');
});

t.test('bounded: the least recently used entry goes first', async (t) => {
  const cache = new ReviewCache<string>(3, () => 10_000, clock);
  for (const k of ['a', 'b', 'c']) await cache.get(k, async () => k);
  await cache.get('a', async () => 'x');
  await cache.get('d', async () => 'd');
  t.equal(cache.size, 3);
  let recomputed = false;
  await cache.get('b', async () => ((recomputed = true), 'b'));
  t.ok(recomputed, 'b was evicted');
  let aRecomputed = false;
  await cache.get('a', async () => ((aRecomputed = true), 'a'));
  t.notOk(aRecomputed, 'a, used recently, stayed');
});
