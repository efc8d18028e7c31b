// Keeps `caBundle` of the APIService and of every webhook in the ValidatingWebhookConfiguration
// equal to the CA bundle our certificates chain to: patched on change, written conflict-safe
// (a 409 means re-read and try again), watched so that drift is restored, with backoff so that
// we never fight another controller forever. Objects that cert-manager injects are left alone.
import type { KubeClient } from '../../k8s/client.js';
import type { KubeObject } from '../../k8s/types.js';
import type { Logger } from 'pino';
import type { EventRecorder } from '../../k8s/events.js';
import { informer, type Informer } from '../../k8s/informer.js';
import { describeApiError, statusCodeOf } from '../../k8s/kubeconfig.js';
import type { CertificateLifecycleMetrics } from '../../observability/metrics.js';

export const CERT_MANAGER_INJECT_ANNOTATION = 'cert-manager.io/inject-ca-from';

export interface CaBundleTarget {
  kind: 'APIService' | 'ValidatingWebhookConfiguration';
  name: string;
}

const API_VERSION: Record<CaBundleTarget['kind'], string> = {
  APIService: 'apiregistration.k8s.io/v1',
  ValidatingWebhookConfiguration: 'admissionregistration.k8s.io/v1',
};
const COLLECTION: Record<CaBundleTarget['kind'], string> = {
  APIService: '/apis/apiregistration.k8s.io/v1/apiservices',
  ValidatingWebhookConfiguration: '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations',
};

type Obj = KubeObject & {
  spec?: { caBundle?: string; insecureSkipTLSVerify?: boolean };
  webhooks?: { clientConfig?: { caBundle?: string } }[];
};

/** The object with our bundle in place, or undefined when it already has it. */
export function withCaBundle(obj: Obj, bundleB64: string): Obj | undefined {
  const copy = structuredClone(obj);
  let changed = false;
  if (copy.kind === 'APIService') {
    copy.spec ??= {};
    if (copy.spec.caBundle !== bundleB64) {
      copy.spec.caBundle = bundleB64;
      changed = true;
    }
    // caBundle and insecureSkipTLSVerify cannot be combined, and we never skip verification.
    if (copy.spec.insecureSkipTLSVerify) {
      copy.spec.insecureSkipTLSVerify = false;
      changed = true;
    }
  } else {
    for (const w of copy.webhooks ?? []) {
      w.clientConfig ??= {};
      if (w.clientConfig.caBundle !== bundleB64) {
        w.clientConfig.caBundle = bundleB64;
        changed = true;
      }
    }
  }
  return changed ? copy : undefined;
}

/**
 * Who wrote the caBundle, when the API server says so: the manager that owns a caBundle field in
 * managedFields (a writer that changed it takes ownership), the most recent if several.
 */
function lastWriter(obj: Obj): string | undefined {
  const owners = (obj.metadata?.managedFields ?? []).filter((m) => JSON.stringify(m.fieldsV1 ?? {}).includes('"f:caBundle"'));
  return owners.sort((a, b) => String(b.time ?? '').localeCompare(String(a.time ?? '')))[0]?.manager;
}

interface TargetState {
  restores: number;
  failures: number;
  backoffUntil: number;
  timer?: NodeJS.Timeout;
  skippedForCertManager?: boolean;
}

export class CaBundleInjector {
  private readonly state = new Map<string, TargetState>();
  private readonly informers: Informer<Obj>[] = [];
  private bundleB64 = '';
  private active = false;

  constructor(
    private readonly client: KubeClient,
    private readonly targets: readonly CaBundleTarget[],
    private readonly log: Logger,
    private readonly metrics: CertificateLifecycleMetrics,
    private readonly events: EventRecorder,
    private readonly maxBackoffMs = 300_000,
  ) {
    for (const t of targets) this.state.set(t.name, { restores: 0, failures: 0, backoffUntil: 0 });
  }

  /** Starts watching the targets; patches happen only while active (the leader). */
  async start(): Promise<void> {
    for (const target of this.targets) {
      const watch = informer<Obj>({
        client: this.client,
        path: COLLECTION[target.kind],
        fieldSelector: `metadata.name=${target.name}`,
        // Who changed the caBundle is read from them (see lastWriter).
        keepManagedFields: true,
        name: `${target.kind} ${target.name}`,
        log: this.log,
      });
      watch.onObject((obj, event) => {
        if (event !== 'delete' && this.active && this.bundleB64 && withCaBundle(obj, this.bundleB64)) this.onDrift(target, obj);
      });
      this.informers.push(watch);
      await watch.start();
    }
  }

  async close(): Promise<void> {
    for (const s of this.state.values()) clearTimeout(s.timer);
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  setActive(active: boolean): void {
    this.active = active;
    if (active) void this.reconcileAll('leadership acquired');
  }

  /** The PEM bundle every target must carry. */
  setBundle(pem: string): void {
    const b64 = Buffer.from(pem).toString('base64');
    if (b64 === this.bundleB64) return;
    this.bundleB64 = b64;
    void this.reconcileAll('CA bundle changed');
  }

  async reconcileAll(why: string): Promise<void> {
    if (!this.active || !this.bundleB64) return;
    await Promise.all(this.targets.map((t) => this.reconcile(t, why)));
  }

  private onDrift(target: CaBundleTarget, obj: Obj): void {
    const s = this.state.get(target.name)!;
    if (s.timer) return;
    const who = lastWriter(obj);
    const wait = Math.max(0, s.backoffUntil - Date.now());
    this.log.warn({ target: `${target.kind}/${target.name}`, changedBy: who, restoreInMs: wait }, 'caBundle drifted from our CA: restoring');
    this.events.record(
      { apiVersion: API_VERSION[target.kind], kind: target.kind, name: target.name },
      'Warning',
      'CABundleDrift',
      `caBundle was changed${who ? ` by ${who}` : ''}; restoring the operator's CA bundle${wait > 0 ? ` in ${Math.round(wait / 1000)}s (backing off)` : ''}`,
    );
    s.timer = setTimeout(() => {
      s.timer = undefined;
      s.restores++;
      // Each restore doubles the wait before the next one: two writers never spin.
      s.backoffUntil = Date.now() + Math.min(this.maxBackoffMs, 1000 * 2 ** Math.min(s.restores, 20));
      void this.reconcile(target, 'drift');
    }, wait);
    s.timer.unref();
  }

  /** A failed read or write is tried again, with growing waits, until it succeeds. */
  private retryLater(target: CaBundleTarget): void {
    const s = this.state.get(target.name)!;
    if (s.timer) return;
    s.failures++;
    s.timer = setTimeout(() => {
      s.timer = undefined;
      void this.reconcile(target, 'retry after a failure');
    }, Math.min(this.maxBackoffMs, 500 * 2 ** Math.min(s.failures, 20)));
    s.timer.unref();
  }

  private async reconcile(target: CaBundleTarget, why: string): Promise<void> {
    const label = `${target.kind}/${target.name}`;
    for (let attempt = 1; attempt <= 5; attempt++) {
      if (!this.active) return;
      let obj: Obj;
      try {
        obj = await this.client.get<Obj>(`${COLLECTION[target.kind]}/${target.name}`);
      } catch (err) {
        if (statusCodeOf(err) === 404) {
          this.log.info({ target: label }, 'not installed yet: caBundle will be set when it appears');
          return;
        }
        this.metrics.patches.inc({ target: target.kind, result: 'error' });
        this.log.warn({ target: label, reason: describeApiError(err) }, 'cannot read caBundle target');
        this.retryLater(target);
        return;
      }
      const s = this.state.get(target.name)!;
      if (obj.metadata?.annotations?.[CERT_MANAGER_INJECT_ANNOTATION]) {
        if (!s.skippedForCertManager) this.log.info({ target: label, annotation: CERT_MANAGER_INJECT_ANNOTATION }, 'cert-manager injects this caBundle: leaving it alone');
        s.skippedForCertManager = true;
        return;
      }
      s.skippedForCertManager = false;
      const desired = withCaBundle(obj, this.bundleB64);
      if (!desired) return;
      try {
        await this.client.put(`${COLLECTION[target.kind]}/${target.name}`, desired);
        s.failures = 0;
        this.metrics.patches.inc({ target: target.kind, result: 'ok' });
        this.log.info({ target: label, why }, 'caBundle updated');
        return;
      } catch (err) {
        if (statusCodeOf(err) === 409) {
          this.metrics.conflicts.inc({ target: target.kind });
          this.log.info({ target: label, attempt }, 'conflict writing caBundle: re-reading');
          continue;
        }
        this.metrics.patches.inc({ target: target.kind, result: 'error' });
        this.log.warn({ target: label, reason: describeApiError(err) }, 'cannot write caBundle');
        this.events.record(
          { apiVersion: API_VERSION[target.kind], kind: target.kind, name: target.name },
          'Warning',
          'CABundlePatchFailed',
          `could not write caBundle: ${describeApiError(err)}`,
        );
        this.retryLater(target);
        return;
      }
    }
  }
}
