// The operator's certificate duties, assembled from the configuration: the managed Secret (when
// rotation is on) and caBundle injection (APIService, webhook), written only by the replica that
// leads. With rotation off, the bundle injected is the cert dir's ca.crt.
import type { KubeClient } from '../../k8s/client.js';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { EventRecorder } from '../../k8s/events.js';
import { CertificateLifecycleMetrics } from '../../observability/metrics.js';
import type { CertificateLifecycleConfig } from '../config.js';
import type { Leadership } from '../leadership.js';
import { CaBundleInjector, type CaBundleTarget } from './ca-injector.js';
import { CertificateManager } from './manager.js';

export interface CertificateLifecycle {
  start(): Promise<void>;
  /** With rotation off: the bundle to inject, from the cert dir (call again when it changes). */
  setCertDirBundle(pem: string): void;
  close(): Promise<void>;
}

export function setUpCertificateLifecycle(
  client: KubeClient,
  cfg: CertificateLifecycleConfig,
  rotation: boolean,
  namespace: string,
  registry: Registry,
  leadership: Leadership,
  log: Logger,
): CertificateLifecycle | undefined {
  const targets: CaBundleTarget[] = [
    ...(cfg.apiService ? [{ kind: 'APIService' as const, name: cfg.apiService }] : []),
    ...(cfg.validatingWebhook ? [{ kind: 'ValidatingWebhookConfiguration' as const, name: cfg.validatingWebhook }] : []),
  ];
  if (!rotation && targets.length === 0) return undefined;
  const metrics = new CertificateLifecycleMetrics(registry);
  const events = new EventRecorder(client, 'keda-ts-operator', log);
  const injector = targets.length > 0 ? new CaBundleInjector(client, targets, log, metrics, events) : undefined;
  const manager = rotation
    ? new CertificateManager({
        client,
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
    manager?.setActive(active);
    injector?.setActive(active);
  };
  leadership.onChange(setActive);

  return {
    async start() {
      await injector?.start();
      await manager?.start();
      if (leadership.isLeader) setActive(true);
    },
    setCertDirBundle(pem) {
      if (!rotation) injector?.setBundle(pem);
    },
    async close() {
      setActive(false);
      await Promise.all([manager?.close(), injector?.close()]);
    },
  };
}
