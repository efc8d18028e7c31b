// The operator's flags, turned into one validated configuration at the edge.
import { join } from 'node:path';
import { UsageError, boolFlag, durationFlag, listFlag, parseFlags, stringFlag, type FlagSpecs } from '../config/flags.js';
import type { TlsPolicy } from '../tls/policy.js';
import { commonFlags, envName, tlsPolicyFromFlags, type LogLevel } from '../config/common.js';

const env = envName('OPERATOR');

export const operatorFlags = {
  metricsServiceBindAddress: stringFlag('metrics-service-bind-address', ':9666', 'gRPC metrics service address (KEDA\'s default port)', { env: env('metrics-service-bind-address') }),
  certDir: stringFlag('cert-dir', '/certs', 'Folder holding tls.crt, tls.key and ca.crt, watched for changes', { env: env('cert-dir') }),
  caDir: listFlag('ca-dir', ['/custom/ca'], 'Folders of extra CA certificates trusted for scaler upstreams (repeatable)', { env: env('ca-dir') }),
  scaledObjectsFile: stringFlag('scaled-objects-file', '', 'YAML of keda.sh/v1alpha1 ScaledObjects (and TriggerAuthentications, Secrets) to serve, reloaded on change', { env: env('scaled-objects-file') }),
  enableCertRotation: boolFlag('enable-cert-rotation', true, 'Generate and rotate the certificates in the cert Secret (needs a cluster)', { env: env('enable-cert-rotation') }),
  kubeconfig: stringFlag('kubeconfig', '', 'Kubeconfig for the cluster (default: in-cluster when in a pod)', { env: ['KUBECONFIG'] }),
  namespace: stringFlag('namespace', 'keda', 'The operator\'s namespace', { env: ['POD_NAMESPACE', env('namespace')] }),
  maxConnectionAge: durationFlag('metrics-service-max-connection-age', 300_000, 'Connections are recycled after this age, so rotated certificates reach every connection', { env: env('metrics-service-max-connection-age') }),
  maxConnectionAgeGrace: durationFlag('metrics-service-max-connection-age-grace', 30_000, 'Time calls on a recycled connection get to finish', { env: env('metrics-service-max-connection-age-grace') }),
  scalerTimeout: durationFlag('scaler-timeout', 3_000, 'Timeout of one call to a scaler upstream (KEDA\'s HTTP default)', { env: env('scaler-timeout') }),
  ...commonFlags(env, 'the metrics service'),
  help: boolFlag('help', false, 'Show this help'),
} satisfies FlagSpecs;

export interface OperatorConfig {
  metricsServiceBindAddress: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  caDirs: string[];
  scaledObjectsFile: string;
  enableCertRotation: boolean;
  kubeconfig: string;
  namespace: string;
  tls: TlsPolicy;
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
  scalerTimeoutMs: number;
  shutdownGracePeriodMs: number;
  metricsPort: number;
  metricsBindAddress: string;
  logLevel: LogLevel;
}

export function parseOperatorConfig(argv: readonly string[], environment: NodeJS.ProcessEnv): OperatorConfig | 'help' {
  const f = parseFlags(operatorFlags, argv, environment);
  if (f.help) return 'help';
  const tls = tlsPolicyFromFlags(f.tlsMinVersion, f.tlsCipherSuites);
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:]*):\d{1,5}$/.test(f.metricsServiceBindAddress)) {
    throw new UsageError(`--metrics-service-bind-address=${f.metricsServiceBindAddress}: expected host:port or :port`);
  }
  return {
    metricsServiceBindAddress: f.metricsServiceBindAddress,
    certFile: join(f.certDir, 'tls.crt'),
    keyFile: join(f.certDir, 'tls.key'),
    caFile: join(f.certDir, 'ca.crt'),
    caDirs: f.caDir,
    scaledObjectsFile: f.scaledObjectsFile,
    enableCertRotation: f.enableCertRotation,
    kubeconfig: f.kubeconfig,
    namespace: f.namespace,
    metricsPort: f.metricsPort,
    metricsBindAddress: f.metricsBindAddress,
    tls,
    maxConnectionAgeMs: f.maxConnectionAge,
    maxConnectionAgeGraceMs: f.maxConnectionAgeGrace,
    scalerTimeoutMs: f.scalerTimeout,
    shutdownGracePeriodMs: f.shutdownGracePeriod,
    logLevel: f.logLevel,
  };
}
