// The operator's flags, turned into one validated configuration at the edge.
import { join } from 'node:path';
import { UsageError, boolFlag, durationFlag, enumFlag, intFlag, listFlag, parseFlags, stringFlag, type FlagSpecs } from '../config/flags.js';
import { validateLifecycleConfig, type LifecycleConfig } from './certificates/plan.js';
import { serviceDnsNames } from '../k8s/service-names.js';
import { commonFlags, componentConfig, envName, type ComponentConfig } from '../config/common.js';
import { parseBindAddress } from '../config/bind-address.js';

const env = envName('OPERATOR');

export const operatorFlags = {
  metricsServiceBindAddress: stringFlag('metrics-service-bind-address', ':9666', 'gRPC metrics service address (KEDA\'s default port)', { env: env('metrics-service-bind-address') }),
  certDir: stringFlag('cert-dir', '/certs', 'Folder holding tls.crt, tls.key and ca.crt, watched for changes', { env: env('cert-dir') }),
  caDir: listFlag('ca-dir', ['/custom/ca'], 'Folders of extra CA certificates trusted for scaler upstreams (repeatable)', { env: env('ca-dir') }),
  scaledObjectsFile: stringFlag('scaled-objects-file', '', 'YAML of keda.sh/v1alpha1 ScaledObjects (and TriggerAuthentications, Secrets) to serve, reloaded on change, instead of watching the cluster (no HPAs are written then)', { env: env('scaled-objects-file') }),
  watchNamespace: stringFlag('watch-namespace', '', 'Only this namespace\'s ScaledObjects and TriggerAuthentications (default: all namespaces)', { env: ['WATCH_NAMESPACE', env('watch-namespace')] }),
  syncPeriod: durationFlag('sync-period', 300_000, 'Every ScaledObject is reconciled again this often, even without a change', { env: env('sync-period') }),
  webhookPort: intFlag('webhook-port', 9443, 'Port of the validating admission webhook, TLS 1.3 with the operator certificate (0: off)', { env: env('webhook-port'), min: 0, max: 65535 }),
  enableServiceAccountTokenRequests: boolFlag('enable-service-account-token-requests', false, 'Let TriggerAuthentications use boundServiceAccountToken: the operator requests tokens (TokenRequest) for service accounts of the ScaledObject\'s namespace. Needs RBAC: deploy/components/service-account-tokens', { env: env('enable-service-account-token-requests') }),
  serviceAccountTokenAudience: listFlag('service-account-token-audience', [], 'Default audiences of requested tokens, e.g. api://AzureADTokenExchange (default: the API server\'s)', { env: env('service-account-token-audience') }),
  serviceAccountTokenExpiration: durationFlag('service-account-token-expiration', 3_600_000, 'Requested lifetime of service-account tokens (at least 10m); renewed at 80%', { env: env('service-account-token-expiration') }),
  enableCertRotation: boolFlag('enable-cert-rotation', true, 'Generate and rotate the certificates in the cert Secret (needs a cluster)', { env: env('enable-cert-rotation') }),
  kubeconfig: stringFlag('kubeconfig', '', 'Kubeconfig for the cluster (default: in-cluster when in a pod)', { env: ['KUBECONFIG'] }),
  namespace: stringFlag('namespace', 'keda', 'The operator\'s namespace', { env: ['POD_NAMESPACE', env('namespace')] }),
  certSecretName: stringFlag('cert-secret-name', 'kedaorg-certs', 'Secret holding ca.crt, ca.key, tls.crt, tls.key (KEDA\'s name)', { env: env('cert-secret-name') }),
  operatorServiceName: stringFlag('operator-service-name', 'keda-operator', 'Service of the operator, covered by the certificate', { env: env('operator-service-name') }),
  metricsServerServiceName: stringFlag('metrics-server-service-name', 'keda-metrics-apiserver', 'Service of the adapter, covered by the certificate', { env: env('metrics-server-service-name') }),
  webhooksServiceName: stringFlag('webhooks-service-name', 'keda-admission-webhooks', 'Service of the admission webhook, covered by the certificate', { env: env('webhooks-service-name') }),
  k8sClusterDomain: stringFlag('k8s-cluster-domain', 'cluster.local', 'Cluster DNS domain for the <svc>.<ns>.svc.<domain> names', { env: env('k8s-cluster-domain') }),
  extraSan: listFlag('extra-san', [], 'More DNS names for the certificate (repeatable)', { env: env('extra-san') }),
  certKeyAlgorithm: enumFlag('cert-key-algorithm', ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'ed25519'] as const, 'ecdsa-p256', 'Key algorithm of the generated CA and certificate', { env: env('cert-key-algorithm') }),
  caValidity: durationFlag('ca-validity', 87_600 * 3_600_000, 'Validity of a generated CA', { env: env('ca-validity') }),
  certValidity: durationFlag('cert-validity', 8_760 * 3_600_000, 'Validity of a generated certificate', { env: env('cert-validity') }),
  certRenewBefore: durationFlag('cert-renew-before', 720 * 3_600_000, 'Renew the certificate when less than this is left', { env: env('cert-renew-before') }),
  caRolloverOverlap: durationFlag('ca-rollover-overlap', 300_000, 'How long a new CA is published before certificates move to it, and the old CA stays after (kubelet volume sync takes up to a minute or two)', { env: env('ca-rollover-overlap') }),
  enableApiservicePatching: boolFlag('enable-apiservice-patching', true, 'Keep the APIService caBundle equal to our CA bundle', { env: env('enable-apiservice-patching') }),
  apiserviceName: stringFlag('apiservice-name', 'v1beta1.external.metrics.k8s.io', 'The APIService to patch', { env: env('apiservice-name') }),
  enableWebhookPatching: boolFlag('enable-webhook-patching', true, 'Keep every webhook\'s caBundle in the ValidatingWebhookConfiguration equal to our CA bundle', { env: env('enable-webhook-patching') }),
  validatingWebhookName: stringFlag('validating-webhook-name', 'keda-admission', 'The ValidatingWebhookConfiguration to patch', { env: env('validating-webhook-name') }),
  leaderElect: boolFlag('leader-elect', true, 'Elect one writer among replicas through a Lease', { env: env('leader-elect') }),
  leaderElectionId: stringFlag('leader-election-id', 'keda-ts-operator', 'Name of the Lease', { env: env('leader-election-id') }),
  leaderElectionLeaseDuration: durationFlag('leader-election-lease-duration', 15_000, 'How long a lease holds without renewal', { env: env('leader-election-lease-duration') }),
  leaderElectionRenewDeadline: durationFlag('leader-election-renew-deadline', 10_000, 'The leader gives up if it cannot renew within this', { env: env('leader-election-renew-deadline') }),
  leaderElectionRetryPeriod: durationFlag('leader-election-retry-period', 2_000, 'How often to try to acquire or renew', { env: env('leader-election-retry-period') }),
  maxConnectionAge: durationFlag('metrics-service-max-connection-age', 300_000, 'Connections are recycled after this age, so rotated certificates reach every connection', { env: env('metrics-service-max-connection-age') }),
  maxConnectionAgeGrace: durationFlag('metrics-service-max-connection-age-grace', 30_000, 'Time calls on a recycled connection get to finish', { env: env('metrics-service-max-connection-age-grace') }),
  scalerTimeout: durationFlag('scaler-timeout', 3_000, 'Timeout of one call to a scaler upstream (KEDA\'s HTTP default)', { env: env('scaler-timeout') }),
  ...commonFlags(env, 'the metrics service'),
  help: boolFlag('help', false, 'Show this help'),
} satisfies FlagSpecs;

export interface CertificateLifecycleConfig {
  secretName: string;
  lifecycle: LifecycleConfig;
  apiService: string | undefined;
  validatingWebhook: string | undefined;
}

export interface LeaderElectionConfig {
  enabled: boolean;
  name: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface OperatorConfig extends ComponentConfig {
  certificates: CertificateLifecycleConfig;
  leaderElection: LeaderElectionConfig;
  metricsServiceBindAddress: string;
  /** '' for all namespaces. */
  watchNamespace: string;
  syncPeriodMs: number;
  /** 0: no webhook. */
  webhookPort: number;
  /** Absent: the feature is off. */
  serviceAccountTokens: { audiences: string[]; expirationSeconds: number } | undefined;
  certFile: string;
  keyFile: string;
  caFile: string;
  caDirs: string[];
  scaledObjectsFile: string;
  enableCertRotation: boolean;
  kubeconfig: string;
  namespace: string;
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
  scalerTimeoutMs: number;
}

export function parseOperatorConfig(argv: readonly string[], environment: NodeJS.ProcessEnv): OperatorConfig | 'help' {
  const f = parseFlags(operatorFlags, argv, environment);
  if (f.help) return 'help';
  const common = componentConfig(f);
  try {
    parseBindAddress(f.metricsServiceBindAddress, '--metrics-service-bind-address');
  } catch {
    throw new UsageError(`--metrics-service-bind-address=${f.metricsServiceBindAddress}: expected host:port or :port`);
  }
  if (f.serviceAccountTokenExpiration < 600_000) throw new UsageError('--service-account-token-expiration must be at least 10m (the API server\'s minimum)');
  if (f.syncPeriod < 1000) throw new UsageError('--sync-period must be at least 1s');
  if (f.leaderElectionRenewDeadline >= f.leaderElectionLeaseDuration) throw new UsageError('--leader-election-renew-deadline must be shorter than --leader-election-lease-duration');
  const lifecycle: LifecycleConfig = {
    dnsNames: [...new Set([...[f.operatorServiceName, f.metricsServerServiceName, f.webhooksServiceName].flatMap((svc) => serviceDnsNames(svc, f.namespace, f.k8sClusterDomain)), ...f.extraSan])],
    keyAlgorithm: f.certKeyAlgorithm,
    caValidityMs: f.caValidity,
    certValidityMs: f.certValidity,
    renewBeforeMs: f.certRenewBefore,
    overlapMs: f.caRolloverOverlap,
  };
  try {
    validateLifecycleConfig(lifecycle);
  } catch (err) {
    throw new UsageError(`certificate flags: ${(err as Error).message}`);
  }
  return {
    ...common,
    certificates: {
      secretName: f.certSecretName,
      lifecycle,
      apiService: f.enableApiservicePatching ? f.apiserviceName : undefined,
      validatingWebhook: f.enableWebhookPatching ? f.validatingWebhookName : undefined,
    },
    leaderElection: {
      enabled: f.leaderElect,
      name: f.leaderElectionId,
      leaseDurationMs: f.leaderElectionLeaseDuration,
      renewDeadlineMs: f.leaderElectionRenewDeadline,
      retryPeriodMs: f.leaderElectionRetryPeriod,
    },
    watchNamespace: f.watchNamespace,
    syncPeriodMs: f.syncPeriod,
    webhookPort: f.webhookPort,
    serviceAccountTokens: f.enableServiceAccountTokenRequests ? { audiences: f.serviceAccountTokenAudience, expirationSeconds: Math.round(f.serviceAccountTokenExpiration / 1000) } : undefined,
    metricsServiceBindAddress: f.metricsServiceBindAddress,
    certFile: join(f.certDir, 'tls.crt'),
    keyFile: join(f.certDir, 'tls.key'),
    caFile: join(f.certDir, 'ca.crt'),
    caDirs: f.caDir,
    scaledObjectsFile: f.scaledObjectsFile,
    enableCertRotation: f.enableCertRotation,
    kubeconfig: f.kubeconfig,
    namespace: f.namespace,
    maxConnectionAgeMs: f.maxConnectionAge,
    maxConnectionAgeGraceMs: f.maxConnectionAgeGrace,
    scalerTimeoutMs: f.scalerTimeout,
  };
}
