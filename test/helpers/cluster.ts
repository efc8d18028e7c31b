// What tests of the operator in a (fake) cluster do again and again: a workload to scale, and
// objects applied the way a user applies them, with kubectl.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { FakeApiServer } from './fake-apiserver.js';
import { kubectl, type RunResult } from './tools.js';

/** An apps/v1 Deployment with a scale subresource, straight into the fake's store. */
export function putDeployment(api: FakeApiServer, namespace: string, name: string, replicas = 1): void {
  api.put({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
  });
}

/** `kubectl apply` of the objects (YAML text, or objects written as YAML documents) from a file in `dir`. */
export async function kubectlApply(kubeconfig: string, dir: string, objs: unknown, file = `apply-${Math.random().toString(36).slice(2)}.yaml`): Promise<RunResult> {
  const path = join(dir, file);
  await writeFile(path, typeof objs === 'string' ? objs : (Array.isArray(objs) ? objs : [objs]).map((o) => stringify(o)).join('---\n'));
  return kubectl([`--kubeconfig=${kubeconfig}`, 'apply', '--validate=false', '-f', path]);
}

/** kubectlApply, failing the test with kubectl's message when it is refused. */
export async function mustApply(kubeconfig: string, dir: string, ...objs: unknown[]): Promise<void> {
  const r = await kubectlApply(kubeconfig, dir, objs);
  if (r.code !== 0) throw new Error(`kubectl apply failed: ${r.stderr}`);
}
