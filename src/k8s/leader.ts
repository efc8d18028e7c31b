// Leader election through a coordination.k8s.io/v1 Lease, with client-go's timing model: the
// leader renews every retry period and gives up leadership the moment it cannot renew within the
// renew deadline, so that two replicas never write at once. Non-leaders keep trying to acquire.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { KubeClient } from './client.js';
import { describeApiError, statusCodeOf, withTimeout } from './kubeconfig.js';
import { microTime, type KubeObject } from './types.js';

interface Lease extends KubeObject {
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  identity?: string;
}

export interface LeaderCallbacks {
  onStartedLeading(): void;
  /** Called at once when leadership is lost or given up: stop writing now. */
  onStoppedLeading(): void;
}

export class LeaderElector {
  readonly identity: string;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  private readonly path: string;

  constructor(private readonly client: KubeClient, private readonly opts: LeaderElectionOptions, private readonly callbacks: LeaderCallbacks, private readonly log: Logger) {
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
    this.identity = opts.identity ?? `${process.env.POD_NAME ?? hostname()}_${randomBytes(4).toString('hex')}`;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  /** Steps down (releasing the lease so another replica takes over quickly) and stops trying. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.leading) {
      this.lose('stopping');
      await this.release().catch(() => undefined);
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.opts.retryPeriodMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      const renewed = await withTimeout(this.tryAcquireOrRenew(), this.opts.renewDeadlineMs, 'lease update');
      if (renewed) {
        this.lastRenew = Date.now();
        if (!this.leading && !this.stopped) {
          this.leading = true;
          this.log.info({ lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.identity }, 'became the leader');
          this.callbacks.onStartedLeading();
        }
      } else if (this.leading) {
        this.lose('another replica holds the lease');
      }
    } catch (err) {
      this.log.warn({ lease: this.opts.name, reason: describeApiError(err) }, 'lease update failed');
      if (this.leading && Date.now() - this.lastRenew >= this.opts.renewDeadlineMs - this.opts.retryPeriodMs) this.lose('could not renew the lease in time');
    }
    this.schedule();
  }

  private lose(reason: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.log.warn({ lease: `${this.opts.namespace}/${this.opts.name}`, reason }, 'lost leadership: stopping writes');
    this.callbacks.onStoppedLeading();
  }

  /** True when this replica holds the lease after the call. Writes are conflict-safe (resourceVersion). */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = microTime();
    const spec = { holderIdentity: this.identity, leaseDurationSeconds: Math.ceil(this.opts.leaseDurationMs / 1000), renewTime: now };
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(`${this.path}/${this.opts.name}`);
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
      try {
        await this.client.post(this.path, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec: { ...spec, acquireTime: now, leaseTransitions: 0 },
        });
        return true;
      } catch (createErr) {
        if (statusCodeOf(createErr) === 409) return false;
        throw createErr;
      }
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const renewedAt = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
    const expired = holder === '' || renewedAt + durationMs < Date.now();
    if (holder !== this.identity && !expired) return false;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.identity ? 0 : 1);
    try {
      await this.client.put(`${this.path}/${this.opts.name}`, {
        ...lease,
        spec: { ...lease.spec, ...spec, leaseTransitions: transitions, ...(holder === this.identity ? {} : { acquireTime: now }) },
      });
      return true;
    } catch (err) {
      if (statusCodeOf(err) === 409) return false;
      throw err;
    }
  }

  private async release(): Promise<void> {
    const lease = await this.client.get<Lease>(`${this.path}/${this.opts.name}`);
    if (lease.spec?.holderIdentity !== this.identity) return;
    await this.client.put(`${this.path}/${this.opts.name}`, { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime() } });
  }
}
