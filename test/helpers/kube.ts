// A small client for tests against a (real or fake) kube-apiserver: read, list, create, patch and
// delete any kind as plain JSON, through our own KubeClient and a kubeconfig, with 404 as
// `undefined` so that tests can poll with eventually().
import { ApiError, KubeClient } from '../../src/k8s/client.js';
import type { KubeObject } from '../../src/k8s/types.js';

export interface Obj extends KubeObject {
  spec?: Record<string, unknown> & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  status?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  data?: Record<string, string>;
  [k: string]: unknown;
}

export interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime?: string;
}

export class Kube {
  readonly client: KubeClient;

  constructor(readonly kubeconfig: string) {
    this.client = KubeClient.fromKubeconfig(kubeconfig);
  }

  /** One request, plain JSON in and out; 404 is undefined (except for POST). */
  async request<T = Obj>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T | undefined> {
    try {
      return await this.client.call<T>(method, path, { ...(body !== undefined ? { body, contentType } : {}), timeoutMs: 30_000 }).then((r) => r.body);
    } catch (err) {
      if (err instanceof ApiError && err.code === 404 && method !== 'POST') return undefined;
      throw err;
    }
  }

  get<T extends Obj = Obj>(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<T | undefined> {
    return this.request<T>('GET', pathOf(apiVersion, kind, namespace, name));
  }

  /** `fromWatchCache`: resourceVersion=0, served from kube-apiserver's watch cache instead of a quorum read of etcd (for polling). */
  async list<T extends Obj = Obj>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string, fromWatchCache = false): Promise<T[]> {
    const query = new URLSearchParams();
    if (labelSelector) query.set('labelSelector', labelSelector);
    if (fromWatchCache) query.set('resourceVersion', '0');
    const q = query.size > 0 ? `?${query}` : '';
    return (await this.request<{ items: T[] }>('GET', pathOf(apiVersion, kind, namespace) + q))?.items ?? [];
  }

  async create<T extends Obj>(obj: T): Promise<T> {
    return (await this.request<T>('POST', pathOf(obj.apiVersion!, obj.kind!, obj.metadata?.namespace), obj))!;
  }

  /** Server-side apply, as `kubectl apply --server-side` does it (field manager "test"). */
  async apply<T extends Obj>(obj: T): Promise<T> {
    const path = `${pathOf(obj.apiVersion!, obj.kind!, obj.metadata?.namespace, obj.metadata!.name)}?fieldManager=test&force=true`;
    return (await this.request<T>('PATCH', path, obj, 'application/apply-patch+yaml'))!;
  }

  async mergePatch<T extends Obj = Obj>(apiVersion: string, kind: string, namespace: string | undefined, name: string, patch: Record<string, unknown>, subresource = ''): Promise<T> {
    const path = pathOf(apiVersion, kind, namespace, name) + (subresource ? `/${subresource}` : '');
    const r = await this.request<T>('PATCH', path, patch, 'application/merge-patch+json');
    if (!r) throw Object.assign(new Error(`PATCH ${path}: not found`), { code: 404 });
    return r;
  }

  /** Deletes; a missing object is not an error. */
  async delete(apiVersion: string, kind: string, namespace: string | undefined, name: string, propagationPolicy?: 'Foreground' | 'Background' | 'Orphan'): Promise<void> {
    await this.request('DELETE', pathOf(apiVersion, kind, namespace, name), propagationPolicy ? { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy } : undefined);
  }

  /** A ScaledObject's (or any object's) condition of that type. */
  async condition(apiVersion: string, kind: string, namespace: string, name: string, type: string): Promise<Condition | undefined> {
    const o = await this.get(apiVersion, kind, namespace, name);
    return (o?.status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);
  }
}

/** The REST path of a kind (plural = lower-case kind + "s", true of every kind the tests use). */
export function pathOf(apiVersion: string, kind: string, namespace?: string, name?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return `${base}${namespace ? `/namespaces/${namespace}` : ''}/${kind.toLowerCase()}s${name ? `/${name}` : ''}`;
}

export function namespace(name: string): Obj {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

/** An apps/v1 Deployment (its Pods stay Pending: there is no kubelet). */
export function deployment(ns: string, name: string, replicas = 1): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'registry.invalid/none:1' }] } } },
  };
}

export function scaledObject(ns: string, name: string, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): Obj {
  return { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name, namespace: ns, ...metadata }, spec };
}

export function secret(ns: string, name: string, stringData: Record<string, string>): Obj {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, type: 'Opaque', stringData };
}

/** `replicas` of a Deployment (undefined when it does not exist). */
export async function replicasOf(kube: Kube, ns: string, name: string): Promise<number | undefined> {
  return (await kube.get(`apps/v1`, 'Deployment', ns, name))?.spec?.replicas as number | undefined;
}
