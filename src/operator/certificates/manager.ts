// The certificate lifecycle as the leader runs it: read the Secret, let the plan decide, write
// conflict-safe, publish the CA bundle to the APIService and webhook, sleep until the next thing
// is due. Only the replica holding the Lease writes; every replica keeps serving.
import type { KubeClient } from '../../k8s/client.js';
import type { Secret } from '../../k8s/types.js';
import type { Logger } from 'pino';
import type { EventRecorder } from '../../k8s/events.js';
import { informer, type Informer } from '../../k8s/informer.js';
import { describeApiError, statusCodeOf } from '../../k8s/kubeconfig.js';
import type { CertificateLifecycleMetrics } from '../../observability/metrics.js';
import type { CaBundleInjector } from './ca-injector.js';
import { planCertificates, type LifecycleConfig, type Plan, type SecretState } from './plan.js';

export interface CertificateManagerOptions {
  client: KubeClient;
  namespace: string;
  secretName: string;
  lifecycle: LifecycleConfig;
  log: Logger;
  metrics: CertificateLifecycleMetrics;
  events: EventRecorder;
  injector: CaBundleInjector | undefined;
  /** How often the leader re-checks even when nothing is due (catches out-of-band edits). */
  resyncMs?: number;
}

const decode = (data: Record<string, string> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
const encode = (data: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));

export class CertificateManager {
  private active = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private informer: Informer<Secret> | undefined;

  constructor(private readonly o: CertificateManagerOptions) {}

  async start(): Promise<void> {
    this.informer = informer<Secret>({
      client: this.o.client,
      path: `/api/v1/namespaces/${this.o.namespace}/secrets`,
      fieldSelector: `metadata.name=${this.o.secretName}`,
      name: `secret ${this.o.namespace}/${this.o.secretName}`,
      log: this.o.log,
    });
    // Someone else touched the Secret (or deleted it): look again now rather than at the next resync.
    this.informer.onObject(() => this.trigger(50));
    await this.informer.start();
  }

  /** Called by leader election. Losing leadership stops writes at once. */
  setActive(active: boolean): void {
    this.active = active;
    clearTimeout(this.timer);
    if (active) this.trigger(0);
  }

  async close(): Promise<void> {
    this.active = false;
    clearTimeout(this.timer);
    await this.informer?.stop();
    await this.running;
  }

  private trigger(delayMs: number): void {
    if (!this.active) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.running.then(() => this.reconcile());
    }, delayMs);
    this.timer.unref();
  }

  private async reconcile(): Promise<void> {
    if (!this.active) return;
    const resync = this.o.resyncMs ?? 60_000;
    let next = Date.now() + resync;
    try {
      next = Math.min(next, (await this.reconcileOnce()).getTime());
    } catch (err) {
      this.o.log.error({ reason: describeApiError(err) }, 'certificate reconcile failed; retrying');
      this.o.events.record(
        { apiVersion: 'v1', kind: 'Secret', name: this.o.secretName, namespace: this.o.namespace },
        'Warning',
        'CertificateReconcileFailed',
        `could not check or write the certificate Secret: ${describeApiError(err)}`,
      );
      next = Date.now() + Math.min(resync, 5_000);
    }
    this.trigger(Math.max(50, next - Date.now()));
  }

  private async reconcileOnce(): Promise<Date> {
    const { namespace, secretName, log } = this.o;
    let secret: Secret | undefined;
    try {
      secret = await this.o.client.get<Secret>(`/api/v1/namespaces/${namespace}/secrets/${secretName}`);
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
    const state: SecretState = { data: decode(secret?.data), annotations: { ...(secret?.metadata?.annotations ?? {}) } };
    const plan: Plan = await planCertificates(state, this.o.lifecycle, new Date());
    this.recordExpiry(plan);
    if (plan.action === 'none') {
      this.o.injector?.setBundle(state.data['ca.crt'] ?? '');
      return plan.nextCheckAt;
    }
    // Leadership may have been lost while planning: a replica that is not the leader never writes.
    if (!this.active) return plan.nextCheckAt;
    const body: Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        ...(secret?.metadata ?? {}),
        name: secretName,
        namespace,
        // The plan returns the whole set: the Secret's own annotations with the rollover ones updated.
        annotations: plan.annotations,
      },
      data: encode(plan.data),
    };
    try {
      if (secret) await this.o.client.put(`/api/v1/namespaces/${namespace}/secrets/${secretName}`, body);
      else await this.o.client.post(`/api/v1/namespaces/${namespace}/secrets`, body);
    } catch (err) {
      if (statusCodeOf(err) === 409) {
        log.info({ secret: `${namespace}/${secretName}` }, 'conflict writing the certificate Secret: re-reading');
        return new Date(Date.now() + 100);
      }
      throw err;
    }
    this.o.metrics.rotations.inc({ kind: plan.kind });
    const warning = plan.kind === 'replace-corrupt';
    (warning ? log.warn.bind(log) : log.info.bind(log))({ secret: `${namespace}/${secretName}`, kind: plan.kind }, `certificate Secret written: ${plan.reason}`);
    this.o.events.record({ apiVersion: 'v1', kind: 'Secret', name: secretName, namespace }, warning ? 'Warning' : 'Normal', warning ? 'CertificateSecretReplaced' : 'CertificateRotated', `${plan.kind}: ${plan.reason}`);
    this.o.injector?.setBundle(plan.data['ca.crt'] ?? '');
    return plan.nextCheckAt;
  }

  private recordExpiry(plan: Plan): void {
    const { notAfter } = this.o.metrics;
    const secret = `${this.o.namespace}/${this.o.secretName}`;
    const cas = [...plan.summary.caNotAfter].sort((a, b) => b.getTime() - a.getTime());
    if (cas[0]) notAfter.set({ secret, role: 'ca' }, cas[0].getTime() / 1000);
    if (cas[1]) notAfter.set({ secret, role: 'ca-previous' }, cas[1].getTime() / 1000);
    else notAfter.remove({ secret, role: 'ca-previous' });
    if (plan.summary.leafNotAfter) notAfter.set({ secret, role: 'leaf' }, plan.summary.leafNotAfter.getTime() / 1000);
  }
}

