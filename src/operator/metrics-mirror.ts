// The operator's side of the metrics mirror: the values it answers from its last poll (triggers
// with useCachedMetrics), kept current after every poll, for the adapter to hold a copy of (see
// src/channel/mirror.proto). A value is only ever what GetMetrics would answer at that moment: a
// trigger whose poll failed is removed (GetMetrics then reads the upstream, and says why it
// fails), and each value carries a time to live of two polling intervals plus the scaler timeout,
// so that an adapter never serves one the operator stopped refreshing.
import { formatQuantity, quantityFromNumber } from '../k8s/quantity.js';
import type { MirrorEntry, MirrorKey, MirrorListener, MirrorSource } from '../channel/service.js';
import type { PollReport } from './metrics-engine.js';

const entryKey = (k: MirrorKey) => `${k.namespace}/${k.name}/${k.metricName}`;

export class MetricsMirror implements MirrorSource {
  private readonly entries = new Map<string, MirrorEntry>();
  /** `namespace/name` -> the entry keys of that ScaledObject. */
  private readonly byObject = new Map<string, Set<string>>();
  private readonly listeners = new Set<MirrorListener>();

  constructor(private readonly scalerTimeoutMs: number) {}

  /** One poll of one ScaledObject: its cached triggers' values, and whatever it no longer has. */
  observe(report: PollReport): void {
    const object = `${report.namespace}/${report.name}`;
    const ttlMs = String(2 * report.pollingInterval * 1000 + this.scalerTimeoutMs);
    const upserts: MirrorEntry[] = [];
    const keep = new Set<string>();
    for (const t of report.triggers) {
      if (!t.cached || t.metricName === undefined || t.value === undefined || t.error !== undefined) continue;
      const key: MirrorKey = { namespace: report.namespace, name: report.name, metricName: t.metricName };
      const entry: MirrorEntry = { key, value: formatQuantity(quantityFromNumber(t.value)), ttlMs };
      keep.add(entryKey(key));
      this.entries.set(entryKey(key), entry);
      upserts.push(entry);
    }
    const removals = this.forget(object, keep);
    if (keep.size > 0) this.byObject.set(object, keep);
    this.emit(upserts, removals);
  }

  /** Drops the ScaledObjects (`namespace/name`) that are gone. */
  retain(present: ReadonlySet<string>): void {
    const removals: MirrorKey[] = [];
    for (const object of [...this.byObject.keys()]) if (!present.has(object)) removals.push(...this.forget(object, new Set()));
    this.emit([], removals);
  }

  snapshot(): MirrorEntry[] {
    return [...this.entries.values()];
  }

  subscribe(listener: MirrorListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Removes the object's entries not in `keep`; returns their keys. */
  private forget(object: string, keep: ReadonlySet<string>): MirrorKey[] {
    const removed: MirrorKey[] = [];
    for (const k of this.byObject.get(object) ?? []) {
      if (keep.has(k)) continue;
      const entry = this.entries.get(k);
      this.entries.delete(k);
      if (entry?.key) removed.push(entry.key);
    }
    if (keep.size === 0) this.byObject.delete(object);
    return removed;
  }

  private emit(upserts: readonly MirrorEntry[], removals: readonly MirrorKey[]): void {
    if (upserts.length === 0 && removals.length === 0) return;
    for (const l of this.listeners) l(upserts, removals);
  }
}
