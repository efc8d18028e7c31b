// KEDA's custom resources from the cluster: watches on ScaledObjects, TriggerAuthentications and
// ClusterTriggerAuthentications (all namespaces, or --watch-namespace), each object validated on
// its own. An invalid object is not served but kept, with its error, for the status it must be
// given. Secrets are watched by metadata only (their data is read when a scaler is built, never
// held for Secrets nobody uses), so that a Secret created late or rotated reaches its scalers;
// ConfigMaps the same way, from the first read of one (only `*FromEnv` reads them).
import type { Logger } from 'pino';
import type { KubeClient } from '../../k8s/client.js';
import type { ConfigMap, KubeObject as WireObject, Secret } from '../../k8s/types.js';
import { ForbiddenError, informer, type Informer, type InformerEvent } from '../../k8s/informer.js';
import { describeApiError, statusCodeOf } from '../../k8s/kubeconfig.js';
import { scaledObjectFromApi, secretValuesFromApi, triggerAuthenticationFromApi } from './manifest.js';
import { dependencyKey, type AuthLookup, type AuthSpec, type AuthenticationRef, type ScaledObject, type ScaledObjectStore } from './types.js';

const GROUP = 'keda.sh';
const VERSION = 'v1alpha1';

export interface KubeObject extends WireObject {
  spec?: unknown;
  status?: Record<string, unknown>;
}

/** One ScaledObject as watched: served when valid, reported when not. */
export interface ScaledObjectRecord {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  /** The object as last seen (status included). */
  raw: KubeObject;
  object?: ScaledObject;
  /** Why it cannot be served (the field and the problem). */
  error?: string;
}

export interface ClusterStoreOptions {
  client: KubeClient;
  log: Logger;
  /** '' for all namespaces. */
  watchNamespace: string;
  /** Where ClusterTriggerAuthentications find their Secrets: the operator's namespace (KEDA's rule). */
  clusterObjectNamespace: string;
}

interface AuthEntry {
  auth: AuthSpec | Error;
  version: string;
}

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;

export class ClusterScaledObjectStore implements ScaledObjectStore {
  private readonly records = new Map<string, ScaledObjectRecord>();
  /** By dependencyKey: TriggerAuthentications and ClusterTriggerAuthentications. */
  private readonly auths = new Map<string, AuthEntry>();
  /** By dependencyKey: the resourceVersion of every Secret (and, once one was read, ConfigMap) in the watched namespaces. */
  private readonly objectVersions = new Map<string, string>();
  private readonly listeners: (() => void)[] = [];
  private readonly recordListeners: ((key: string) => void)[] = [];
  private readonly dependencyListeners: ((key: string) => void)[] = [];
  private readonly informers: Informer<KubeObject>[] = [];
  private notifyQueued = false;
  /** Without list/watch on Secrets or ConfigMaps (RBAC) their versions are unknown. */
  private readonly unwatched = new Set<'Secret' | 'ConfigMap'>();
  private configMapsWatched = false;
  private closed = false;

  constructor(private readonly opts: ClusterStoreOptions) {}

  /** Lists and watches; resolves once each initial list is in. */
  async start(): Promise<void> {
    const ns = this.opts.watchNamespace;
    const keda = (plural: string, namespaced: boolean) => (namespaced && ns !== '' ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${plural}` : `/apis/${GROUP}/${VERSION}/${plural}`);
    const dependencies = [
      this.watch(keda('triggerauthentications', true), 'triggerauthentications', (o, e) => this.onAuth('TriggerAuthentication', o, e)),
      this.watch(keda('clustertriggerauthentications', false), 'clustertriggerauthentications', (o, e) => this.onAuth('ClusterTriggerAuthentication', o, e)),
    ];
    // ClusterTriggerAuthentications read their Secrets in the operator's namespace.
    const secretNamespaces = ns === '' ? [''] : [...new Set([ns, this.opts.clusterObjectNamespace])];
    // What ScaledObjects refer to first, so that the first builds find it.
    await Promise.all([...dependencies.map((i) => i.start()), this.watchVersions('Secret', secretNamespaces)]);
    await this.watch(keda('scaledobjects', true), 'scaledobjects', (o, e) => this.onScaledObject(o, e === 'delete')).start();
    this.notify();
  }

  private watch(path: string, name: string, onObject: (obj: KubeObject, event: InformerEvent) => void, metadataOnly = false): Informer<KubeObject> {
    const i = informer<KubeObject>({ client: this.opts.client, path, name, log: this.opts.log, metadataOnly, stopOnForbidden: metadataOnly });
    i.onObject(onObject);
    this.informers.push(i);
    return i;
  }

  /** Follows the versions of every Secret or ConfigMap in these namespaces ('' for all), by metadata only. */
  private async watchVersions(kind: 'Secret' | 'ConfigMap', namespaces: string[]): Promise<void> {
    const plural = kind === 'Secret' ? 'secrets' : 'configmaps';
    await Promise.all(
      namespaces.map((s) =>
        this.watch(s ? `/api/v1/namespaces/${s}/${plural}` : `/api/v1/${plural}`, `${plural}${s ? ` in ${s}` : ''}`, (o, e) => this.onVersioned(kind, o, e), true)
          .start()
          .catch((err: unknown) => {
            if (!(err instanceof ForbiddenError)) throw err;
            this.unwatched.add(kind);
            this.opts.log.warn(
              { reason: err.message, namespace: s || '(all)' },
              `cannot watch ${plural} (RBAC: list and watch on ${plural}): a ${kind} created after the object using it, or changed, is picked up by retries instead of at once`,
            );
          }),
      ),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  get(namespace: string, name: string): ScaledObject | undefined {
    return this.records.get(keyOf(namespace, name))?.object;
  }

  list(): ScaledObject[] {
    return [...this.records.values()].flatMap((r) => (r.object ? [r.object] : []));
  }

  /** Every ScaledObject seen, valid or not. */
  record(namespace: string, name: string): ScaledObjectRecord | undefined {
    return this.records.get(keyOf(namespace, name));
  }

  allRecords(): ScaledObjectRecord[] {
    return [...this.records.values()];
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Called with `namespace/name` whenever that ScaledObject's spec, metadata or existence changes. */
  onRecordChange(listener: (key: string) => void): void {
    this.recordListeners.push(listener);
  }

  onDependencyChange(listener: (key: string) => void): void {
    this.dependencyListeners.push(listener);
  }

  dependencyVersion(key: string): string | undefined {
    const kind = key.startsWith('Secret/') ? 'Secret' : key.startsWith('ConfigMap/') ? 'ConfigMap' : undefined;
    if (kind) return this.unwatched.has(kind) ? 'unwatched' : this.objectVersions.get(key);
    return this.auths.get(key)?.version;
  }

  lookupAuth(namespace: string, ref: AuthenticationRef): AuthLookup {
    const cluster = ref.kind === 'ClusterTriggerAuthentication';
    const label = cluster ? `ClusterTriggerAuthentication ${ref.name}` : `TriggerAuthentication ${namespace}/${ref.name}`;
    const found = this.auths.get(dependencyKey(cluster ? 'ClusterTriggerAuthentication' : 'TriggerAuthentication', namespace, ref.name))?.auth;
    if (!found) throw new Error(`${label} not found`);
    if (found instanceof Error) throw new Error(`${label} is invalid: ${found.message}`);
    return { label, secretNamespace: cluster ? this.opts.clusterObjectNamespace : namespace, spec: found };
  }

  async readSecret(namespace: string, name: string): Promise<Map<string, string> | undefined> {
    const secret = await this.read<Secret>('secrets', namespace, name);
    return secret && secretValuesFromApi(secret);
  }

  async readConfigMap(namespace: string, name: string): Promise<Map<string, string> | undefined> {
    // Watched from the first read, not waited for: until its list is in, a ConfigMap's version is
    // unknown, and its arrival rebuilds what was built from it once, harmlessly.
    if (!this.configMapsWatched && !this.closed) {
      this.configMapsWatched = true;
      this.watchVersions('ConfigMap', [this.opts.watchNamespace]).catch((err: unknown) => this.opts.log.warn({ reason: (err as Error).message }, 'cannot watch ConfigMaps'));
    }
    const configMap = await this.read<ConfigMap>('configmaps', namespace, name);
    return configMap && new Map(Object.entries(configMap.data ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string'));
  }

  private async read<T>(plural: 'secrets' | 'configmaps', namespace: string, name: string): Promise<T | undefined> {
    try {
      return await this.opts.client.get<T>(`/api/v1/namespaces/${namespace}/${plural}/${name}`);
    } catch (err) {
      const code = statusCodeOf(err);
      if (code === 404) return undefined;
      if (code === 403) throw new Error(`the operator may not read it (RBAC: get on ${plural} in namespace ${namespace})`, { cause: err });
      throw new Error(`cannot be read: ${describeApiError(err)}`, { cause: err });
    }
  }

  private onScaledObject(obj: KubeObject, deleted: boolean): void {
    const namespace = obj.metadata?.namespace ?? '';
    const name = obj.metadata?.name ?? '';
    const key = keyOf(namespace, name);
    const prev = this.records.get(key);
    if (deleted) {
      if (prev && prev.uid === obj.metadata?.uid) this.records.delete(key);
      this.changed(key);
      return;
    }
    const uid = obj.metadata?.uid ?? '';
    const generation = obj.metadata?.generation ?? 0;
    // Status writes (ours, mostly) come back as updates: only a new generation, a new object or
    // a metadata change (labels, annotations, deletion) is news.
    const metaChanged = prev !== undefined && JSON.stringify(metaOf(prev.raw)) !== JSON.stringify(metaOf(obj));
    if (prev && prev.uid === uid && prev.generation === generation && !metaChanged) {
      prev.raw = obj;
      return;
    }
    const record: ScaledObjectRecord = { namespace, name, uid, generation, raw: obj };
    try {
      const m = scaledObjectFromApi(obj);
      record.object = Object.freeze({ namespace, name, uid, generation, spec: m.spec, ...(m.pause ? { pause: m.pause } : {}), unsupported: m.unsupported });
    } catch (err) {
      record.error = (err as Error).message;
      this.opts.log.warn({ scaledObject: key, reason: record.error }, 'invalid ScaledObject: not served');
    }
    this.records.set(key, record);
    this.changed(key);
  }

  private onAuth(kind: 'TriggerAuthentication' | 'ClusterTriggerAuthentication', obj: KubeObject, event: InformerEvent): void {
    const key = dependencyKey(kind, obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
    if (event === 'delete') this.auths.delete(key);
    else {
      let auth: AuthSpec | Error;
      try {
        auth = triggerAuthenticationFromApi(obj, kind).auth;
      } catch (err) {
        auth = err as Error;
        this.opts.log.warn({ [kind]: key, reason: auth.message }, `invalid ${kind}`);
      }
      this.auths.set(key, { auth, version: obj.metadata?.resourceVersion ?? '' });
    }
    this.dependencyChanged(key);
  }

  private onVersioned(kind: 'Secret' | 'ConfigMap', obj: KubeObject, event: InformerEvent): void {
    const key = dependencyKey(kind, obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
    if (event === 'delete') this.objectVersions.delete(key);
    else this.objectVersions.set(key, obj.metadata?.resourceVersion ?? '');
    this.dependencyChanged(key);
  }

  private dependencyChanged(key: string): void {
    for (const l of this.dependencyListeners) l(key);
  }

  private changed(key: string): void {
    for (const l of this.recordListeners) l(key);
    this.queueNotify();
  }

  /** One notification per burst of events (the initial list is thousands of them). */
  private queueNotify(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    setImmediate(() => {
      this.notifyQueued = false;
      this.notify();
    });
  }

  private notify(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.opts.log.error({ err: (err as Error).message }, 'a ScaledObject store listener failed');
      }
    }
  }
}

function metaOf(obj: KubeObject): unknown {
  const m = obj.metadata ?? {};
  return [m.labels, m.annotations, m.deletionTimestamp, m.finalizers];
}
