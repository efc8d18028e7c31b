// Starts the operator from a validated configuration: the scaled-object store (the cluster, or a
// file), the metrics engine and its scalers' trust, the ScaledObject controller (HPAs, status,
// scaling to and from zero) and the certificate lifecycle behind one Lease, the gRPC metrics
// service over mutual TLS 1.3, and the metrics/probe port.
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { startChannelServer, type RunningChannelServer } from '../channel/server.js';
import { HealthChecks } from '../observability/health.js';
import { createLogger } from '../observability/logger.js';
import { startMetricsServer, stopMetricsServer } from '../observability/metrics-server.js';
import { startIdleTrim } from '../observability/idle-trim.js';
import { AdmissionMetrics, CertificateMetrics, GrpcMetrics, KubeClientMetrics, LeaderElectionMetrics, ScalingMetrics, createRegistry } from '../observability/metrics.js';
import { startWebhookServer } from './webhook/server.js';
import { CustomCaTrust } from '../tls/custom-ca.js';
import { LiveTls } from '../tls/live-tls.js';
import { warnOnUncoveredNames } from '../tls/san-check.js';
import { dialedServiceNames } from '../k8s/service-names.js';
import type { OperatorConfig } from './config.js';
import { MetricsEngine } from './metrics-engine.js';
import { MetricsMirror } from './metrics-mirror.js';
import { setUpCertificateLifecycle } from './certificates/lifecycle.js';
import { loadKubeClient } from '../k8s/kubeconfig.js';
import { EventRecorder } from '../k8s/events.js';
import type { ScaledObjectStore } from './scaledobjects/types.js';
import { ClusterScaledObjectStore } from './scaledobjects/cluster-store.js';
import { ScaledObjectController } from './scaling/controller.js';
import { ScaledJobController } from './scaledjobs/controller.js';
import { PodIndex } from './scalers/pod-index.js';
import { ScaleTargets, workloadsOf } from './scaling/scale-targets.js';
import { Leadership } from './leadership.js';
import { ServiceAccountTokens } from '../k8s/service-account-tokens.js';

export interface RunningOperator {
  channel: RunningChannelServer;
  metricsServer: Server | undefined;
  shutdown(): Promise<void>;
}

const CA = 'ca';

/** In a pod, or pointed at a cluster by kubeconfig. */
export function clusterReachable(config: OperatorConfig, env: NodeJS.ProcessEnv): boolean {
  return config.kubeconfig !== '' || Boolean(env.KUBERNETES_SERVICE_HOST);
}

export async function startOperator(config: OperatorConfig, log: Logger = createLogger(config.logLevel, 'operator'), env: NodeJS.ProcessEnv = process.env): Promise<RunningOperator> {
  const inCluster = clusterReachable(config, env);
  if (!config.scaledObjectsFile && !inCluster) throw new Error('no cluster (no kubeconfig, not in a pod) and no --scaled-objects-file: nothing to serve');
  const registry = createRegistry('operator');
  const kc = inCluster ? loadKubeClient(config.kubeconfig, env) : undefined;
  const kubeClientMetrics = new KubeClientMetrics(registry);
  if (kc) kubeClientMetrics.observe(kc);
  if (config.enableCertRotation && !kc) log.info({ reason: 'no cluster' }, 'certificate rotation is off: serving the certificates found in the cert dir');
  const leadership = kc ? new Leadership(kc, config, new LeaderElectionMetrics(registry), log) : undefined;
  const lifecycle = kc && leadership ? setUpCertificateLifecycle(kc, config.certificates, config.enableCertRotation, config.namespace, registry, leadership, log) : undefined;
  await lifecycle?.start();
  // Before waiting for the certificate files: with rotation on, the leader is who writes them.
  leadership?.start();
  if (lifecycle && config.enableCertRotation) await waitForFiles([config.certFile, config.keyFile, config.caFile], log);

  const tls = new LiveTls({ certFile: config.certFile, keyFile: config.keyFile, caFiles: { [CA]: config.caFile } }, config.tls, log, new CertificateMetrics(registry));
  await tls.start();
  // Rotation off (own certificates, cert-manager): what gets injected is the mounted ca.crt.
  const publishCertDirBundle = () => lifecycle?.setCertDirBundle(tls.bundle(CA)?.pem ?? '');
  publishCertDirBundle();
  tls.onChange(publishCertDirBundle);
  warnOnUncoveredNames(tls, dialedServiceNames('keda-operator', config.namespace), log, 'adapters dialing the Service by that name will fail verification');

  const trust = new CustomCaTrust(config.caDirs, log);
  await trust.start();
  const clusterStore = kc && !config.scaledObjectsFile ? new ClusterScaledObjectStore({ client: kc, log, watchNamespace: config.watchNamespace, clusterObjectNamespace: config.namespace }) : undefined;
  // The file store, and with it the YAML parser, is loaded only when it is used.
  const store: ScaledObjectStore = clusterStore ?? new (await import('./scaledobjects/file-store.js')).FileScaledObjectStore(config.scaledObjectsFile, log, { clusterObjectNamespace: config.namespace });
  if (config.serviceAccountTokens && !kc) log.warn({ reason: 'no cluster' }, '--enable-service-account-token-requests has no effect without a cluster');
  const scalingMetrics = new ScalingMetrics(registry);
  const tokens =
    config.serviceAccountTokens && kc
      ? new ServiceAccountTokens(kc, { ...config.serviceAccountTokens, log, metrics: { requestFinished: (outcome) => scalingMetrics.tokenRequests.inc({ outcome }) } })
      : undefined;
  const targets = kc && clusterStore ? new ScaleTargets(kc, { log, watchNamespace: config.watchNamespace }) : undefined;
  const pods = kc && clusterStore ? new PodIndex({ client: kc, log, watchNamespace: config.watchNamespace }) : undefined;
  const engine = new MetricsEngine(store, { trust, scalerTimeoutMs: config.scalerTimeoutMs, log, poll: true, ...(tokens ? { tokens } : {}), ...(targets ? { workloads: workloadsOf(targets), podTemplates: targets } : {}), ...(pods ? { pods } : {}) });
  const mirror = new MetricsMirror(config.scalerTimeoutMs);
  engine.onPoll((report) => {
    scalingMetrics.observePoll(report);
    mirror.observe(report);
  });
  store.onChange(() => {
    const present = new Set(store.list().map((so) => `${so.namespace}/${so.name}`));
    scalingMetrics.retain(present);
    mirror.retain(present);
  });
  await store.start();
  const controller =
    kc && clusterStore && targets
      ? new ScaledObjectController({
          client: kc,
          store: clusterStore,
          engine,
          targets,
          events: new EventRecorder(kc, 'keda-operator', log),
          log,
          metrics: scalingMetrics,
          watchNamespace: config.watchNamespace,
          syncPeriodMs: config.syncPeriodMs,
        })
      : undefined;
  await controller?.start();
  const jobs =
    kc && clusterStore
      ? new ScaledJobController({
          client: kc,
          auth: clusterStore,
          engine: { trust, scalerTimeoutMs: config.scalerTimeoutMs, log, ...(tokens ? { tokens } : {}), ...(pods ? { pods } : {}) },
          events: new EventRecorder(kc, 'keda-operator', log),
          log,
          metrics: scalingMetrics,
          watchNamespace: config.watchNamespace,
        })
      : undefined;
  // Not awaited: a cluster without the ScaledJob CRD still gets its ScaledObjects served (the
  // watch keeps retrying, and says so, until the CRD is there).
  void jobs?.start().then(
    () => log.info('ScaledJobs watched'),
    (err: unknown) => log.debug({ reason: (err as Error).message }, 'ScaledJob watches ended before their first list'),
  );
  for (const c of [controller, jobs]) {
    if (!c || !leadership) continue;
    leadership.onChange((leading) => c.setLeading(leading));
    c.setLeading(leadership.isLeader);
  }

  const channel = await startChannelServer({
    bindAddress: config.metricsServiceBindAddress,
    tls,
    trust: [CA],
    handler: engine,
    mirror,
    metrics: new GrpcMetrics(registry, 'server'),
    log,
    maxConnectionAgeMs: config.maxConnectionAgeMs,
    maxConnectionAgeGraceMs: config.maxConnectionAgeGraceMs,
  });

  // After the store's first list, so that the duplicate-workload check sees every object.
  const webhooks =
    config.webhookPort > 0
      ? await startWebhookServer({ bindAddress: `:${config.webhookPort}`, tls, store, trust, scalerTimeoutMs: config.scalerTimeoutMs, log, metrics: new AdmissionMetrics(registry) })
      : undefined;

  let shuttingDown = false;
  const health = new HealthChecks();
  health.add('ping', ['livez', 'readyz'], () => ({ ok: true }));
  health.add('scaled-objects', ['readyz'], () => ({ ok: true, reason: `${store.list().length} loaded` }));
  health.add('shutdown', ['readyz'], () => (shuttingDown ? { ok: false, reason: 'process is shutting down' } : { ok: true }));
  const metricsServer = config.metricsPort > 0 ? await startMetricsServer(config.metricsPort, config.metricsBindAddress, registry, health) : undefined;
  const idleTrim = startIdleTrim({ log, registry });
  log.info({ grpcPort: channel.port, webhookPort: webhooks?.port, metricsPort: config.metricsPort, scaledObjects: store.list().length }, 'operator serving');

  let closing: Promise<void> | undefined;
  const shutdown = () =>
    (closing ??= (async () => {
      shuttingDown = true;
      idleTrim.stop();
      await Promise.all([channel.shutdown(config.shutdownGracePeriodMs), webhooks?.close(config.shutdownGracePeriodMs)]);
      await stopMetricsServer(metricsServer);
      await leadership?.stop();
      await Promise.all([controller?.close(), jobs?.close()]);
      engine.close();
      await Promise.all([store.close(), trust.close(), tls.close(), lifecycle?.close(), tokens?.close(), pods?.close()]);
      await kc?.close();
    })());
  return { channel, metricsServer, shutdown };
}

/**
 * With rotation on, the certificates come from the Secret this (or another) replica writes, via
 * the kubelet's volume sync: wait for them rather than fail.
 */
async function waitForFiles(files: readonly string[], log: Logger): Promise<void> {
  let logged = false;
  for (;;) {
    const missing = files.filter((f) => !existsSync(f));
    if (missing.length === 0) return;
    if (!logged) log.info({ missing }, 'waiting for the certificate Secret to be mounted');
    logged = true;
    await new Promise((r) => setTimeout(r, 250));
  }
}
