// Our install on a real control plane (see envtest.ts): deploy/ rendered by kustomize and applied
// with kubectl as a user would, the components run in-process as their own ServiceAccounts (so
// deploy/'s RBAC is what they get), and the Services kube-apiserver dials (the APIService's and the
// webhooks') turned into ExternalName `localhost` Services on the local servers' ports.
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { startTestAdapter, type TestAdapter } from './adapter.js';
import type { ControlPlane } from './envtest.js';
import { startTestOperator, type TestOperator } from './operator.js';
import type { Kube, Obj } from './kube.js';
import { eventually } from './loop.js';
import { repoRoot } from './repo.js';
import { kubectl, type RunResult } from './tools.js';

const DEPLOY = join(repoRoot(), 'deploy');

/** `kubectl kustomize` of a folder under deploy/ (e.g. `overlays/rotation`), as objects. */
export async function renderDeploy(path = 'overlays/rotation'): Promise<Obj[]> {
  const r = await kubectl(['kustomize', join(DEPLOY, path)]);
  if (r.code !== 0) throw new Error(`kubectl kustomize deploy/${path}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj).filter((o) => o);
}

/** `kubectl apply -f` of objects (or YAML text) written to a file in `dir`. */
export async function kubectlApply(kubeconfig: string, dir: string, objs: unknown, extraArgs: string[] = []): Promise<RunResult> {
  const path = join(dir, `apply-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(path, typeof objs === 'string' ? objs : (Array.isArray(objs) ? objs : [objs]).map((o) => stringify(o)).join('---\n'));
  return kubectl([`--kubeconfig=${kubeconfig}`, 'apply', ...extraArgs, '-f', path]);
}

/** kubectlApply, failing with kubectl's message when refused. */
export async function mustApply(kubeconfig: string, dir: string, ...objs: unknown[]): Promise<RunResult> {
  return applied(await kubectlApply(kubeconfig, dir, objs));
}

/** The result of a kubectl apply, or kubectl's message as an error. */
export function applied(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`kubectl apply failed: ${r.stderr}`);
  return r;
}

export type Part = 'crds' | 'rbac' | 'apiservice' | 'webhook' | 'workloads';

const PARTS: Record<Part, (o: Obj) => boolean> = {
  crds: (o) => o.kind === 'CustomResourceDefinition' || o.kind === 'Namespace',
  rbac: (o) => ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind ?? ''),
  apiservice: (o) => o.kind === 'APIService',
  webhook: (o) => o.kind === 'ValidatingWebhookConfiguration',
  workloads: (o) => ['Deployment', 'Service', 'PodDisruptionBudget'].includes(o.kind ?? ''),
};

/**
 * Applies the parts of deploy/overlays/rotation asked for (CRDs and RBAC by default), waits for
 * the CRDs to be served, and returns what was applied.
 */
export async function installDeploy(cp: ControlPlane, dir: string, parts: Part[] = ['crds', 'rbac']): Promise<Obj[]> {
  const objs = (await renderDeploy()).filter((o) => parts.some((p) => PARTS[p](o)));
  // Namespaces and CRDs first, as kubectl apply -k would need two passes otherwise.
  const first = objs.filter((o) => o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition');
  if (first.length > 0) await mustApply(cp.adminKubeconfig, dir, ...first);
  const crds = first.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata!.name!);
  if (crds.length > 0) {
    const r = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, 'wait', '--for=condition=Established', '--timeout=30s', ...crds.map((n) => `crd/${n}`)]);
    if (r.code !== 0) throw new Error(`CRDs not established: ${r.stderr}`);
  }
  const rest = objs.filter((o) => !first.includes(o));
  if (rest.length > 0) await mustApply(cp.adminKubeconfig, dir, ...rest);
  return objs;
}

/**
 * Routes Service `namespace/name` to a server on this machine: an ExternalName `localhost`
 * Service. kube-apiserver (with --enable-aggregator-routing=false) dials `localhost:<port>`, the
 * port being the one the APIService or webhook names; verifies `<name>.<namespace>.svc`.
 */
export async function routeToLocal(kube: Kube, namespace: string, name: string, port: number): Promise<void> {
  await kube.delete('v1', 'Service', namespace, name);
  await kube.create({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { type: 'ExternalName', externalName: 'localhost', ports: [{ name: 'https', port, protocol: 'TCP' }] },
  });
}

/** Points the APIService at the local adapter's port (its caBundle is the operator's to inject). */
export async function routeApiServiceToLocal(kube: Kube, port: number, namespace = 'keda', service = 'keda-metrics-apiserver'): Promise<void> {
  await routeToLocal(kube, namespace, service, port);
  await kube.mergePatch('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io', { spec: { service: { namespace, name: service, port } } });
}

/** Points every webhook of keda-admission at the local webhook port. */
export async function routeWebhooksToLocal(kube: Kube, port: number, namespace = 'keda', service = 'keda-admission-webhooks'): Promise<void> {
  await routeToLocal(kube, namespace, service, port);
  const vwc = await kube.get('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission');
  if (!vwc) throw new Error('no ValidatingWebhookConfiguration keda-admission');
  const webhooks = (vwc.webhooks as { clientConfig: { service: { port?: number } } }[]).map((w) => ({ ...w, clientConfig: { ...w.clientConfig, service: { ...w.clientConfig.service, port } } }));
  await kube.mergePatch('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, 'keda-admission', { webhooks });
}

/** kubeconfigs of the two components' ServiceAccounts (TokenRequest tokens), so deploy/'s RBAC is what they get. */
export async function componentKubeconfigs(cp: ControlPlane): Promise<{ operator: string; adapter: string }> {
  return { operator: await cp.serviceAccountKubeconfig('keda', 'keda-operator'), adapter: await cp.serviceAccountKubeconfig('keda', 'keda-metrics-server') };
}

/**
 * The RBAC of deploy/components/service-account-tokens (rendered with kubectl kustomize): its
 * ClusterRole (create on serviceaccounts/token, by name) with the example `resourceNames`
 * replaced by `serviceAccounts`, and its RoleBinding (to keda/keda-operator) once per namespace in
 * `namespaces` instead of the example team-a and team-b. Nothing else is changed.
 */
export async function tokenCreatorRbac(serviceAccounts: string[], namespaces: string[]): Promise<Obj[]> {
  const objs = await renderDeploy('components/service-account-tokens');
  const roles = objs.filter((o) => o.kind === 'ClusterRole');
  const binding = objs.find((o) => o.kind === 'RoleBinding');
  const rules = roles[0]?.rules as { resources: string[]; resourceNames?: string[] }[] | undefined;
  if (roles.length !== 1 || !binding || rules?.length !== 1 || rules[0]!.resources.join() !== 'serviceaccounts/token') {
    throw new Error('deploy/components/service-account-tokens: expected one ClusterRole with one serviceaccounts/token rule and a RoleBinding');
  }
  const role: Obj = { ...roles[0]!, rules: [{ ...rules[0]!, resourceNames: serviceAccounts }] };
  return [role, ...namespaces.map((ns): Obj => ({ ...binding, metadata: { ...binding.metadata, namespace: ns } }))];
}

/**
 * The adapter as kube-apiserver's aggregator reaches it: run as ServiceAccount keda/keda-metrics-server
 * (delegated authentication and authorization, the front-proxy settings from the cluster's
 * ConfigMap), reading the operator at `operatorPort`, the APIService routed to it; resolves once
 * the aggregator finds the APIService Available (its caBundle is the operator's to inject).
 */
export async function startAggregatedAdapter(kube: Kube, o: { certDir: string; operatorPort: number; adapterKubeconfig: string }): Promise<{ adapter: TestAdapter; apiService: Obj }> {
  const adapter = await startTestAdapter([
    `--cert-dir=${o.certDir}`,
    `--authentication-kubeconfig=${o.adapterKubeconfig}`,
    `--authorization-kubeconfig=${o.adapterKubeconfig}`,
    '--metrics-source=operator',
    `--metrics-service-address=localhost:${o.operatorPort}`,
  ]);
  try {
    await routeApiServiceToLocal(kube, adapter.port);
    const apiService = await eventually(
      'the APIService Available through the aggregator',
      async () => {
        const a = await kube.get('apiregistration.k8s.io/v1', 'APIService', undefined, 'v1beta1.external.metrics.k8s.io');
        return (a?.status?.conditions as { type: string; status: string }[] | undefined)?.some((c) => c.type === 'Available' && c.status === 'True') ? a : undefined;
      },
      30_000,
    );
    return { adapter, apiService };
  } catch (err) {
    await adapter.shutdown();
    throw err;
  }
}

/**
 * The operator as most cluster tests run it: its ServiceAccount's kubeconfig, certificates from
 * `certDir` (no rotation), no leader election, no webhook; the APIService's caBundle patched only
 * when an adapter is registered behind it. Stopped with the test.
 */
export async function startClusterOperator(t: { teardown(fn: () => unknown): void }, cp: ControlPlane, certDir: string, o: { apiServicePatching?: boolean } = {}): Promise<TestOperator> {
  const operator = await startTestOperator([
    `--kubeconfig=${(await componentKubeconfigs(cp)).operator}`,
    '--namespace=keda',
    `--cert-dir=${certDir}`,
    '--enable-cert-rotation=false',
    `--enable-apiservice-patching=${o.apiServicePatching === true}`,
    '--enable-webhook-patching=false',
    '--leader-elect=false',
    '--webhook-port=0',
  ]);
  t.teardown(() => operator.shutdown());
  return operator;
}

/**
 * Our two components against the control plane, as a cluster runs them: the operator (patching
 * the APIService's caBundle) and the aggregated adapter registered behind the APIService. Both
 * stopped with the test.
 */
export async function startOperatorAndAdapter(t: { teardown(fn: () => unknown): void }, cp: ControlPlane, kube: Kube, certDir: string): Promise<{ operator: TestOperator; adapter: TestAdapter }> {
  const operator = await startClusterOperator(t, cp, certDir, { apiServicePatching: true });
  const { adapter } = await startAggregatedAdapter(kube, { certDir, operatorPort: operator.grpcPort, adapterKubeconfig: (await componentKubeconfigs(cp)).adapter });
  t.teardown(() => adapter.shutdown());
  return { operator, adapter };
}

/** An external metric read through kube-apiserver's aggregator, as the HPA controller reads it: the first item's value, or the failure. */
export async function externalMetric(cp: ControlPlane, namespace: string, metric: string, scaledObject: string): Promise<{ code: number | null; value?: string; stderr: string }> {
  const path = `/apis/external.metrics.k8s.io/v1beta1/namespaces/${namespace}/${metric}?labelSelector=${encodeURIComponent(`scaledobject.keda.sh/name=${scaledObject}`)}`;
  const r = await kubectl([`--kubeconfig=${cp.adminKubeconfig}`, 'get', '--raw', path]);
  return { code: r.code, stderr: r.stderr, ...(r.code === 0 ? { value: (JSON.parse(r.stdout) as { items: { value: string }[] }).items[0]?.value } : {}) };
}

/** A plain HTTP upstream answering JSON from `respond(path)` (a status other than 200 with it, if given); closed with the test. Resolves to its base URL. */
export async function jsonUpstream(t: { teardown(fn: () => unknown): void }, respond: (path: string) => { status?: number; body: unknown }): Promise<string> {
  const server = createServer((req, res) => {
    const { status = 200, body } = respond(req.url ?? '');
    res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
