// The workloads ScaledObjects scale, through their `scale` subresource: any kind that has one
// (Deployments, StatefulSets, Argo Rollouts, ...), found by API discovery as the HPA controller
// finds it. Discovery answers are cached per group/version for a while.
import { CustomObjectsApi, setHeaderOptions, type KubeConfig, type V1APIResourceList } from '@kubernetes/client-node';
import { describeApiError, statusCodeOf, withTimeout } from '../../k8s/kubeconfig.js';

const API_TIMEOUT_MS = 10_000;
const DISCOVERY_TTL_MS = 5 * 60_000;
const MERGE_PATCH = setHeaderOptions('Content-Type', 'application/merge-patch+json');

export interface ScaleTargetRef {
  apiVersion: string;
  kind: string;
  name: string;
}

/** Why a ScaledObject cannot scale its target: a condition reason and a message. */
export interface ScaleTargetProblem {
  reason: 'ScaleTargetNotFound' | 'ScaleTargetNotScalable' | 'ScaleTargetUnknownKind' | 'ScaleTargetError';
  message: string;
}

interface Resolved {
  group: string;
  version: string;
  plural: string;
}

export class ScaleTargets {
  private readonly api: CustomObjectsApi;
  private readonly discovery = new Map<string, { at: number; list: V1APIResourceList }>();

  constructor(kc: KubeConfig) {
    this.api = kc.makeApiClient(CustomObjectsApi);
  }

  /** undefined when the target exists and can be scaled. */
  async check(namespace: string, ref: ScaleTargetRef): Promise<ScaleTargetProblem | undefined> {
    const resolved = await this.resolve(ref);
    if ('reason' in resolved) return resolved;
    try {
      await this.readScale(namespace, ref, resolved);
      return undefined;
    } catch (err) {
      if (statusCodeOf(err) === 404) return { reason: 'ScaleTargetNotFound', message: `${describe(ref)} ${namespace}/${ref.name} not found` };
      return { reason: 'ScaleTargetError', message: `cannot read the scale of ${describe(ref)} ${namespace}/${ref.name}: ${describeApiError(err)}` };
    }
  }

  /** Current spec.replicas, or undefined when it cannot be read. */
  async replicas(namespace: string, ref: ScaleTargetRef): Promise<number | undefined> {
    const resolved = await this.resolve(ref);
    if ('reason' in resolved) return undefined;
    const scale = await this.readScale(namespace, ref, resolved);
    return typeof scale.spec?.replicas === 'number' ? scale.spec.replicas : 0;
  }

  async scale(namespace: string, ref: ScaleTargetRef, replicas: number): Promise<void> {
    const r = await this.resolve(ref);
    if ('reason' in r) throw new Error(r.message);
    await withTimeout(
      this.api.patchNamespacedCustomObjectScale({ group: r.group, version: r.version, namespace, plural: r.plural, name: ref.name, body: { spec: { replicas } } }, MERGE_PATCH),
      API_TIMEOUT_MS,
      `scaling ${describe(ref)} ${namespace}/${ref.name}`,
    );
  }

  private async readScale(namespace: string, ref: ScaleTargetRef, r: Resolved): Promise<{ spec?: { replicas?: number } }> {
    return (await withTimeout(
      this.api.getNamespacedCustomObjectScale({ group: r.group, version: r.version, namespace, plural: r.plural, name: ref.name }),
      API_TIMEOUT_MS,
      `reading the scale of ${describe(ref)} ${namespace}/${ref.name}`,
    )) as { spec?: { replicas?: number } };
  }

  private async resolve(ref: ScaleTargetRef): Promise<Resolved | ScaleTargetProblem> {
    const slash = ref.apiVersion.indexOf('/');
    if (slash < 0) return { reason: 'ScaleTargetNotScalable', message: `${describe(ref)}: core API kinds are not supported as scale targets (use apps/v1 Deployment or StatefulSet, or a custom resource with a scale subresource)` };
    const group = ref.apiVersion.slice(0, slash);
    const version = ref.apiVersion.slice(slash + 1);
    let list: V1APIResourceList;
    try {
      list = await this.discover(group, version);
    } catch (err) {
      if (statusCodeOf(err) === 404) return { reason: 'ScaleTargetUnknownKind', message: `the API ${ref.apiVersion} is not served by this cluster` };
      return { reason: 'ScaleTargetError', message: `discovery of ${ref.apiVersion} failed: ${describeApiError(err)}` };
    }
    const main = list.resources.find((r) => r.kind === ref.kind && !r.name.includes('/'));
    if (!main) return { reason: 'ScaleTargetUnknownKind', message: `${ref.apiVersion} has no kind ${ref.kind}` };
    if (!list.resources.some((r) => r.name === `${main.name}/scale`)) return { reason: 'ScaleTargetNotScalable', message: `${describe(ref)} has no scale subresource, so it cannot be scaled` };
    return { group, version, plural: main.name };
  }

  private async discover(group: string, version: string): Promise<V1APIResourceList> {
    const key = `${group}/${version}`;
    const cached = this.discovery.get(key);
    if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.list;
    const list = await withTimeout(this.api.getAPIResources({ group, version }), API_TIMEOUT_MS, `discovery of ${key}`);
    this.discovery.set(key, { at: Date.now(), list });
    return list;
  }
}

function describe(ref: ScaleTargetRef): string {
  return `${ref.apiVersion} ${ref.kind}`;
}
