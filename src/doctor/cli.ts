// `keda-ts doctor [--kubeconfig ...] [--namespace keda] [-o json]`: the checks of checks.ts on the
// cluster the kubeconfig points at, one line each; exit code 1 when any check FAILs.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { boolFlag, durationFlag, enumFlag, formatHelp, parseFlags, stringFlag, UsageError } from '../config/flags.js';
import { KubeClient } from '../k8s/client.js';
import { runChecks, type CheckResult } from './checks.js';

const flags = {
  kubeconfig: stringFlag('kubeconfig', '', 'kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config, then the pod\'s ServiceAccount)', { env: 'KUBECONFIG' }),
  namespace: stringFlag('namespace', 'keda', 'Namespace of the install'),
  output: enumFlag('output', ['text', 'json'] as const, 'text', 'Output format (also -o)'),
  apiserviceName: stringFlag('apiservice-name', 'v1beta1.external.metrics.k8s.io', 'The APIService'),
  metricsServerServiceName: stringFlag('metrics-server-service-name', 'keda-metrics-apiserver', 'The adapter\'s Service'),
  operatorServiceName: stringFlag('operator-service-name', 'keda-operator', 'The operator\'s Service'),
  webhooksServiceName: stringFlag('webhooks-service-name', 'keda-admission-webhooks', 'The admission webhooks\' Service'),
  k8sClusterDomain: stringFlag('k8s-cluster-domain', 'cluster.local', 'Cluster DNS domain'),
  certSecretName: stringFlag('cert-secret-name', 'kedaorg-certs', 'The certificate Secret'),
  validatingWebhookName: stringFlag('validating-webhook-name', 'keda-admission', 'The ValidatingWebhookConfiguration'),
  operatorServiceAccount: stringFlag('operator-service-account', 'keda-operator', 'The operator\'s ServiceAccount'),
  adapterServiceAccount: stringFlag('adapter-service-account', 'keda-metrics-server', 'The adapter\'s ServiceAccount'),
  certRenewBefore: durationFlag('cert-renew-before', 720 * 3_600_000, 'A certificate expiring within this is a warning (the operator\'s --cert-renew-before)'),
  help: boolFlag('help', false, 'Show this help'),
};

const USAGE = 'keda-ts doctor [--kubeconfig FILE] [--namespace keda] [-o json]';

export async function runDoctorCommand(argv: readonly string[]): Promise<number> {
  // kubectl's -o, spelled as our flags are.
  const f = parseFlags(flags, argv.map((a) => (a === '-o' ? '--output' : a.startsWith('-o=') ? `--output=${a.slice(3)}` : a)), process.env);
  if (f.help) {
    process.stdout.write(formatHelp(USAGE, flags));
    return 0;
  }
  const kubeconfig = f.kubeconfig.split(':')[0] || (existsSync(join(homedir(), '.kube', 'config')) ? join(homedir(), '.kube', 'config') : '');
  const client = KubeClient.load(kubeconfig, process.env);
  if (!client) throw new UsageError('no cluster: pass --kubeconfig, set KUBECONFIG, or run in a pod');
  try {
    const results = await runChecks(client, {
      namespace: f.namespace,
      apiServiceName: f.apiserviceName,
      adapterServiceName: f.metricsServerServiceName,
      operatorServiceName: f.operatorServiceName,
      webhooksServiceName: f.webhooksServiceName,
      clusterDomain: f.k8sClusterDomain,
      certSecretName: f.certSecretName,
      webhookConfigurationName: f.validatingWebhookName,
      operatorServiceAccount: f.operatorServiceAccount,
      adapterServiceAccount: f.adapterServiceAccount,
      renewBeforeMs: f.certRenewBefore,
    });
    process.stdout.write(f.output === 'json' ? `${JSON.stringify({ cluster: client.server, results }, null, 2)}\n` : formatResults(results));
    return results.some((r) => r.verdict === 'FAIL') ? 1 : 0;
  } finally {
    await client.close();
  }
}

export function formatResults(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.check.length));
  return results.map((r) => `${r.verdict.padEnd(4)}  ${r.check.padEnd(width)}  ${r.message}${r.fix ? ` — fix: ${r.fix}` : ''}\n`).join('');
}
