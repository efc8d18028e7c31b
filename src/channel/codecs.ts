// The channel's messages on the wire, field by field as metrics.proto (KEDA's), batch.proto and
// mirror.proto declare them. Decoded as proto3 reads them: a missing scalar is its zero value
// (int64s as decimal strings), a missing message null, a missing proto3 `optional` absent.
import { Reader, WireType, Writer, readFields } from './protobuf.js';
import type { ExternalMetricValue, ExternalMetricValueList, GetMetricsBatch, GetMetricsResult, MirrorEntry, MirrorEvent, MirrorKey, ScaledObjectRef, WireQuantity, WireTime } from './service.js';

export interface Codec<T> {
  write(w: Writer, value: T): void;
  read(r: Reader): T;
}

export function encode<T>(codec: Codec<T>, value: T): Buffer {
  const w = new Writer();
  codec.write(w, value);
  return w.finish();
}

export function decode<T>(codec: Codec<T>, bytes: Buffer): T {
  return codec.read(new Reader(bytes));
}

const { Varint, Bytes } = WireType;

// --- metrics.proto (package api) ----------------------------------------------------------------

/** A message of string fields only, each named with its field number. */
function stringMessage<K extends string>(fields: Readonly<Record<K, number>>): Codec<Record<K, string>> {
  const entries = Object.entries(fields) as [K, number][];
  const byNumber = new Map(entries.map(([name, n]) => [n, name]));
  return {
    write(w, v) {
      for (const [name, n] of entries) w.string(n, v[name]);
    },
    read(r) {
      const v = Object.fromEntries(entries.map(([name]) => [name, ''])) as Record<K, string>;
      readFields(r, (n, type) => {
        const name = byNumber.get(n);
        if (name === undefined || type !== Bytes) return false;
        v[name] = r.string();
        return true;
      });
      return v;
    },
  };
}

export const scaledObjectRef: Codec<ScaledObjectRef> = stringMessage({ name: 1, namespace: 2, metricName: 3 });

type ListMeta = NonNullable<ExternalMetricValueList['metadata']>;

const listMeta: Codec<ListMeta> = {
  write(w, v) {
    w.string(1, v.selfLink);
    w.string(2, v.resourceVersion);
    w.string(3, v.continue);
    w.int64(4, v.remainingItemCount, true);
  },
  read(r) {
    const v: ListMeta = { selfLink: '', resourceVersion: '', continue: '' };
    readFields(r, (n, type) => {
      if (n === 4 && type === Varint) v.remainingItemCount = r.int64();
      else if (type !== Bytes) return false;
      else if (n === 1) v.selfLink = r.string();
      else if (n === 2) v.resourceVersion = r.string();
      else if (n === 3) v.continue = r.string();
      else return false;
      return true;
    });
    return v;
  },
};

const time: Codec<WireTime> = {
  write(w, v) {
    w.int64(1, v.seconds);
    w.int32(2, v.nanos);
  },
  read(r) {
    const v: WireTime = { seconds: '0', nanos: 0 };
    readFields(r, (n, type) => {
      if (type !== Varint) return false;
      if (n === 1) v.seconds = r.int64();
      else if (n === 2) v.nanos = r.int32();
      else return false;
      return true;
    });
    return v;
  },
};

const quantity: Codec<WireQuantity> = stringMessage({ string: 1 });

/** A map<string, string> entry: key = 1, value = 2, both written, as Go writes them. */
const labelEntry: Codec<[string, string]> = {
  write(w, [key, value]) {
    w.string(1, key, true);
    w.string(2, value, true);
  },
  read(r) {
    const entry: [string, string] = ['', ''];
    readFields(r, (n, type) => {
      if (type !== Bytes || (n !== 1 && n !== 2)) return false;
      entry[n - 1] = r.string();
      return true;
    });
    return entry;
  },
};

const externalMetricValue: Codec<ExternalMetricValue> = {
  write(w, v) {
    w.string(1, v.metricName);
    for (const entry of Object.entries(v.metricLabels ?? {})) w.message(2, entry, labelEntry.write);
    w.message(3, v.timestamp, time.write);
    w.int64(4, v.window, true);
    w.message(5, v.value, quantity.write);
  },
  read(r) {
    const v: ExternalMetricValue = { metricName: '', metricLabels: {}, timestamp: null, value: null };
    readFields(r, (n, type) => {
      if (n === 4 && type === Varint) v.window = r.int64();
      else if (type !== Bytes) return false;
      else if (n === 1) v.metricName = r.string();
      else if (n === 2) {
        const [key, value] = r.message(labelEntry.read);
        v.metricLabels[key] = value;
      } else if (n === 3) v.timestamp = r.message(time.read);
      else if (n === 5) v.value = r.message(quantity.read);
      else return false;
      return true;
    });
    return v;
  },
};

export const externalMetricValueList: Codec<ExternalMetricValueList> = {
  write(w, v) {
    w.message(1, v.metadata, listMeta.write);
    for (const item of v.items ?? []) w.message(2, item, externalMetricValue.write);
  },
  read(r) {
    const v: ExternalMetricValueList = { metadata: null, items: [] };
    readFields(r, (n, type) => {
      if (type !== Bytes) return false;
      if (n === 1) v.metadata = r.message(listMeta.read);
      else if (n === 2) v.items.push(r.message(externalMetricValue.read));
      else return false;
      return true;
    });
    return v;
  },
};

// --- batch.proto (package kedats.v1) -------------------------------------------------------------

export const getMetricsBatch: Codec<GetMetricsBatch> = {
  write(w, v) {
    for (const ref of v.refs) w.message(1, ref, scaledObjectRef.write);
  },
  read(r) {
    const v: GetMetricsBatch = { refs: [] };
    readFields(r, (n, type) => {
      if (n !== 1 || type !== Bytes) return false;
      v.refs.push(r.message(scaledObjectRef.read));
      return true;
    });
    return v;
  },
};

export const getMetricsResult: Codec<GetMetricsResult> = {
  write(w, v) {
    w.uint32(1, v.index);
    w.message(2, v.list, externalMetricValueList.write);
    w.int32(3, v.code);
    w.string(4, v.message);
  },
  read(r) {
    const v: GetMetricsResult = { index: 0, list: null, code: 0, message: '' };
    readFields(r, (n, type) => {
      if (n === 1 && type === Varint) v.index = r.uint32();
      else if (n === 2 && type === Bytes) v.list = r.message(externalMetricValueList.read);
      else if (n === 3 && type === Varint) v.code = r.int32();
      else if (n === 4 && type === Bytes) v.message = r.string();
      else return false;
      return true;
    });
    return v;
  },
};

// --- mirror.proto (package kedats.v1) ------------------------------------------------------------

/** WatchRequest: no fields. */
export const watchRequest: Codec<object> = {
  write() {},
  read(r) {
    readFields(r, () => false);
    return {};
  },
};

const mirrorKey: Codec<MirrorKey> = stringMessage({ namespace: 1, name: 2, metricName: 3 });

const mirrorEntry: Codec<MirrorEntry> = {
  write(w, v) {
    w.message(1, v.key, mirrorKey.write);
    w.string(2, v.value);
    w.int64(3, v.ttlMs);
  },
  read(r) {
    const v: MirrorEntry = { key: null, value: '', ttlMs: '0' };
    readFields(r, (n, type) => {
      if (n === 1 && type === Bytes) v.key = r.message(mirrorKey.read);
      else if (n === 2 && type === Bytes) v.value = r.string();
      else if (n === 3 && type === Varint) v.ttlMs = r.int64();
      else return false;
      return true;
    });
    return v;
  },
};

export const mirrorEvent: Codec<MirrorEvent> = {
  write(w, v) {
    w.bool(1, v.snapshot);
    for (const e of v.upserts) w.message(2, e, mirrorEntry.write);
    for (const k of v.removals) w.message(3, k, mirrorKey.write);
  },
  read(r) {
    const v: MirrorEvent = { snapshot: false, upserts: [], removals: [] };
    readFields(r, (n, type) => {
      if (n === 1 && type === Varint) v.snapshot = r.bool();
      else if (n === 2 && type === Bytes) v.upserts.push(r.message(mirrorEntry.read));
      else if (n === 3 && type === Bytes) v.removals.push(r.message(mirrorKey.read));
      else return false;
      return true;
    });
    return v;
  },
};
