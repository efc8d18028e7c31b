// What every scaler test needs: a scaler built as the metrics engine builds one (closed at
// teardown), and the errors it fails with, each recorded so a test can check at the end that no
// secret ever appeared in one.
import { mkdir, writeFile } from 'node:fs/promises';
import type { Test } from 'tap';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { createScaler } from '../../src/operator/scalers/index.js';
import { ScalerConfigError, ScalerError, type Scaler } from '../../src/operator/scalers/scaler.js';
import type { AuthParams, Trigger } from '../../src/operator/scaledobjects/types.js';
import { CustomCaTrust } from '../../src/tls/custom-ca.js';
import { settles } from './loop.js';

export interface ScalerOptions {
  auth?: AuthParams;
  trust?: CustomCaTrust;
  timeoutMs?: number;
  index?: number;
  metricType?: Trigger['metricType'];
  /** Validate-only builds: the trigger names a TriggerAuthentication (whose parameters such a build cannot read). */
  validateOnly?: boolean | 'with an authenticationRef';
}

export function scalerTestKit(o: {
  type: string;
  trust: CustomCaTrust;
  timeoutMs: number;
  log: Logger;
  teardown: (fn: () => void) => void;
  /** How long readsEventually waits for an upstream's change to show (default 15 s). */
  settleMs?: number;
}) {
  /** Every error message seen, for the no-secrets check. */
  const messages: string[] = [];

  const makeScaler = (metadata: Record<string, string>, opts: ScalerOptions = {}): Scaler => {
    const trigger: Trigger = { type: o.type, metadata, ...(opts.metricType ? { metricType: opts.metricType } : {}), ...(opts.validateOnly === 'with an authenticationRef' ? { authenticationRef: { name: 'auth' } } : {}) };
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

  /** Waits until the scaler reads `want` (upstreams show a change after a scrape or a sampling interval). */
  const readsEventually = (s: Scaler, want: number, timeoutMs = o.settleMs ?? 15_000) => settles(`the scaler to read ${want}`, () => value(s), (v) => v === want, timeoutMs);

  /**
   * No secret (nor key material, nor any of `alsoNot`) in any message the test saw, of which there
   * must be more than `atLeast`, nor in any log line.
   */
  const expectNoSecrets = (t: Test, secrets: Record<string, string>, logLines: LogLine[], o: { atLeast: number; alsoNot?: Record<string, string> }) => {
    t.ok(messages.length > o.atLeast, `${messages.length} messages checked`);
    for (const m of messages) {
      for (const [name, secret] of Object.entries(secrets)) t.notOk(m.includes(secret), `no ${name} in: ${m}`);
      for (const [what, text] of Object.entries(o.alsoNot ?? {})) t.notOk(m.includes(text), what);
      t.notOk(m.includes('PRIVATE KEY'), 'no key material');
    }
    const logged = JSON.stringify(logLines);
    for (const secret of Object.values(secrets)) t.notOk(logged.includes(secret), 'nor in the logs');
    t.notOk(logged.includes('PRIVATE KEY'), 'no key material in the logs');
  };

  return { messages, makeScaler, failure, configFailure, value, readsEventually, expectNoSecrets };
}

export type LogLine = Record<string, unknown> & { msg: string; level: number };

/** A debug logger that keeps every line, for the checks that no secret is ever logged. */
export function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { log: pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as LogLine) }), lines };
}

/**
 * The trust a scaler test needs: `trust` knows the server's CA only through a --ca-dir folder
 * (the file `caFile` in `<root>/ca-dir`), `noCustomTrust` has an empty folder (the system roots
 * alone). Both closed at teardown.
 */
export async function caDirTrusts(
  t: { teardown(fn: () => unknown): void },
  root: string,
  log: Logger,
  caFile: string,
  caPem: string,
): Promise<{ caDir: string; trust: CustomCaTrust; noCustomTrust: CustomCaTrust }> {
  const caDir = join(root, 'ca-dir');
  await mkdir(caDir);
  await writeFile(join(caDir, caFile), caPem);
  const emptyDir = join(root, 'empty-ca-dir');
  await mkdir(emptyDir);
  const trust = new CustomCaTrust([caDir], log);
  const noCustomTrust = new CustomCaTrust([emptyDir], log);
  t.teardown(() => trust.close());
  t.teardown(() => noCustomTrust.close());
  await Promise.all([trust.start(), noCustomTrust.start()]);
  return { caDir, trust, noCustomTrust };
}
