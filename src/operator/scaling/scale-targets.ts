// The workloads ScaledObjects scale, through their `scale` subresource: any kind that has one
// (Deployments, StatefulSets, Argo Rollouts, ...), found by API discovery as the HPA controller
// finds it. Discovery answers are cached per group/version for a while.
//
// Each ScaledObject's workload is followed: one metadata-only watch per kind in use, so that a
// workload created after its ScaledObject (or deleted, or replaced) re-queues the ScaledObjects
// that scale it at once, whatever order things were applied in.
//
// The workloads' pod templates are read from here too (`*FromEnv`), versioned by the same watches
// (uid and template digest, or generation for kinds watched by metadata only), so that a changed
// template reaches the scalers built from it.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { KubeClient } from '../../k8s/client.js';
import type { APIResourceList } from '../../k8s/types.js';
import { informer, type Informer } from '../../k8s/informer.js';
import { describeApiError, statusCodeOf } from '../../k8s/kubeconfig.js';
import type { Workloads } from '../metrics-engine.js';
import { EnvironmentError, type PodTemplates } from '../scaledobjects/resolve-env.js';
import type { ScaledObject } from '../scaledobjects/types.js';
import { scaleTarget } from './hpa.js';

const DISCOVERY_TTL_MS = 5 * 60_000;

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

export interface ScaleTargetsOptions {
  log: Logger;
  /** '' for all namespaces. */
  watchNamespace: string;
}

/** `plural.group/namespace/name` */
const targetKey = (r: Resolved, namespace: string, name: string) => `${r.plural}.${r.group}/${namespace}/${name}`;
/** The dependency key of a workload's pod template (see PodTemplates). */
const TEMPLATE = 'Workload/';

export class ScaleTargets implements PodTemplates {
  private readonly discovery = new Map<string, { at: number; list: APIResourceList }>();
  /** One watch per group/version/resource in use. */
  private readonly watches = new Map<string, Informer<{ metadata?: { namespace?: string; name?: string; uid?: string } }>>();
  /** targetKey -> the ScaledObjects (`namespace/name`) scaling it, and back. */
  private readonly followers = new Map<string, Set<string>>();
  private readonly followed = new Map<string, string>();
  private readonly listeners: ((scaledObject: string) => void)[] = [];
  /** spec.replicas and status.readyReplicas by targetKey, for the kinds watched whole (see watch()). */
  private readonly cachedReplicas = new Map<string, { replicas: number; ready: number }>();
  private readonly replicasSynced = new Set<string>();
  /** `plural.group/namespace` where a scale subresource has been read: RBAC lets us, so the cache can answer. */
  private readonly scaleReadable = new Set<string>();
  /** Pod template versions by targetKey, for every workload of a kind watched: `uid/digest` (apps kinds) or `uid/generation`. */
  private readonly templates = new Map<string, string>();
  /** Kinds (`plural.group`) whose watch failed: their workloads' versions are unknown. */
  private readonly unwatched = new Set<string>();
  private readonly templateListeners: ((key: string) => void)[] = [];
  private closed = false;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: ScaleTargetsOptions,
  ) {}

  /** Called with a ScaledObject's `namespace/name` when its workload appears, goes or is replaced. */
  onTargetChange(listener: (scaledObject: string) => void): void {
    this.listeners.push(listener);
  }

  /** Called with a pod template's dependency key when its workload appears, changes its spec or goes. */
  onTemplateChange(listener: (key: string) => void): void {
    this.templateListeners.push(listener);
  }

  async read(so: ScaledObject, use: (key: string) => void): Promise<{ spec: unknown; containerName?: string; workload: string }> {
    const ref = scaleTarget(so);
    const workload = `${ref.kind} ${so.namespace}/${ref.name}`;
    const r = await this.resolve(ref);
    if ('reason' in r) throw new EnvironmentError(r.message);
    this.watch(r);
    use(TEMPLATE + targetKey(r, so.namespace, ref.name));
    let obj: { spec?: { template?: { spec?: unknown } } };
    try {
      obj = await this.client.get(objectPath(r, so.namespace, ref.name));
    } catch (err) {
      const code = statusCodeOf(err);
      if (code === 404) throw new EnvironmentError(`${workload} not found`);
      if (code === 403) throw new EnvironmentError(`${workload}: the operator may not read it (RBAC: get on ${r.plural}.${r.group})`);
      throw new EnvironmentError(`${workload} cannot be read: ${describeApiError(err)}`);
    }
    const spec = obj.spec?.template?.spec;
    if (typeof spec !== 'object' || spec === null) throw new EnvironmentError(`${workload} has no pod template (spec.template.spec) to read *FromEnv values from`);
    const containerName = so.spec.scaleTargetRef.envSourceContainerName;
    return { spec, workload, ...(containerName ? { containerName } : {}) };
  }

  version(key: string): string | undefined {
    const target = key.slice(TEMPLATE.length);
    return this.unwatched.has(target.slice(0, target.indexOf('/'))) ? 'unwatched' : this.templates.get(target);
  }

  /** Watches the workload of a ScaledObject (replacing what it followed before). */
  async follow(scaledObject: string, namespace: string, ref: ScaleTargetRef): Promise<void> {
    const resolved = await this.resolve(ref);
    if ('reason' in resolved) return this.unfollow(scaledObject);
    const key = targetKey(resolved, namespace, ref.name);
    if (this.followed.get(scaledObject) === key) return;
    this.unfollow(scaledObject);
    this.followed.set(scaledObject, key);
    let set = this.followers.get(key);
    if (!set) this.followers.set(key, (set = new Set()));
    set.add(scaledObject);
    this.watch(resolved);
  }

  unfollow(scaledObject: string): void {
    const key = this.followed.get(scaledObject);
    if (key === undefined) return;
    this.followed.delete(scaledObject);
    const set = this.followers.get(key);
    set?.delete(scaledObject);
    if (set?.size === 0) this.followers.delete(key);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.watches.values()].map((w) => w.stop()));
  }

  private watch(r: Resolved): void {
    const gvr = `${r.plural}.${r.version}.${r.group}`;
    if (this.closed || this.watches.has(gvr)) return;
    const ns = this.opts.watchNamespace;
    // Deployments and StatefulSets keep their replicas in spec.replicas: watched whole but kept as
    // that alone, so that scaling to and from zero reads a cache instead of the scale subresource
    // on every poll. Other kinds (their replicas path is their CRD's): metadata only.
    const replicasInSpec = r.group === 'apps' && (r.plural === 'deployments' || r.plural === 'statefulsets');
    const w = informer<{ metadata?: { namespace?: string; name?: string; uid?: string; generation?: number }; spec?: { replicas?: number; template?: string }; status?: { readyReplicas?: number } }>({
      client: this.client,
      path: `/apis/${r.group}/${r.version}/${ns ? `namespaces/${ns}/` : ''}${r.plural}`,
      metadataOnly: !replicasInSpec,
      ...(replicasInSpec ? { transform: keepReplicas } : {}),
      name: `scale targets ${gvr}`,
      log: this.opts.log,
      // Without list/watch on this kind (RBAC) a ScaledObject still gets there, by its retries.
      stopOnForbidden: true,
    });
    const uids = new Map<string, string>();
    w.onObject((obj, event) => {
      const key = targetKey(r, obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
      if (replicasInSpec) {
        if (event === 'delete') this.cachedReplicas.delete(key);
        else this.cachedReplicas.set(key, { replicas: obj.spec?.replicas ?? 1, ready: obj.status?.readyReplicas ?? 0 });
      }
      const template = event === 'delete' ? undefined : `${obj.metadata?.uid}/${obj.spec?.template ?? obj.metadata?.generation}`;
      if (this.templates.get(key) !== template) {
        if (template === undefined) this.templates.delete(key);
        else this.templates.set(key, template);
        for (const l of this.templateListeners) l(TEMPLATE + key);
      }
      // Only existence is news for the ScaledObjects (status updates are frequent and say nothing new).
      const uid = event === 'delete' ? undefined : obj.metadata?.uid;
      if (uids.get(key) === uid) return;
      if (uid === undefined) uids.delete(key);
      else uids.set(key, uid);
      for (const so of this.followers.get(key) ?? []) for (const l of this.listeners) l(so);
    });
    this.watches.set(gvr, w);
    w.start().then(
      () => void (replicasInSpec && this.replicasSynced.add(gvr)),
      (err: unknown) => {
        this.unwatched.add(`${r.plural}.${r.group}`);
        this.opts.log.warn(
          { kind: gvr, reason: (err as Error).message },
          'cannot watch this kind of scale target (RBAC: list and watch): ScaledObjects waiting for one are retried with backoff instead of re-queued when it appears',
        );
      },
    );
  }

  /** undefined when the target exists and can be scaled. */
  async check(namespace: string, ref: ScaleTargetRef): Promise<ScaleTargetProblem | undefined> {
    const resolved = await this.resolve(ref);
    if ('reason' in resolved) return resolved;
    const key = targetKey(resolved, namespace, ref.name);
    const scope = `${resolved.plural}.${resolved.group}/${namespace}`;
    // A workload the watch holds, in a namespace where its kind's scale has been read: nothing to ask.
    if (this.cachedReplicas.has(key) && this.scaleReadable.has(scope)) return undefined;
    try {
      await this.readScale(namespace, ref, resolved);
      this.scaleReadable.add(scope);
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
    if (this.replicasSynced.has(`${resolved.plural}.${resolved.version}.${resolved.group}`)) return this.cachedReplicas.get(targetKey(resolved, namespace, ref.name))?.replicas;
    const scale = await this.readScale(namespace, ref, resolved);
    return typeof scale.spec?.replicas === 'number' ? scale.spec.replicas : 0;
  }

  /**
   * status.readyReplicas, which Deployments, StatefulSets, ReplicaSets and Argo Rollouts have (the
   * scale subresource does not say it); undefined when it cannot be read or the kind has none.
   */
  async readyReplicas(namespace: string, ref: ScaleTargetRef): Promise<number | undefined> {
    const resolved = await this.resolve(ref);
    if ('reason' in resolved) return undefined;
    if (this.replicasSynced.has(`${resolved.plural}.${resolved.version}.${resolved.group}`)) return this.cachedReplicas.get(targetKey(resolved, namespace, ref.name))?.ready;
    const obj = await this.client.get<{ status?: { readyReplicas?: unknown } }>(objectPath(resolved, namespace, ref.name));
    return typeof obj.status?.readyReplicas === 'number' ? obj.status.readyReplicas : undefined;
  }

  async scale(namespace: string, ref: ScaleTargetRef, replicas: number): Promise<void> {
    const r = await this.resolve(ref);
    if ('reason' in r) throw new Error(r.message);
    await this.client.patch(scalePath(r, namespace, ref.name), { spec: { replicas } }, 'merge');
  }

  private async readScale(namespace: string, ref: ScaleTargetRef, r: Resolved): Promise<{ spec?: { replicas?: number } }> {
    return this.client.get<{ spec?: { replicas?: number } }>(scalePath(r, namespace, ref.name));
  }

  private async resolve(ref: ScaleTargetRef): Promise<Resolved | ScaleTargetProblem> {
    const slash = ref.apiVersion.indexOf('/');
    if (slash < 0) return { reason: 'ScaleTargetNotScalable', message: `${describe(ref)}: core API kinds are not supported as scale targets (use apps/v1 Deployment or StatefulSet, or a custom resource with a scale subresource)` };
    const group = ref.apiVersion.slice(0, slash);
    const version = ref.apiVersion.slice(slash + 1);
    let list: APIResourceList;
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

  private async discover(group: string, version: string): Promise<APIResourceList> {
    const key = `${group}/${version}`;
    const cached = this.discovery.get(key);
    if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.list;
    const list = await this.client.get<APIResourceList>(`/apis/${key}`);
    this.discovery.set(key, { at: Date.now(), list });
    return list;
  }
}

/**
 * What the replicas cache needs of a Deployment or StatefulSet, and a digest of its pod template:
 * its generation also moves with every change of replicas, which says nothing about the template.
 */
function keepReplicas(obj: { metadata?: { namespace?: string; name?: string; uid?: string; generation?: number; resourceVersion?: string }; spec?: unknown; status?: unknown }) {
  const m = obj.metadata ?? {};
  const spec = obj.spec as { replicas?: number; template?: unknown } | undefined;
  return {
    metadata: { namespace: m.namespace, name: m.name, uid: m.uid, resourceVersion: m.resourceVersion },
    spec: { replicas: spec?.replicas, template: createHash('sha256').update(JSON.stringify(spec?.template ?? null)).digest('base64') },
    status: { readyReplicas: (obj.status as { readyReplicas?: number } | undefined)?.readyReplicas },
  };
}

/** The engine's view of ScaledObjects' workloads (for the fallback). */
export function workloadsOf(targets: ScaleTargets): Workloads {
  return {
    replicas: (so) => targets.replicas(so.namespace, scaleTarget(so)),
    readyReplicas: (so) => targets.readyReplicas(so.namespace, scaleTarget(so)),
  };
}

const objectPath = (r: Resolved, namespace: string, name: string) => `/apis/${r.group}/${r.version}/namespaces/${namespace}/${r.plural}/${name}`;
const scalePath = (r: Resolved, namespace: string, name: string) => `${objectPath(r, namespace, name)}/scale`;

function describe(ref: ScaleTargetRef): string {
  return `${ref.apiVersion} ${ref.kind}`;
}
