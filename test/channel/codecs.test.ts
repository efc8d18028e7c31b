// The channel's codecs (src/channel/codecs.ts on protobuf.ts) against protobufjs reading the .proto
// files, an independent implementation: each side decodes what the other encodes to the same
// object, for every message, with the values that need care (int64 beyond 2^53 and negative,
// negative int32, uint32 at its limit, non-ASCII text, lengths of one, two and three bytes,
// absent and zero `optional` fields, empty maps). Also: unknown fields of every wire type are
// skipped, a known field with an unexpected wire type is skipped, truncated bytes are an error.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { decode, encode, externalMetricValueList, getMetricsBatch, getMetricsResult, mirrorEvent, scaledObjectRef, type Codec } from '../../src/channel/codecs.js';
import type { ExternalMetricValueList } from '../../src/channel/service.js';

const proto = (file: string) => fileURLToPath(new URL(`../../src/channel/${file}`, import.meta.url));
const root = protobuf.loadSync([proto('metrics.proto'), proto('batch.proto'), proto('mirror.proto')]);
const TO_OBJECT = { longs: String, enums: String, defaults: true };

function crossCheck<T>(name: string, codec: Codec<T>, typeName: string, samples: T[]): void {
  const type = root.lookupType(typeName);
  t.test(name, async (t) => {
    for (const [i, sample] of samples.entries()) {
      const ours = encode(codec, sample);
      const theirs = Buffer.from(type.encode(type.fromObject(sample as object)).finish());
      const expected = type.toObject(type.decode(theirs), TO_OBJECT);
      t.same(decode(codec, theirs), expected, `sample ${i}: we read protobufjs's bytes as it does`);
      t.same(type.toObject(type.decode(ours), TO_OBJECT), expected, `sample ${i}: protobufjs reads our bytes as its own`);
      t.same(decode(codec, ours), expected, `sample ${i}: and we read our own`);
    }
  });
}

const ref = (name: string) => ({ name, namespace: 'shop', metricName: `s0-${name}` });
const list: ExternalMetricValueList = {
  metadata: { resourceVersion: '42', remainingItemCount: '0' },
  items: [
    { metricName: 's0-queue', metricLabels: { queue: 'a', 'naïve-€': '' }, timestamp: { seconds: '9007199254740993', nanos: 999_999_999 }, window: '0', value: { string: '1500m' } },
    { metricName: 'x'.repeat(200), metricLabels: {}, timestamp: { seconds: '-62135596800', nanos: 0 }, value: null },
    { metricName: 'm', metricLabels: {}, timestamp: null, window: '60', value: { string: '' } },
  ],
};

crossCheck('ScaledObjectRef', scaledObjectRef, 'api.ScaledObjectRef', [ref('web'), { name: '', namespace: 'ñ-ü', metricName: 'q'.repeat(300) }]);
crossCheck('ExternalMetricValueList', externalMetricValueList, 'api.ExternalMetricValueList', [
  list,
  { metadata: null, items: [] },
  { metadata: {}, items: Array.from({ length: 400 }, (_, i) => ({ ...list.items[0]!, metricName: `s${i}-queue` })) },
]);
crossCheck('GetMetricsBatch', getMetricsBatch, 'kedats.v1.GetMetricsBatch', [{ refs: [ref('a'), ref('b'), ref('')] }, { refs: [] }]);
crossCheck('GetMetricsResult', getMetricsResult, 'kedats.v1.GetMetricsResult', [
  { index: 3, list: null, code: 5, message: 'scaledobject shop/web has no metric "x"' },
  { index: 0, list, code: 0, message: '' },
  { index: 4_294_967_295, list: null, code: -1, message: 'ü' },
]);
crossCheck('MirrorEvent', mirrorEvent, 'kedats.v1.MirrorEvent', [
  { snapshot: true, upserts: [{ key: { namespace: 'shop', name: 'web', metricName: 's0-queue' }, value: '42', ttlMs: '60000' }], removals: [{ namespace: 'shop', name: 'old', metricName: 's1-x' }] },
  { snapshot: false, upserts: [], removals: [] },
  { snapshot: true, upserts: Array.from({ length: 1_000 }, (_, i) => ({ key: { namespace: 'ns', name: `so-${i}`, metricName: 's0-metric-api-value' }, value: String(i), ttlMs: '9007199254740993' })), removals: [] },
]);

t.test('unknown fields of every wire type, and a known field with another wire type, are skipped', async (t) => {
  const known = encode(scaledObjectRef, ref('web'));
  const extra = Buffer.from([
    0x48, 0x96, 0x01, // field 9, varint 150
    0x51, 1, 2, 3, 4, 5, 6, 7, 8, // field 10, fixed64
    0x5d, 1, 2, 3, 4, // field 11, fixed32
    0x62, 2, 0x68, 0x69, // field 12, bytes "hi"
    0x08, 0x07, // field 1 (a string) sent as a varint
  ]);
  t.same(decode(scaledObjectRef, Buffer.concat([extra, known])), ref('web'));
});

t.test('truncated bytes are an error, not a partial message', async (t) => {
  const whole = encode(externalMetricValueList, list);
  for (const cut of [1, 7, whole.length - 1]) t.throws(() => decode(externalMetricValueList, whole.subarray(0, cut)), /protobuf: the message is truncated/, `cut at ${cut}`);
  t.throws(() => decode(scaledObjectRef, Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), /a varint longer than 10 bytes/);
  t.throws(() => decode(scaledObjectRef, Buffer.from([0x0b])), /wire type 3 is not supported/, 'groups (proto2) are refused');
});
