// Everything the adapter asks the cluster about its callers, assembled from the configuration:
// trust and front-proxy settings from the authentication ConfigMap (where flags leave them
// open), TokenReview for bearer tokens, SubjectAccessReview for authorization. Without a cluster
// none of it exists and the flags alone decide, as before.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { loadKubeClient } from '../../k8s/kubeconfig.js';
import { DelegatedAuthMetrics, KubeClientMetrics, type CertificateMetrics } from '../../observability/metrics.js';
import type { BundleSource } from '../../tls/live-tls.js';
import { MemoryBundle } from '../../tls/memory-bundle.js';
import type { AdapterConfig } from '../config.js';
import { bearerTokenNotConfigured, requestHeaderRuntime, type Authenticator, type RequestHeaderRuntime } from './authenticate.js';
import type { Authorizer } from './authorize.js';
import { AUTH_CONFIGMAP_NAME, AUTH_CONFIGMAP_NAMESPACE, ClusterAuthenticationWatch, LookupForbiddenError } from './delegated-config.js';
import { subjectAccessReviewAuthorizer } from './subject-access-review.js';
import { tokenReviewAuthenticator } from './token-review.js';

export interface Delegation {
  /** Trust bundles that come from the cluster instead of files, by LiveTls bundle name. */
  caSources: Record<string, BundleSource>;
  requestHeader: () => RequestHeaderRuntime;
  tokenAuthenticator: Authenticator;
  authorizers: Authorizer[];
  start(): Promise<void>;
  close(): Promise<void>;
}

export function setUpDelegation(config: AdapterConfig, log: Logger, registry: Registry, certMetrics: CertificateMetrics, env: NodeJS.ProcessEnv): Delegation {
  const d = config.delegation;
  const metrics = new DelegatedAuthMetrics(registry);
  let requestHeader = requestHeaderRuntime(config.requestHeader);
  const authnKc = loadKubeClient(d.authenticationKubeconfig, env);
  // One connection pool when both are the same cluster credentials.
  const authzKc = d.authorizationKubeconfig === d.authenticationKubeconfig ? authnKc : loadKubeClient(d.authorizationKubeconfig, env);
  const clientMetrics = new KubeClientMetrics(registry);
  for (const kc of new Set([authnKc, authzKc])) if (kc) clientMetrics.observe(kc);
  const origin = (key: string) => `configmap ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME} ${key}`;

  // A CA file on the command line wins over the ConfigMap for its part, as in Kubernetes.
  const caSources: Record<string, BundleSource> = {};
  const clientCa = d.lookup && !config.clientCaFile ? new MemoryBundle(origin('client-ca-file'), log, (e) => certMetrics.failed(e)) : undefined;
  const frontProxyCa = d.lookup && !config.requestHeader.caFile ? new MemoryBundle(origin('requestheader-client-ca-file'), log, (e) => certMetrics.failed(e)) : undefined;
  if (clientCa) caSources['client-ca'] = clientCa;
  if (frontProxyCa) caSources['requestheader-client-ca'] = frontProxyCa;

  const watch =
    authnKc && d.lookup
      ? new ClusterAuthenticationWatch(authnKc, log, (auth) => {
          clientCa?.set(auth.clientCaPem);
          if (frontProxyCa) {
            frontProxyCa.set(auth.requestHeader.caPem);
            requestHeader = requestHeaderRuntime(auth.requestHeader);
          }
        })
      : undefined;

  return {
    caSources,
    requestHeader: () => requestHeader,
    tokenAuthenticator: authnKc
      ? tokenReviewAuthenticator(authnKc, { cacheTtlMs: d.tokenCacheTtlMs, timeoutMs: d.timeoutMs }, metrics, log)
      : bearerTokenNotConfigured,
    authorizers: authzKc
      ? [subjectAccessReviewAuthorizer(authzKc, { allowedTtlMs: d.allowedTtlMs, deniedTtlMs: d.deniedTtlMs, timeoutMs: d.timeoutMs }, metrics, log)]
      : [],
    async start() {
      if (!authnKc) log.info('no cluster for authentication: client CAs from flags only, bearer tokens refused');
      if (!authzKc) log.info('no cluster for authorization: only --authorization-always-allow-groups/paths are allowed');
      if (!watch) return;
      try {
        await watch.start();
      } catch (err) {
        if (!d.tolerateLookupFailure) throw err;
        log.error({ reason: (err as Error).message }, err instanceof LookupForbiddenError ? (err as Error).message : 'authentication ConfigMap lookup failed; continuing as --authentication-tolerate-lookup-failure asks');
      }
      if (clientCa?.current.certs.length === 0 && frontProxyCa?.current.certs.length === 0 && config.clientCertMode === 'require') {
        log.error(`${AUTH_CONFIGMAP_NAME} provides no client CA and no front-proxy CA: with --client-cert-mode=require no client can connect`);
      }
    },
    async close() {
      await watch?.close();
      await Promise.all([authnKc?.close(), authzKc?.close()]);
    },
  };
}
