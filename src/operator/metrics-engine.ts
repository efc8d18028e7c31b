// Answers GetMetrics: finds the scaled object, the trigger behind the metric name, and asks its
// scaler for the current value. Scalers are built once per trigger and rebuilt when the scaled
// object changes.
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { formatQuantity, quantityFromNumber } from '../k8s/quantity.js';
import { ChannelError, type MetricsHandler } from '../channel/server.js';
import { toWireTime, type ExternalMetricValueList, type ScaledObjectRef } from '../channel/service.js';
import type { CustomCaTrust } from '../tls/custom-ca.js';
import { createScaler } from './scalers/index.js';
import { ScalerError, type Scaler } from './scalers/scaler.js';
import type { ScaledObject, ScaledObjectStore } from './scaledobjects/types.js';

// A trigger whose scaler cannot be built still owns its KEDA index prefix `s<i>-`, so a query for
// it gets the build error rather than a misleading "no such metric".
type Built = { scaler: Scaler } | { error: string; prefix: string };

interface Entry {
  generation: number;
  triggers: Built[];
}

export class MetricsEngine implements MetricsHandler {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly store: ScaledObjectStore,
    private readonly trust: CustomCaTrust,
    private readonly scalerTimeoutMs: number,
    private readonly log: Logger,
  ) {
    store.onChange(() => this.prune());
  }

  async getMetrics(ref: ScaledObjectRef, signal: AbortSignal): Promise<ExternalMetricValueList> {
    const so = this.store.get(ref.namespace, ref.name);
    if (!so) throw new ChannelError(status.NOT_FOUND, `scaledobject ${ref.namespace}/${ref.name} not found`);
    const triggers = this.scalersFor(so);
    const built = triggers.find((b) => ('scaler' in b ? b.scaler.metricName === ref.metricName : ref.metricName.startsWith(b.prefix)));
    if (!built) {
      const names = triggers.map((b) => ('scaler' in b ? b.scaler.metricName : `${b.prefix}*`)).join(', ');
      throw new ChannelError(status.NOT_FOUND, `scaledobject ${ref.namespace}/${ref.name} has no metric "${ref.metricName}" (its metrics: ${names || 'none'})`);
    }
    if ('error' in built) throw new ChannelError(status.FAILED_PRECONDITION, `scaledobject ${ref.namespace}/${ref.name}: ${built.error}`);
    let value: number;
    try {
      value = await built.scaler.getMetricValue(signal);
    } catch (err) {
      const message = err instanceof ScalerError ? err.message : `scaler failed: ${(err as Error).message}`;
      this.log.warn({ scaledObject: `${ref.namespace}/${ref.name}`, metric: ref.metricName, reason: message }, 'scaler error');
      throw new ChannelError(status.UNKNOWN, message);
    }
    return {
      metadata: {},
      items: [{ metricName: ref.metricName, metricLabels: {}, timestamp: toWireTime(new Date()), value: { string: formatQuantity(quantityFromNumber(value)) } }],
    };
  }

  close(): void {
    for (const entry of this.cache.values()) closeAll(entry);
    this.cache.clear();
  }

  private scalersFor(so: ScaledObject): Built[] {
    const key = `${so.namespace}/${so.name}`;
    const cached = this.cache.get(key);
    if (cached && cached.generation === so.generation) return cached.triggers;
    if (cached) closeAll(cached);
    const triggers = so.spec.triggers.map((trigger, triggerIndex): Built => {
      try {
        const auth = trigger.authenticationRef ? this.store.resolveAuth(so.namespace, trigger.authenticationRef) : {};
        return { scaler: createScaler({ triggerIndex, trigger, auth, trust: this.trust, timeoutMs: this.scalerTimeoutMs, log: this.log }) };
      } catch (err) {
        const error = `trigger ${triggerIndex} (${trigger.type}): ${(err as Error).message}`;
        this.log.warn({ scaledObject: key, reason: error }, 'cannot build scaler');
        return { error, prefix: `s${triggerIndex}-` };
      }
    });
    this.cache.set(key, { generation: so.generation, triggers });
    return triggers;
  }

  /**
   * Any change to the source drops every scaler; each rebuilds on its next query. Secrets behind a
   * TriggerAuthentication can change without the scaled object's generation moving.
   */
  private prune(): void {
    for (const entry of this.cache.values()) closeAll(entry);
    this.cache.clear();
  }
}

function closeAll(entry: Entry): void {
  for (const b of entry.triggers) if ('scaler' in b) b.scaler.close();
}
