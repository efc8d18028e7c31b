// Which operator replica writes: one Lease for every duty that must have a single writer (the
// certificate Secret, caBundle injection, HPAs, ScaledObject status, scaling to and from zero).
// Without leader election (one replica by design) this replica always leads.
import type { KubeClient } from '../k8s/client.js';
import type { Logger } from 'pino';
import { LeaderElector } from '../k8s/leader.js';
import type { LeaderElectionMetrics } from '../observability/metrics.js';
import type { OperatorConfig } from './config.js';

export class Leadership {
  private readonly elector: LeaderElector | undefined;
  private readonly listeners: ((leading: boolean) => void)[] = [];
  private leading = false;

  constructor(
    client: KubeClient,
    config: Pick<OperatorConfig, 'leaderElection' | 'namespace'>,
    private readonly metrics: LeaderElectionMetrics,
    private readonly log: Logger,
  ) {
    const le = config.leaderElection;
    this.elector = le.enabled
      ? new LeaderElector(
          client,
          { namespace: config.namespace, name: le.name, leaseDurationMs: le.leaseDurationMs, renewDeadlineMs: le.renewDeadlineMs, retryPeriodMs: le.retryPeriodMs },
          { onStartedLeading: () => this.set(true), onStoppedLeading: () => this.set(false) },
          log,
        )
      : undefined;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Called at once on every change; a duty must stop writing the moment it is told `false`. */
  onChange(listener: (leading: boolean) => void): void {
    this.listeners.push(listener);
  }

  start(): void {
    if (this.elector) this.elector.start();
    else this.set(true);
  }

  async stop(): Promise<void> {
    await this.elector?.stop();
    this.set(false);
  }

  private set(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.metrics.leader.set(leading ? 1 : 0);
    for (const l of this.listeners) {
      try {
        l(leading);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'a leadership listener failed');
      }
    }
  }
}
