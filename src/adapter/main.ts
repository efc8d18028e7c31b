// Starts the adapter process from a validated configuration and runs it until SIGTERM.
import type { Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { HealthChecks } from '../observability/health.js';
import { createLogger } from '../observability/logger.js';
import { startMetricsServer, stopMetricsServer } from '../observability/metrics-server.js';
import { startIdleTrim } from '../observability/idle-trim.js';
import { CertificateMetrics, GrpcMetrics, MirrorMetrics, createRegistry } from '../observability/metrics.js';
import type { Registry } from 'prom-client';
import { LiveTls } from '../tls/live-tls.js';
import { warnOnUncoveredNames } from '../tls/san-check.js';
import { dialedServiceNames } from '../k8s/service-names.js';
import { authenticatorChain, certificateAuthenticator, type TrustSource } from './auth/authenticate.js';
import { setUpDelegation } from './auth/delegation.js';
import { alwaysAllowGroups, alwaysAllowPaths, authorizerChain } from './auth/authorize.js';
import type { AdapterConfig } from './config.js';
import { listenHost } from '../config/bind-address.js';
import type { ExternalMetricsProvider } from './provider.js';
import { buildAdapterServer } from './server.js';
import { DemoSource } from './sources/demo.js';

export interface RunningAdapter {
  app: FastifyInstance;
  metricsServer: Server | undefined;
  tls: LiveTls;
  /** Stops accepting, lets in-flight requests finish (bounded by the grace period), releases everything. */
  shutdown(): Promise<void>;
}

export async function startAdapter(
  config: AdapterConfig,
  log: Logger = createLogger(config.logLevel, 'adapter'),
  /** A source built by the caller instead of the one the configuration names. */
  providerOverride?: ExternalMetricsProvider,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunningAdapter> {
  const registry = createRegistry('adapter');
  const certMetrics = new CertificateMetrics(registry);
  const delegation = setUpDelegation(config, log, registry, certMetrics, env);
  await delegation.start();
  const tls = new LiveTls(
    {
      certFile: config.certFile,
      keyFile: config.keyFile,
      caFiles: {
        'client-ca': config.clientCaFile,
        'requestheader-client-ca': config.requestHeader.caFile,
        ...(config.metricsSource.kind === 'operator' ? { [CHANNEL_TRUST]: config.metricsSource.caFile } : {}),
      },
      caSources: delegation.caSources,
    },
    config.tls,
    log,
    certMetrics,
  );
  await tls.start();
  warnOnUncoveredNames(
    tls,
    dialedServiceNames(config.serviceName, config.serviceNamespace),
    log,
    'kube-apiserver dials the Service by that name and the APIService will turn FailedDiscoveryCheck',
  );

  const provider = providerOverride ?? (await createProvider(config, tls, registry, log));
  const trust: TrustSource = {
    get generation() {
      return tls.generation;
    },
    anchors: (name) => tls.bundle(name)?.certs ?? [],
  };

  let shuttingDown = false;
  const health = new HealthChecks();
  health.add('ping', ['livez', 'readyz'], () => ({ ok: true }));
  health.add('serving-certificate', ['readyz'], () => {
    const notAfter = Date.parse(tls.keyPair.current.chain[0]!.validTo);
    return notAfter > Date.now() ? { ok: true } : { ok: false, reason: `serving certificate expired at ${new Date(notAfter).toISOString()}` };
  });
  health.add('metrics-source', ['readyz'], () => {
    const r = provider.readiness();
    return r.ready ? { ok: true } : { ok: false, reason: `${provider.name}: ${r.reason ?? 'not ready'}` };
  });
  health.add('shutdown', ['readyz'], () => (shuttingDown ? { ok: false, reason: 'process is shutting down' } : { ok: true }));

  const app = await buildAdapterServer({
    clientCertMode: config.clientCertMode,
    tls,
    provider,
    authenticator: authenticatorChain([certificateAuthenticator(trust, delegation.requestHeader), delegation.tokenAuthenticator]),
    authorizer: authorizerChain([alwaysAllowGroups(config.alwaysAllowGroups), alwaysAllowPaths(config.alwaysAllowPaths), ...delegation.authorizers]),
    registry,
    health,
    log,
  });
  await app.listen({ port: config.securePort, host: listenHost(config.bindAddress) });
  const metricsServer = config.metricsPort > 0 ? await startMetricsServer(config.metricsPort, config.metricsBindAddress, registry, health) : undefined;
  const idleTrim = startIdleTrim({ log, registry });
  log.info({ securePort: config.securePort, metricsPort: config.metricsPort, source: provider.name }, 'adapter serving');

  let closing: Promise<void> | undefined;
  const shutdown = () =>
    (closing ??= (async () => {
      shuttingDown = true;
      idleTrim.stop();
      const force = setTimeout(() => app.server.closeAllConnections(), config.shutdownGracePeriodMs);
      force.unref();
      await app.close();
      clearTimeout(force);
      await stopMetricsServer(metricsServer);
      await Promise.all([provider.close(), tls.close(), delegation.close()]);
    })());
  return { app, metricsServer, tls, shutdown };
}

/** The cert dir's ca.crt: what the operator's certificate must chain to. */
const CHANNEL_TRUST = 'channel-ca';

async function createProvider(config: AdapterConfig, tls: LiveTls, registry: Registry, log: Logger): Promise<ExternalMetricsProvider> {
  const source = config.metricsSource;
  if (source.kind === 'operator') {
    // gRPC is loaded by the adapters that use it, not by those on the file or demo source.
    const [{ ChannelClient }, { MirrorReplica }, { OperatorSource }] = await Promise.all([import('../channel/client.js'), import('../channel/mirror-replica.js'), import('./sources/operator.js')]);
    const channel = new ChannelClient({
      address: source.address,
      ...(source.authority ? { authority: source.authority } : {}),
      tls,
      trust: [CHANNEL_TRUST],
      timeoutMs: source.timeoutMs,
      readinessGraceMs: source.readinessGraceMs,
      metrics: new GrpcMetrics(registry, 'client'),
      log,
    });
    const mirror = new MirrorReplica({ open: () => channel.watchMirror(), log, metrics: new MirrorMetrics(registry) });
    mirror.start();
    return new OperatorSource(channel, mirror);
  }
  if (config.metricsSource.kind === 'file') {
    // Like gRPC above: YAML is loaded only by the adapters that read a file.
    const { FileSource } = await import('./sources/file.js');
    const source = new FileSource(config.metricsSource.path, log);
    await source.start();
    return source;
  }
  return new DemoSource();
}
