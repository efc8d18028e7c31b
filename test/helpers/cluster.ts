// What tests against the fake kube-apiserver share: a workload to scale, put straight into the
// fake's store, and kubectl apply without client-side validation (the fake serves no OpenAPI).
import type { FakeApiServer } from './fake-apiserver.js';
import { applied, kubectlApply } from './keda-cluster.js';
import type { RunResult } from './tools.js';

/** An apps/v1 Deployment with a scale subresource, straight into the fake's store. */
export function putDeployment(api: FakeApiServer, namespace: string, name: string, replicas = 1): void {
  api.put({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
  });
}

/** `kubectl apply` to the fake, failing with kubectl's message when refused. */
export async function mustApplyToFake(kubeconfig: string, dir: string, ...objs: unknown[]): Promise<RunResult> {
  return applied(await kubectlApply(kubeconfig, dir, objs, ['--validate=false']));
}
