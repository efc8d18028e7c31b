// The adapter's flags, and their translation into one validated, typed configuration. Nothing
// inside the adapter reads flags or the environment: it gets an AdapterConfig.
import { join } from 'node:path';
import { UsageError, boolFlag, durationFlag, enumFlag, intFlag, listFlag, parseFlags, stringFlag, type FlagSpecs } from '../config/flags.js';
import { commonFlags, componentConfig, envName, type ComponentConfig } from '../config/common.js';

const env = envName('ADAPTER');

export const adapterFlags = {
  securePort: intFlag('secure-port', 6443, 'Port of the HTTPS API', { env: env('secure-port'), min: 1, max: 65535 }),
  bindAddress: stringFlag('bind-address', '0.0.0.0', 'Address the HTTPS API listens on (0.0.0.0 or ::: every interface, IPv4 and IPv6)', { env: env('bind-address') }),
  certDir: stringFlag('cert-dir', '/certs', 'Folder holding tls.crt, tls.key and ca.crt, watched for changes', { env: env('cert-dir') }),
  tlsCertFile: stringFlag('tls-cert-file', '', 'Serving certificate (default <cert-dir>/tls.crt)', { env: env('tls-cert-file') }),
  tlsPrivateKeyFile: stringFlag('tls-private-key-file', '', 'Serving key (default <cert-dir>/tls.key)', { env: env('tls-private-key-file') }),
  clientCaFile: stringFlag('client-ca-file', '', 'CA bundle for x509 client authentication (user = CN, groups = O)', { env: env('client-ca-file') }),
  clientCertMode: enumFlag('client-cert-mode', ['require', 'request'] as const, 'require', 'require: TLS refuses clients without a verified certificate; request: certificate-less clients may authenticate by bearer token', { env: env('client-cert-mode') }),
  requestheaderClientCaFile: stringFlag('requestheader-client-ca-file', '', 'CA bundle that front-proxy client certificates must chain to', { env: env('requestheader-client-ca-file') }),
  requestheaderAllowedNames: listFlag('requestheader-allowed-names', [], 'Front-proxy client certificate CNs allowed (empty: any CN from the front-proxy CA)', { env: env('requestheader-allowed-names') }),
  requestheaderUsernameHeaders: listFlag('requestheader-username-headers', ['X-Remote-User'], 'Headers carrying the user name, first non-empty wins', { env: env('requestheader-username-headers') }),
  requestheaderGroupHeaders: listFlag('requestheader-group-headers', ['X-Remote-Group'], 'Headers carrying groups, every occurrence counts', { env: env('requestheader-group-headers') }),
  requestheaderExtraHeadersPrefix: listFlag('requestheader-extra-headers-prefix', ['X-Remote-Extra-'], 'Header prefixes carrying user extras', { env: env('requestheader-extra-headers-prefix') }),
  kubeconfig: stringFlag('kubeconfig', '', 'Kubeconfig for talking to the cluster (default: in-cluster when in a pod)', { env: ['KUBECONFIG'] }),
  authenticationKubeconfig: stringFlag('authentication-kubeconfig', '', 'Kubeconfig for TokenReviews and the authentication ConfigMap (default: --kubeconfig / in-cluster)', { env: env('authentication-kubeconfig') }),
  authorizationKubeconfig: stringFlag('authorization-kubeconfig', '', 'Kubeconfig for SubjectAccessReviews (default: --kubeconfig / in-cluster)', { env: env('authorization-kubeconfig') }),
  authenticationSkipLookup: boolFlag('authentication-skip-lookup', false, 'Do not read kube-system/extension-apiserver-authentication; use the CA flags only', { env: env('authentication-skip-lookup') }),
  authenticationTolerateLookupFailure: boolFlag('authentication-tolerate-lookup-failure', false, 'Start even when that ConfigMap cannot be read (clients it would have admitted are refused)', { env: env('authentication-tolerate-lookup-failure') }),
  authenticationTokenWebhookCacheTtl: durationFlag('authentication-token-webhook-cache-ttl', 10_000, 'How long TokenReview answers are cached', { env: env('authentication-token-webhook-cache-ttl') }),
  authorizationWebhookCacheAuthorizedTtl: durationFlag('authorization-webhook-cache-authorized-ttl', 10_000, 'How long allowed SubjectAccessReview answers are cached', { env: env('authorization-webhook-cache-authorized-ttl') }),
  authorizationWebhookCacheUnauthorizedTtl: durationFlag('authorization-webhook-cache-unauthorized-ttl', 10_000, 'How long denied SubjectAccessReview answers are cached', { env: env('authorization-webhook-cache-unauthorized-ttl') }),
  delegatedAuthTimeout: durationFlag('delegated-auth-timeout', 10_000, 'Deadline of one TokenReview or SubjectAccessReview; past it the request is refused', { env: env('delegated-auth-timeout') }),
  authorizationAlwaysAllowGroups: listFlag('authorization-always-allow-groups', ['system:masters'], 'Groups allowed everything without further checks', { env: env('authorization-always-allow-groups') }),
  authorizationAlwaysAllowPaths: listFlag('authorization-always-allow-paths', ['/healthz', '/readyz', '/livez'], 'Paths any authenticated client may GET (a trailing * matches a prefix)', { env: env('authorization-always-allow-paths') }),
  serviceName: stringFlag('service-name', 'keda-metrics-apiserver', 'Service the APIService points at; its DNS name must be in the serving certificate', { env: env('service-name') }),
  serviceNamespace: stringFlag('service-namespace', 'keda', 'Namespace of that Service', { env: ['POD_NAMESPACE', env('service-namespace')] }),
  metricsSource: enumFlag('metrics-source', ['operator', 'demo', 'file'] as const, 'operator', 'Where metric values come from', { env: env('metrics-source') }),
  metricsServiceAddress: stringFlag('metrics-service-address', 'keda-operator.keda.svc.cluster.local:9666', 'The operator\'s gRPC metrics service (host:port); its certificate must cover the host', { env: env('metrics-service-address') }),
  metricsServiceGrpcAuthority: stringFlag(
    'metrics-service-grpc-authority',
    '',
    'The name the operator\'s certificate is checked for (and the HTTP/2 :authority), when --metrics-service-address dials it by another name or an IP (default: the address\'s host)',
    { env: env('metrics-service-grpc-authority') },
  ),
  metricsServiceTimeout: durationFlag('metrics-service-timeout', 5_000, 'Deadline of one metric call to the operator, retries included', { env: env('metrics-service-timeout') }),
  metricsServiceReadinessGrace: durationFlag('metrics-service-readiness-grace', 10_000, 'How long the channel may be down before /readyz fails', { env: env('metrics-service-readiness-grace') }),
  metricsSourceFile: stringFlag('metrics-source-file', '', 'YAML file of metric values for --metrics-source=file, reloaded on change', { env: env('metrics-source-file') }),
  ...commonFlags(env, 'the HTTPS API'),
  help: boolFlag('help', false, 'Show this help'),
} satisfies FlagSpecs;

export interface RequestHeaderConfig {
  caFile: string;
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

export interface DelegationConfig {
  /** Kubeconfig path for authentication; '' means in-cluster when in a pod, else none. */
  authenticationKubeconfig: string;
  authorizationKubeconfig: string;
  lookup: boolean;
  tolerateLookupFailure: boolean;
  tokenCacheTtlMs: number;
  allowedTtlMs: number;
  deniedTtlMs: number;
  timeoutMs: number;
}

export interface AdapterConfig extends ComponentConfig {
  securePort: number;
  bindAddress: string;
  certFile: string;
  keyFile: string;
  clientCaFile: string;
  clientCertMode: 'require' | 'request';
  requestHeader: RequestHeaderConfig;
  alwaysAllowGroups: string[];
  alwaysAllowPaths: string[];
  delegation: DelegationConfig;
  serviceName: string;
  serviceNamespace: string;
  certDir: string;
  metricsSource:
    | { kind: 'demo' }
    | { kind: 'file'; path: string }
    | { kind: 'operator'; address: string; authority: string; caFile: string; timeoutMs: number; readinessGraceMs: number };
}

export function parseAdapterConfig(argv: readonly string[], environment: NodeJS.ProcessEnv): AdapterConfig | 'help' {
  const f = parseFlags(adapterFlags, argv, environment);
  if (f.help) return 'help';
  const common = componentConfig(f);
  const authenticationKubeconfig = f.authenticationKubeconfig || f.kubeconfig;
  const clusterForAuthentication = authenticationKubeconfig !== '' || Boolean(environment.KUBERNETES_SERVICE_HOST);
  const lookup = clusterForAuthentication && !f.authenticationSkipLookup;
  if (f.clientCertMode === 'require' && !f.clientCaFile && !f.requestheaderClientCaFile && !lookup) {
    throw new UsageError(
      '--client-cert-mode=require needs --client-ca-file or --requestheader-client-ca-file (or a cluster to read them from): no client could ever connect',
    );
  }
  if (f.metricsSource === 'file' && !f.metricsSourceFile) {
    throw new UsageError('--metrics-source=file needs --metrics-source-file');
  }
  return {
    ...common,
    securePort: f.securePort,
    bindAddress: f.bindAddress,
    certFile: f.tlsCertFile || join(f.certDir, 'tls.crt'),
    keyFile: f.tlsPrivateKeyFile || join(f.certDir, 'tls.key'),
    clientCaFile: f.clientCaFile,
    clientCertMode: f.clientCertMode,
    requestHeader: {
      caFile: f.requestheaderClientCaFile,
      allowedNames: f.requestheaderAllowedNames,
      usernameHeaders: f.requestheaderUsernameHeaders,
      groupHeaders: f.requestheaderGroupHeaders,
      extraHeaderPrefixes: f.requestheaderExtraHeadersPrefix,
    },
    alwaysAllowGroups: f.authorizationAlwaysAllowGroups,
    delegation: {
      authenticationKubeconfig,
      authorizationKubeconfig: f.authorizationKubeconfig || f.kubeconfig,
      lookup,
      tolerateLookupFailure: f.authenticationTolerateLookupFailure,
      tokenCacheTtlMs: f.authenticationTokenWebhookCacheTtl,
      allowedTtlMs: f.authorizationWebhookCacheAuthorizedTtl,
      deniedTtlMs: f.authorizationWebhookCacheUnauthorizedTtl,
      timeoutMs: f.delegatedAuthTimeout,
    },
    alwaysAllowPaths: f.authorizationAlwaysAllowPaths,
    serviceName: f.serviceName,
    serviceNamespace: f.serviceNamespace,
    certDir: f.certDir,
    metricsSource:
      f.metricsSource === 'file' ? { kind: 'file', path: f.metricsSourceFile }
      : f.metricsSource === 'demo' ? { kind: 'demo' }
      : {
          kind: 'operator',
          address: f.metricsServiceAddress,
          authority: f.metricsServiceGrpcAuthority,
          caFile: join(f.certDir, 'ca.crt'),
          timeoutMs: f.metricsServiceTimeout,
          readinessGraceMs: f.metricsServiceReadinessGrace,
        },
  };
}
