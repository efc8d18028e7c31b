// KEDA's custom resources from the cluster: resilient watches on ScaledObjects,
// TriggerAuthentications and ClusterTriggerAuthentications (all namespaces, or --watch-namespace),
// each object validated on its own. An invalid object is not served but kept, with its error,
// for the status it must be given. Secrets are read when a scaler is built, never listed.
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { resilientInformer, type ResilientInformer } from '../../k8s/informer.js';
import { describeApiError, statusCodeOf, withTimeout } from '../../k8s/kubeconfig.js';
import { scaledObjectFromApi, secretValuesFromApi, triggerAuthenticationFromApi } from './manifest.js';
import type { AuthLookup, AuthSpec, AuthenticationRef, ScaledObject, ScaledObjectStore } from './types.js';

const GROUP = 'keda.sh';
const VERSION = 'v1alpha1';
const API_TIMEOUT_MS = 10_000;

export interface KubeObject extends KubernetesObject {
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
  kc: KubeConfig;
  log: Logger;
  /** '' for all namespaces. */
  watchNamespace: string;
  /** Where ClusterTriggerAuthentications find their Secrets: the operator's namespace (KEDA's rule). */
  clusterObjectNamespace: string;
}

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;

export class ClusterScaledObjectStore implements ScaledObjectStore {
  private readonly records = new Map<string, ScaledObjectRecord>();
  private readonly auths = new Map<string, AuthSpec | Error>();
  private readonly clusterAuths = new Map<string, AuthSpec | Error>();
  private readonly listeners: (() => void)[] = [];
  private readonly recordListeners: ((key: string) => void)[] = [];
  private readonly informers: ResilientInformer<KubeObject>[] = [];
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private revision = 0;
  private notifyQueued = false;

  constructor(private readonly opts: ClusterStoreOptions) {
    this.core = opts.kc.makeApiClient(CoreV1Api);
    this.custom = opts.kc.makeApiClient(CustomObjectsApi);
  }

  /** Lists and watches the three kinds; resolves once each initial list is in. */
  async start(): Promise<void> {
    const ns = this.opts.watchNamespace;
    const watch = (plural: string, namespaced: boolean, onObject: (obj: KubeObject, deleted: boolean) => void) => {
      const scoped = namespaced && ns !== '';
      const path = scoped ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${plural}` : `/apis/${GROUP}/${VERSION}/${plural}`;
      const informer = resilientInformer<KubeObject>({
        kc: this.opts.kc,
        path,
        list: () =>
          (scoped
            ? this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural })
            : this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as Promise<KubernetesListObject<KubeObject>>,
        name: plural,
        log: this.opts.log,
      });
      informer.onObject((obj, event) => {
        if (obj) onObject(obj, event === 'delete');
      });
      this.informers.push(informer);
      return informer;
    };
    const informers = [
      watch('triggerauthentications', true, (o, deleted) => this.onAuth(this.auths, 'TriggerAuthentication', o, deleted)),
      watch('clustertriggerauthentications', false, (o, deleted) => this.onAuth(this.clusterAuths, 'ClusterTriggerAuthentication', o, deleted)),
      watch('scaledobjects', true, (o, deleted) => this.onScaledObject(o, deleted)),
    ];
    for (const i of informers) await i.start();
    this.notify();
  }

  async close(): Promise<void> {
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

  authRevision(): number {
    return this.revision;
  }

  lookupAuth(namespace: string, ref: AuthenticationRef): AuthLookup {
    const cluster = ref.kind === 'ClusterTriggerAuthentication';
    const label = cluster ? `ClusterTriggerAuthentication ${ref.name}` : `TriggerAuthentication ${namespace}/${ref.name}`;
    const found = cluster ? this.clusterAuths.get(ref.name) : this.auths.get(keyOf(namespace, ref.name));
    if (!found) throw new Error(`${label} not found`);
    if (found instanceof Error) throw new Error(`${label} is invalid: ${found.message}`);
    return { label, secretNamespace: cluster ? this.opts.clusterObjectNamespace : namespace, spec: found };
  }

  async readSecret(namespace: string, name: string): Promise<Map<string, string> | undefined> {
    try {
      const secret = await withTimeout(this.core.readNamespacedSecret({ namespace, name }), API_TIMEOUT_MS, `reading secret ${namespace}/${name}`);
      return secretValuesFromApi(secret);
    } catch (err) {
      const code = statusCodeOf(err);
      if (code === 404) return undefined;
      if (code === 403) throw new Error(`the operator may not read it (RBAC: get on secrets in namespace ${namespace})`, { cause: err });
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
      record.object = Object.freeze({ namespace, name, uid, generation, spec: m.spec, unsupported: m.unsupported });
    } catch (err) {
      record.error = (err as Error).message;
      this.opts.log.warn({ scaledObject: key, reason: record.error }, 'invalid ScaledObject: not served');
    }
    this.records.set(key, record);
    this.changed(key);
  }

  private onAuth(map: Map<string, AuthSpec | Error>, kind: 'TriggerAuthentication' | 'ClusterTriggerAuthentication', obj: KubeObject, deleted: boolean): void {
    const key = kind === 'ClusterTriggerAuthentication' ? (obj.metadata?.name ?? '') : keyOf(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
    if (deleted) map.delete(key);
    else {
      try {
        map.set(key, triggerAuthenticationFromApi(obj, kind).auth);
      } catch (err) {
        map.set(key, err as Error);
        this.opts.log.warn({ [kind]: key, reason: (err as Error).message }, `invalid ${kind}`);
      }
    }
    this.revision++;
    // The ScaledObjects using it are reconciled again: their scalers may now build, or not.
    const name = obj.metadata?.name;
    const namespace = obj.metadata?.namespace;
    for (const r of this.records.values()) {
      const uses = r.object?.spec.triggers.some(
        (t) => t.authenticationRef?.name === name && (t.authenticationRef?.kind ?? 'TriggerAuthentication') === kind && (kind === 'ClusterTriggerAuthentication' || r.namespace === namespace),
      );
      if (uses) this.changed(keyOf(r.namespace, r.name));
    }
    this.queueNotify();
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
  return [m.labels, m.annotations, m.deletionTimestamp];
}
