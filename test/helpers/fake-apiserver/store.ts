// Storage and the write paths of kube-apiserver's generic registry (create / update / patch / delete
// with their preconditions, system fields, generation, status subresource, finalizers), a global
// resourceVersion counter like etcd's revision, and a bounded per-resource event history for watches.
import { randomBytes, randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { clone, deepEqual, isObject, jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { apiVersionOf, nowSeconds, type ResourceDef, type ResourceRegistry } from './resources.js';
import {
  ApiStatusError,
  alreadyExists,
  badRequest,
  conflict,
  invalid,
  notFound,
  unsupportedMediaType,
  type FieldError,
  type GroupResource,
  type Status,
} from './status.js';
import type { KubeObject, ObjectMeta } from './types.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredEvent {
  rv: number;
  type: EventType;
  /** The object after the change (for DELETED: its last state, carrying the deletion's resourceVersion). */
  obj: KubeObject;
  /** The object before the change (MODIFIED, DELETED). */
  prev?: KubeObject;
}

type Listener = (ev: StoredEvent) => void;

class ResourceState {
  readonly objects = new Map<string, KubeObject>();
  readonly history: StoredEvent[] = [];
  /** Events at or below this resourceVersion may have been dropped from the history. */
  compactedRv = 0;
  readonly listeners = new Set<Listener>();
}

export interface WriteOptions {
  dryRun?: boolean;
  subresource?: string;
}

export interface WriteResult {
  code: number;
  obj: KubeObject;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const GENERATE_NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export const gr = (def: ResourceDef): GroupResource => ({ group: def.group, resource: def.plural });
const meta = (o: KubeObject): ObjectMeta => o.metadata!;

function nameErrors(def: ResourceDef, name: string | undefined, obj: KubeObject): FieldError[] {
  if (!name) return [{ type: 'FieldValueRequired', field: 'metadata.name', detail: 'name or generateName is required' }];
  const rule = def.nameRule ?? 'subdomain';
  if (typeof rule === 'function') {
    const why = rule(name, obj);
    return why ? [{ type: 'FieldValueInvalid', field: 'metadata.name', value: name, detail: why }] : [];
  }
  if (rule === 'label' && (name.length > 63 || !DNS1123_LABEL.test(name))) {
    return [
      {
        type: 'FieldValueInvalid',
        field: 'metadata.name',
        value: name,
        detail: `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
      },
    ];
  }
  if (rule === 'subdomain' && (name.length > 253 || !DNS1123_SUBDOMAIN.test(name))) {
    return [
      {
        type: 'FieldValueInvalid',
        field: 'metadata.name',
        value: name,
        detail: `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
      },
    ];
  }
  return [];
}

/** Everything generation tracks: all but metadata, and but status when status is a subresource. */
function specPart(def: ResourceDef, o: KubeObject): Record<string, unknown> {
  const { metadata: _m, apiVersion: _a, kind: _k, status, ...rest } = o;
  return def.statusSubresource ? rest : { ...rest, status };
}

export class Store {
  /** The last resourceVersion handed out (etcd's revision). */
  rv: number;
  private readonly states = new Map<ResourceDef, ResourceState>();

  constructor(
    readonly registry: ResourceRegistry,
    public historyLimit: number,
    initialRv = 1000,
  ) {
    this.rv = initialRv;
  }

  state(def: ResourceDef): ResourceState {
    let s = this.states.get(def);
    if (!s) {
      // No state yet means no event ever happened for this resource: every resourceVersion is recent enough.
      s = new ResourceState();
      this.states.set(def, s);
    }
    return s;
  }

  private key = (ns: string | undefined, name: string) => `${ns ?? ''}/${name}`;

  getRaw(def: ResourceDef, ns: string | undefined, name: string): KubeObject | undefined {
    return this.state(def).objects.get(this.key(def.namespaced ? ns : undefined, name));
  }

  /** Sorted by namespace then name, as etcd keys are. */
  listRaw(def: ResourceDef, ns?: string): KubeObject[] {
    const all = [...this.state(def).objects.values()].filter((o) => ns === undefined || meta(o).namespace === ns);
    return all.sort((a, b) => this.key(meta(a).namespace, meta(a).name!).localeCompare(this.key(meta(b).namespace, meta(b).name!)));
  }

  subscribe(def: ResourceDef, l: Listener): () => void {
    const s = this.state(def);
    s.listeners.add(l);
    return () => s.listeners.delete(l);
  }

  /** Events after `rv`, or undefined when the history no longer reaches back that far. */
  eventsSince(def: ResourceDef, rv: number): StoredEvent[] | undefined {
    const s = this.state(def);
    if (rv < s.compactedRv) return undefined;
    return s.history.filter((e) => e.rv > rv);
  }

  oldestRv(def: ResourceDef): number {
    return this.state(def).compactedRv + 1;
  }

  /** Forget the event history: watches from any earlier resourceVersion get 410 Gone. */
  compact(def?: ResourceDef): void {
    const defs = def ? [def] : this.registry.defs;
    for (const d of defs) {
      const s = this.state(d);
      s.history.length = 0;
      s.compactedRv = this.rv;
    }
  }

  commit(def: ResourceDef, type: EventType, obj: KubeObject, prev?: KubeObject): KubeObject {
    const s = this.state(def);
    const rv = ++this.rv;
    const stored = clone(obj);
    stored.apiVersion = apiVersionOf(def);
    stored.kind = def.kind;
    meta(stored).resourceVersion = String(rv);
    const key = this.key(meta(stored).namespace, meta(stored).name!);
    if (type === 'DELETED') s.objects.delete(key);
    else s.objects.set(key, stored);
    const ev: StoredEvent = { rv, type, obj: stored, ...(prev ? { prev } : {}) };
    s.history.push(ev);
    while (s.history.length > this.historyLimit) s.compactedRv = s.history.shift()!.rv;
    for (const l of [...s.listeners]) l(ev);
    return stored;
  }

  // -------------------------------------------------------------------------
  // Request paths
  // -------------------------------------------------------------------------

  namespaceExists(ns: string): boolean {
    const def = this.registry.byKind('v1', 'Namespace');
    return def !== undefined && this.getRaw(def, undefined, ns) !== undefined;
  }

  /** Decodes the type of a request body against the endpoint, as the typed/unstructured decoders do. */
  private checkTypeMeta(def: ResourceDef, obj: KubeObject, raw: string): void {
    if (def.custom || obj.apiVersion !== undefined || obj.kind !== undefined) {
      if (!obj.kind) throw badRequest(`Object 'Kind' is missing in '${raw.trim()}'`);
      if (!obj.apiVersion) throw badRequest(`Object 'apiVersion' is missing in '${raw.trim()}'`);
    }
    const apiVersion = obj.apiVersion ?? apiVersionOf(def);
    const kind = obj.kind ?? def.kind;
    if (apiVersion !== apiVersionOf(def) || kind !== def.kind) {
      throw badRequest(`${kind} in version "${apiVersion.split('/').pop()}" cannot be handled as a ${def.kind}: the object provided is unrecognized (must be of type ${def.kind})`);
    }
    obj.apiVersion = apiVersion;
    obj.kind = kind;
    if (obj.metadata !== undefined && !isObject(obj.metadata)) throw badRequest('metadata must be an object');
    obj.metadata = (obj.metadata as ObjectMeta | undefined) ?? {};
  }

  private checkNamespace(def: ResourceDef, obj: KubeObject, urlNs: string | undefined): void {
    const m = meta(obj);
    if (!def.namespaced) {
      delete m.namespace;
      return;
    }
    if (!m.namespace) m.namespace = urlNs;
    else if (m.namespace !== urlNs) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
  }

  private validate(def: ResourceDef, obj: KubeObject, old: KubeObject | undefined): void {
    const errs = [...(old ? [] : nameErrors(def, meta(obj).name, obj)), ...(def.validate?.(obj, old) ?? [])];
    if (old && meta(obj).deletionTimestamp) {
      const added = (meta(obj).finalizers ?? []).filter((f) => !(meta(old).finalizers ?? []).includes(f));
      if (added.length > 0) errs.push({ type: 'FieldValueForbidden', field: 'metadata.finalizers', detail: 'no new finalizers can be added if the object is being deleted, found new finalizers ' + JSON.stringify(added) });
    }
    if (errs.length > 0) throw invalid({ group: def.group, kind: def.kind }, meta(obj).name ?? '', errs);
  }

  create(def: ResourceDef, urlNs: string | undefined, input: KubeObject, raw: string, opts: WriteOptions = {}): WriteResult {
    if (!isObject(input)) throw badRequest('the body of the request is not a JSON object');
    const obj = clone(input);
    this.checkTypeMeta(def, obj, raw);
    this.checkNamespace(def, obj, urlNs);
    const m = meta(obj);
    if (!m.name && m.generateName) {
      m.name = m.generateName + Array.from(randomBytes(5), (b) => GENERATE_NAME_ALPHABET[b % GENERATE_NAME_ALPHABET.length]).join('');
    }
    // NamespaceLifecycle's rule, as a plain store rule: nothing is created in a namespace that does not exist.
    if (def.namespaced && m.namespace && !this.namespaceExists(m.namespace)) throw notFound({ group: '', resource: 'namespaces' }, m.namespace);
    // System fields (rest.FillObjectMetaSystemFields) and PrepareForCreate.
    m.uid = randomUUID();
    m.creationTimestamp = nowSeconds();
    delete m.deletionTimestamp;
    delete m.deletionGracePeriodSeconds;
    if (def.generation) m.generation = 1;
    else delete m.generation;
    if (def.statusSubresource) {
      if (def.custom) delete obj.status;
      else obj.status = {};
    }
    def.defaults?.(obj);
    def.prepareForCreate?.(obj);
    this.validate(def, obj, undefined);
    // Storage.
    if (m.resourceVersion) throw new ApiStatusError(500, undefined, 'resourceVersion should not be set on objects to be created');
    if (this.getRaw(def, m.namespace, m.name!)) throw alreadyExists(gr(def), m.name!);
    if (opts.dryRun) return { code: 201, obj };
    return { code: 201, obj: this.commit(def, 'ADDED', obj) };
  }

  update(def: ResourceDef, urlNs: string | undefined, name: string, input: KubeObject, raw: string, opts: WriteOptions = {}): WriteResult {
    if (!isObject(input)) throw badRequest('the body of the request is not a JSON object');
    const obj = clone(input);
    this.checkTypeMeta(def, obj, raw);
    if (meta(obj).name !== name) throw badRequest(`the name of the object (${meta(obj).name ?? ''}) does not match the name on the URL (${name})`);
    this.checkNamespace(def, obj, urlNs);
    const old = this.getRaw(def, urlNs, name);
    if (!old) {
      if (def.allowCreateOnUpdate && !opts.subresource && !meta(obj).resourceVersion) return this.create(def, urlNs, obj, raw, opts);
      throw notFound(gr(def), name);
    }
    return this.applyUpdate(def, old, obj, opts);
  }

  /** The common tail of PUT and PATCH: preconditions, system fields, generation, no-op detection, finalization. */
  applyUpdate(def: ResourceDef, old: KubeObject, incoming: KubeObject, opts: WriteOptions = {}): WriteResult {
    const name = meta(old).name!;
    const im = meta(incoming);
    const om = meta(old);
    if (!im.resourceVersion) {
      if (!(def.allowUnconditionalUpdate ?? !def.custom)) {
        throw invalid({ group: def.group, kind: def.kind }, name, [
          { type: 'FieldValueInvalid', field: 'metadata.resourceVersion', value: 0, detail: 'must be specified for an update' },
        ]);
      }
    } else if (im.resourceVersion !== om.resourceVersion) {
      throw conflict(gr(def), name);
    }
    if (im.uid && im.uid !== om.uid) throw conflict(gr(def), name, `Precondition failed: UID in precondition: ${im.uid}, UID in object meta: ${om.uid}`);

    let next: KubeObject;
    if (opts.subresource === 'status') {
      next = clone(old);
      if (incoming.status === undefined) delete next.status;
      else next.status = clone(incoming.status);
    } else {
      next = clone(incoming);
      const m = meta(next);
      m.uid = om.uid;
      m.creationTimestamp = om.creationTimestamp;
      for (const f of ['deletionTimestamp', 'deletionGracePeriodSeconds', 'generation'] as const) {
        if (om[f] === undefined) delete m[f];
        else m[f] = om[f] as never;
      }
      if (def.statusSubresource) {
        if (old.status === undefined) delete next.status;
        else next.status = clone(old.status);
      }
      def.defaults?.(next);
      if (def.generation && !deepEqual(specPart(def, next), specPart(def, old))) m.generation = (om.generation ?? 0) + 1;
    }
    meta(next).resourceVersion = om.resourceVersion;
    next.apiVersion = apiVersionOf(def);
    next.kind = def.kind;
    this.validate(def, next, old);
    // An update that changes nothing is not written: no new resourceVersion, no watch event.
    if (deepEqual(next, old)) return { code: 200, obj: clone(old) };
    if (opts.dryRun) return { code: 200, obj: next };
    if (meta(next).deletionTimestamp && !(meta(next).finalizers ?? []).length) {
      return { code: 200, obj: this.commit(def, 'DELETED', next, old) };
    }
    return { code: 200, obj: this.commit(def, 'MODIFIED', next, old) };
  }

  patch(
    def: ResourceDef,
    urlNs: string | undefined,
    name: string,
    contentType: string,
    raw: string,
    opts: WriteOptions & { fieldManager?: string; force?: boolean },
  ): WriteResult {
    const accepted = [
      'application/json-patch+json',
      'application/merge-patch+json',
      ...(def.custom ? [] : ['application/strategic-merge-patch+json']),
      'application/apply-patch+yaml',
      'application/apply-patch+cbor',
    ];
    if (!accepted.includes(contentType) || contentType === 'application/apply-patch+cbor') throw unsupportedMediaType(accepted);
    const isApply = contentType === 'application/apply-patch+yaml';
    if (isApply && !opts.fieldManager) {
      throw invalid({ group: 'meta.k8s.io', kind: 'PatchOptions' }, '', [{ type: 'FieldValueRequired', field: 'fieldManager', detail: 'is required for apply patch' }]);
    }
    if (!isApply && opts.force !== undefined) {
      throw invalid({ group: 'meta.k8s.io', kind: 'PatchOptions' }, '', [{ type: 'FieldValueForbidden', field: 'force', detail: 'may not be specified for non-apply patch' }]);
    }
    if (raw.trim() === '') throw badRequest('the body of the request was empty');
    let body: unknown;
    try {
      body = isApply ? parseYaml(raw) : JSON.parse(raw);
    } catch (err) {
      throw badRequest(`error decoding patch: ${(err as Error).message}`);
    }
    const old = this.getRaw(def, urlNs, name);
    if (isApply) {
      if (!isObject(body)) throw badRequest('error decoding YAML: the apply configuration is not an object');
      const applied = clone(body) as KubeObject;
      this.checkTypeMeta(def, applied, raw);
      if (meta(applied).name !== undefined && meta(applied).name !== name) {
        throw badRequest(`the name of the object (${String(meta(applied).name)}) does not match the name on the URL (${name})`);
      }
      if (!old) {
        if (opts.subresource) throw notFound(gr(def), name);
        meta(applied).name = name;
        return this.create(def, urlNs, applied, raw, opts);
      }
      body = applied;
    }
    if (!old) throw notFound(gr(def), name);
    let patched: unknown;
    switch (contentType) {
      case 'application/json-patch+json':
        patched = jsonPatch(old, body);
        break;
      case 'application/strategic-merge-patch+json':
        if (!isObject(body)) throw badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}');
        patched = strategicMergePatch(old, body, def.strategicMergeKeys ?? {});
        break;
      default:
        if (!isObject(body)) throw badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}');
        patched = mergePatch(old, body);
    }
    if (!isObject(patched)) throw badRequest('the patched object is not a JSON object');
    const obj = patched as KubeObject;
    if (!isObject(obj.metadata)) obj.metadata = {};
    if (obj.apiVersion !== apiVersionOf(def) || obj.kind !== def.kind) throw badRequest(`the patch changes the object's type (${String(obj.apiVersion)}, ${String(obj.kind)})`);
    if (meta(obj).name !== name) throw badRequest(`the name of the object (${String(meta(obj).name ?? '')}) does not match the name on the URL (${name})`);
    if (def.namespaced && meta(obj).namespace !== urlNs) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    // A patch is unconditional unless it names a resourceVersion itself.
    meta(obj).resourceVersion ??= meta(old).resourceVersion;
    if (meta(obj).resourceVersion === '') meta(obj).resourceVersion = meta(old).resourceVersion;
    return this.applyUpdate(def, old, obj, opts);
  }

  delete(
    def: ResourceDef,
    urlNs: string | undefined,
    name: string,
    opts: { preconditions?: { uid?: string; resourceVersion?: string }; dryRun?: boolean } = {},
  ): { code: number; body: KubeObject | Status } {
    const old = this.getRaw(def, urlNs, name);
    if (!old) throw notFound(gr(def), name);
    const om = meta(old);
    const pre = opts.preconditions ?? {};
    if (pre.uid && pre.uid !== om.uid) throw conflict(gr(def), name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${om.uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== om.resourceVersion) {
      throw conflict(gr(def), name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${om.resourceVersion}`);
    }
    if (def.kind === 'Namespace' && def.group === '') return this.deleteNamespace(def, old, opts.dryRun);
    if ((om.finalizers ?? []).length > 0) {
      // Graceful deletion: mark, keep until the finalizers are removed.
      if (om.deletionTimestamp || opts.dryRun) return { code: 200, body: clone(old) };
      const next = clone(old);
      meta(next).deletionTimestamp = nowSeconds();
      meta(next).deletionGracePeriodSeconds = 0;
      if ((om.generation ?? 0) > 0) meta(next).generation = om.generation! + 1;
      return { code: 200, body: this.commit(def, 'MODIFIED', next, old) };
    }
    const deleted = opts.dryRun ? clone(old) : this.commit(def, 'DELETED', old, old);
    if (def.returnDeletedObject) return { code: 200, body: deleted };
    return {
      code: 200,
      body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, ...(def.group ? { group: def.group } : {}), kind: def.plural, uid: om.uid! }, code: 200 },
    };
  }

  /** The namespace goes Terminating, its content is removed (finalizers ignored), then the namespace itself. */
  private deleteNamespace(def: ResourceDef, old: KubeObject, dryRun?: boolean): { code: number; body: KubeObject } {
    const next = clone(old);
    meta(next).deletionTimestamp ??= nowSeconds();
    next.status = { ...(isObject(next.status) ? next.status : {}), phase: 'Terminating' };
    if (dryRun) return { code: 200, body: next };
    const terminating = meta(old).deletionTimestamp ? clone(old) : this.commit(def, 'MODIFIED', next, old);
    const ns = meta(old).name!;
    for (const d of this.registry.defs.filter((x) => x.namespaced && !x.virtual)) {
      for (const o of this.listRaw(d, ns)) this.commit(d, 'DELETED', o, o);
    }
    this.commit(def, 'DELETED', terminating, terminating);
    return { code: 200, body: terminating };
  }

  // -------------------------------------------------------------------------
  // Test back door
  // -------------------------------------------------------------------------

  /** Create or replace without admission, preconditions or status rules; defaults and system fields still apply. */
  put(input: KubeObject): KubeObject {
    const def = this.registry.byKind(String(input.apiVersion), String(input.kind));
    if (!def || def.virtual) throw new Error(`fake-apiserver: no stored resource for apiVersion ${String(input.apiVersion)} kind ${String(input.kind)}`);
    const obj = clone(input);
    obj.metadata = isObject(obj.metadata) ? obj.metadata : {};
    const m = meta(obj);
    if (!m.name) throw new Error('fake-apiserver: put() needs metadata.name');
    if (def.namespaced) {
      m.namespace ||= 'default';
      if (!this.namespaceExists(m.namespace)) this.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: m.namespace } });
    } else delete m.namespace;
    const old = this.getRaw(def, m.namespace, m.name);
    def.defaults?.(obj);
    if (old) {
      const om = meta(old);
      m.uid ??= om.uid;
      m.creationTimestamp ??= om.creationTimestamp;
      // The generation follows the content unless the caller set a different one on purpose.
      if (def.generation && (m.generation === undefined || m.generation === om.generation)) {
        m.generation = (om.generation ?? 1) + (deepEqual(specPart(def, obj), specPart(def, old)) ? 0 : 1);
      }
      m.resourceVersion = om.resourceVersion;
      if (deepEqual(obj, old)) return clone(old);
      if (m.deletionTimestamp && !(m.finalizers ?? []).length) return clone(this.commit(def, 'DELETED', obj, old));
      return clone(this.commit(def, 'MODIFIED', obj, old));
    }
    m.uid ??= randomUUID();
    m.creationTimestamp ??= nowSeconds();
    if (def.generation) m.generation ??= 1;
    if (obj.status === undefined) def.prepareForCreate?.(obj);
    delete m.resourceVersion;
    return clone(this.commit(def, 'ADDED', obj));
  }

  /** Remove at once (finalizers ignored); false when absent. */
  remove(def: ResourceDef, ns: string | undefined, name: string): boolean {
    const old = this.getRaw(def, ns, name);
    if (!old) return false;
    if (def.kind === 'Namespace' && def.group === '') {
      for (const d of this.registry.defs.filter((x) => x.namespaced && !x.virtual)) for (const o of this.listRaw(d, name)) this.commit(d, 'DELETED', o, o);
    }
    this.commit(def, 'DELETED', old, old);
    return true;
  }
}
