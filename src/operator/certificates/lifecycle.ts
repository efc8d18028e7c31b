// The operator's certificate duties, assembled from the configuration: the managed Secret (when
// rotation is on), caBundle injection (APIService, webhook), and the Lease that makes exactly one
// replica the writer. With rotation off, the bundle injected is the cert dir's ca.crt.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { EventRecorder } from '../../k8s/events.js';
import { LeaderElector } from '../../k8s/leader.js';
import { CertificateLifecycleMetrics } from '../../observability/metrics.js';
import type { CertificateLifecycleConfig } from '../config.js';
import { CaBundleInjector, type CaBundleTarget } from './ca-injector.js';
import { CertificateManager } from './manager.js';

export interface CertificateLifecycle {
  start(): Promise<void>;
  /** With rotation off: the bundle to inject, from the cert dir (call again when it changes). */
  setCertDirBundle(pem: string): void;
  readonly isLeader: boolean;
  close(): Promise<void>;
}

export function setUpCertificateLifecycle(
  kc: KubeConfig,
  cfg: CertificateLifecycleConfig,
  rotation: boolean,
  namespace: string,
  registry: Registry,
  log: Logger,
): CertificateLifecycle | undefined {
  const targets: CaBundleTarget[] = [
    ...(cfg.apiService ? [{ kind: 'APIService' as const, name: cfg.apiService }] : []),
    ...(cfg.validatingWebhook ? [{ kind: 'ValidatingWebhookConfiguration' as const, name: cfg.validatingWebhook }] : []),
  ];
  if (!rotation && targets.length === 0) return undefined;
  const metrics = new CertificateLifecycleMetrics(registry);
  const events = new EventRecorder(kc, 'keda-ts-operator', log);
  const injector = targets.length > 0 ? new CaBundleInjector(kc, targets, log, metrics, events) : undefined;
  const manager = rotation
    ? new CertificateManager({
        kc,
        namespace,
        secretName: cfg.secretName,
        lifecycle: cfg.lifecycle,
        log,
        metrics,
        events,
        injector,
      })
    : undefined;
  const setActive = (active: boolean) => {
    metrics.leader.set(active ? 1 : 0);
    manager?.setActive(active);
    injector?.setActive(active);
  };
  const elector = cfg.leaderElection.enabled
    ? new LeaderElector(
        kc,
        {
          namespace,
          name: cfg.leaderElection.name,
          leaseDurationMs: cfg.leaderElection.leaseDurationMs,
          renewDeadlineMs: cfg.leaderElection.renewDeadlineMs,
          retryPeriodMs: cfg.leaderElection.retryPeriodMs,
        },
        { onStartedLeading: () => setActive(true), onStoppedLeading: () => setActive(false) },
        log,
      )
    : undefined;
  let leading = false;

  return {
    async start() {
      await injector?.start();
      await manager?.start();
      if (elector) elector.start();
      else {
        leading = true;
        setActive(true);
      }
    },
    setCertDirBundle(pem) {
      if (!rotation) injector?.setBundle(pem);
    },
    get isLeader() {
      return elector ? elector.isLeader : leading;
    },
    async close() {
      await elector?.stop();
      setActive(false);
      await Promise.all([manager?.close(), injector?.close()]);
    },
  };
}
