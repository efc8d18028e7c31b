// Wire compatibility with KEDA's metrics service, checked against bytes built by hand from the
// field numbers in the contract, not against our own encoder.
import t from 'tap';
import { GET_METRICS_PATH, metricsServiceDefinition } from '../../src/channel/service.js';

const method = metricsServiceDefinition.GetMetrics!;

function varint(n: bigint | number): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}
const tag = (field: number, wireType: number) => varint((field << 3) | wireType);
const str = (field: number, s: string) => [...tag(field, 2), ...varint(Buffer.byteLength(s)), ...Buffer.from(s)];
const msg = (field: number, body: number[]) => [...tag(field, 2), ...varint(body.length), ...body];
const int = (field: number, n: bigint | number) => [...tag(field, 0), ...varint(n)];

t.test('the method path is KEDA\'s', async (t) => {
  t.equal(method.path, GET_METRICS_PATH);
  t.equal(GET_METRICS_PATH, '/api.MetricsService/GetMetrics');
});

t.test('ScaledObjectRef: name = 1, namespace = 2, metricName = 3', async (t) => {
  const expected = Buffer.from([...str(1, 'web'), ...str(2, 'shop'), ...str(3, 's0-metric-api-value')]);
  const encoded = method.requestSerialize({ name: 'web', namespace: 'shop', metricName: 's0-metric-api-value' });
  t.same([...encoded], [...expected], 'our encoding is the hand-built one');
  t.same(method.requestDeserialize(expected), { name: 'web', namespace: 'shop', metricName: 's0-metric-api-value' });
  // The same fields in another order decode the same: what a Go encoder may send.
  const reordered = Buffer.from([...str(3, 's0-metric-api-value'), ...str(1, 'web'), ...str(2, 'shop')]);
  t.same(method.requestDeserialize(reordered), { name: 'web', namespace: 'shop', metricName: 's0-metric-api-value' });
});

const item = [
  ...str(1, 's0-metric-api-value'),
  ...msg(2, [...str(1, 'queue'), ...str(2, 'a')]),
  ...msg(3, [...int(1, 1_777_636_800n), ...int(2, 500_000_000)]),
  ...int(4, 60),
  ...msg(5, str(1, '1500m')),
];
const list = [...msg(1, [...str(2, '42')]), ...msg(2, item)];
const itemObject = {
  metricName: 's0-metric-api-value',
  metricLabels: { queue: 'a' },
  timestamp: { seconds: '1777636800', nanos: 500_000_000 },
  window: '60',
  value: { string: '1500m' },
};

t.test('ExternalMetricValueList decodes from hand-built bytes', async (t) => {
  const decoded = method.responseDeserialize(Buffer.from(list));
  t.match(decoded, {
    metadata: { selfLink: '', resourceVersion: '42', continue: '' },
    items: [itemObject],
  });
});

t.test('ExternalMetricValueList encodes to the hand-built bytes', async (t) => {
  // Fields left out of the object stay off the wire, as proto3 encoders omit defaults.
  const encoded = method.responseSerialize({
    metadata: { resourceVersion: '42' },
    items: [itemObject],
  });
  t.same([...encoded], list);
});

t.test('optional window and remainingItemCount: absent stays absent, zero is kept', async (t) => {
  const noWindow = [...msg(2, [...str(1, 'm'), ...msg(5, str(1, '1'))])];
  const decoded = method.responseDeserialize(Buffer.from(noWindow));
  t.notOk(decoded.items[0]!.window, 'no window on the wire, none decoded');
  const zero = [...msg(2, [...str(1, 'm'), ...int(4, 0), ...msg(5, str(1, '1'))])];
  t.equal(method.responseDeserialize(Buffer.from(zero)).items[0]!.window, '0');
  const withCount = [...msg(1, int(4, 7))];
  t.match(method.responseDeserialize(Buffer.from(withCount)), { metadata: { remainingItemCount: '7' } });
});

t.test('unknown fields from a newer peer are skipped', async (t) => {
  const withExtra = Buffer.from([...str(1, 'web'), ...str(9, 'future'), ...str(2, 'shop'), ...str(3, 'm')]);
  t.same(method.requestDeserialize(withExtra), { name: 'web', namespace: 'shop', metricName: 'm' });
});
