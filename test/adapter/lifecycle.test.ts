// What the HTTP layer does with whatever a metric source does: slow answers during shutdown, and
// each kind of failure mapped to its Kubernetes Status.
import t from 'tap';
import { createTestPki } from '../helpers/pki.js';
import { pkiFlags, startTestAdapter } from '../helpers/adapter.js';
import { expectNoResponse, get } from '../helpers/https.js';
import {
  MetricNotFoundError,
  SourceFailedError,
  SourceTimeoutError,
  SourceUnavailableError,
  type ExternalMetricQuery,
  type ExternalMetricsProvider,
} from '../../src/adapter/provider.js';

const pki = await createTestPki(t.testdir());
const GV = '/apis/external.metrics.k8s.io/v1beta1/namespaces/default';

/** A source whose behaviour each metric name chooses. */
class ScriptedSource implements ExternalMetricsProvider {
  readonly name = 'scripted';
  ready = true;
  readonly seen: ExternalMetricQuery[] = [];
  async getExternalMetric(q: ExternalMetricQuery) {
    this.seen.push(q);
    switch (q.metricName) {
      case 'slow':
        await new Promise((r) => setTimeout(r, 400));
        return [{ metricName: 'slow', metricLabels: null, timestamp: new Date(0), value: '7' }];
      case 'missing':
        throw new MetricNotFoundError('scaled object "x" has no trigger "missing"');
      case 'down':
        throw new SourceUnavailableError('operator unreachable: connect ECONNREFUSED');
      case 'late':
        throw new SourceTimeoutError('operator did not answer within 5s');
      case 'failed':
        throw new SourceFailedError('operator: scaler failed: the upstream answered HTTP 500');
      default:
        throw new Error('scaler exploded: bad JSON from upstream');
    }
  }
  readiness() {
    return this.ready ? { ready: true } : { ready: false, reason: 'channel down for 12s' };
  }
  async close() {}
}

t.test('source outcomes map to Status codes', async (t) => {
  const source = new ScriptedSource();
  const adapter = await startTestAdapter(pkiFlags(pki), source);
  t.teardown(() => adapter.shutdown());
  const call = (m: string, q = '') => get({ port: adapter.port, path: `${GV}/${m}${q}`, ca: pki.ca.cert, client: pki.admin });
  const cases: [string, number, string, RegExp][] = [
    ['missing', 404, 'NotFound', /has no trigger "missing"/],
    ['down', 503, 'ServiceUnavailable', /operator unreachable/],
    ['late', 504, 'Timeout', /did not answer within 5s/],
    ['failed', 500, 'InternalError', /Internal error occurred: operator: scaler failed: the upstream answered HTTP 500/],
    ['broken', 500, 'InternalError', /Internal error occurred: scaler exploded/],
  ];
  for (const [metric, code, reason, message] of cases) {
    const res = await call(metric);
    t.equal(res.status, code, metric);
    t.match(res.json(), { kind: 'Status', reason, code, message });
  }
  const failures = adapter.logs.filter((l) => l.msg === 'request failed');
  const failed = failures.find((l) => String(l.path).includes('/failed'));
  t.match(failed, { level: 40, reason: /scaler failed: the upstream answered HTTP 500/ }, 'a source\'s failure: a warning in one line');
  t.notOk(failed && 'err' in failed, 'no stack trace for it');
  t.match(failures.find((l) => String(l.path).includes('/broken')), { level: 50, err: { stack: /scaler exploded/ } }, 'a bug: an error with its stack');
  await call('slow', `?labelSelector=${encodeURIComponent('b=2,a in (y,x)')}`);
  t.match(source.seen.at(-1), { namespace: 'default', metricName: 'slow', selectorText: 'a in (x,y),b=2' }, 'the source gets the canonical selector');

  source.ready = false;
  const notReady = await get({ port: adapter.port, path: '/readyz?verbose', ca: pki.ca.cert, client: pki.admin });
  t.equal(notReady.status, 500);
  t.match(notReady.text, /\[-\]metrics-source failed: scripted: channel down for 12s/);
  const terse = await fetch(`http://127.0.0.1:${adapter.metricsPort}/readyz`);
  t.equal(terse.status, 500);
  t.match(await terse.text(), /\[-\]metrics-source failed: reason withheld/);
  t.equal((await fetch(`http://127.0.0.1:${adapter.metricsPort}/livez`)).status, 200, 'liveness is unaffected');
});

t.test('shutdown lets an in-flight request finish, then refuses new connections', async (t) => {
  const adapter = await startTestAdapter(pkiFlags(pki), new ScriptedSource());
  const inFlight = get({ port: adapter.port, path: `${GV}/slow`, ca: pki.ca.cert, client: pki.admin });
  await new Promise((r) => setTimeout(r, 100));
  const done = adapter.shutdown();
  const res = await inFlight;
  t.equal(res.status, 200);
  t.equal(res.json<{ items: { value: string }[] }>().items[0]!.value, '7');
  await done;
  const e = await expectNoResponse({ port: adapter.port, path: '/readyz', ca: pki.ca.cert, client: pki.admin });
  t.equal(e.code, 'ECONNREFUSED');
});
