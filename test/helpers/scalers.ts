// What every scaler test needs: a scaler built as the metrics engine builds one (closed at
// teardown), and the errors it fails with, each recorded so a test can check at the end that no
// secret ever appeared in one.
import type { Logger } from 'pino';
import { createScaler } from '../../src/operator/scalers/index.js';
import { ScalerConfigError, ScalerError, type Scaler } from '../../src/operator/scalers/scaler.js';
import type { AuthParams, Trigger } from '../../src/operator/scaledobjects/types.js';
import type { CustomCaTrust } from '../../src/tls/custom-ca.js';

export interface ScalerOptions {
  auth?: AuthParams;
  trust?: CustomCaTrust;
  timeoutMs?: number;
  index?: number;
  metricType?: Trigger['metricType'];
  validateOnly?: boolean;
}

export function scalerTestKit(o: { type: string; trust: CustomCaTrust; timeoutMs: number; log: Logger; teardown: (fn: () => void) => void }) {
  /** Every error message seen, for the no-secrets check. */
  const messages: string[] = [];

  const makeScaler = (metadata: Record<string, string>, opts: ScalerOptions = {}): Scaler => {
    const trigger: Trigger = { type: o.type, metadata, ...(opts.metricType ? { metricType: opts.metricType } : {}) };
    const s = createScaler({
      triggerIndex: opts.index ?? 0,
      trigger,
      auth: opts.auth ?? {},
      trust: opts.trust ?? o.trust,
      timeoutMs: opts.timeoutMs ?? o.timeoutMs,
      log: o.log,
      ...(opts.validateOnly ? { validateOnly: true } : {}),
    });
    o.teardown(() => s.close());
    return s;
  };

  /** The ScalerError a call fails with. */
  const failure = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p;
    } catch (err) {
      if (!(err instanceof ScalerError)) throw new Error(`expected a ScalerError, got ${String(err)}`, { cause: err });
      messages.push(err.message);
      return err.message;
    }
    throw new Error('expected a ScalerError, got a value');
  };

  /** The ScalerConfigError building a scaler fails with. */
  const configFailure = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ScalerConfigError)) throw new Error(`expected a ScalerConfigError, got ${String(err)}`, { cause: err });
      messages.push(err.message);
      return err.message;
    }
    throw new Error('expected a ScalerConfigError');
  };

  const value = (s: Scaler, signal: AbortSignal = new AbortController().signal) => s.getMetricValue(signal);

  return { messages, makeScaler, failure, configFailure, value };
}
