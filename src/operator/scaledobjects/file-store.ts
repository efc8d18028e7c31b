// KEDA's custom resources from a YAML file, live: exactly what a user would `kubectl apply`
// (ScaledObjects, TriggerAuthentications, ClusterTriggerAuthentications and the Secrets they
// point at), validated as a whole. A bad edit keeps the last good set, like certificates do.
//
// Secret values live in memory only: no message or log line built here ever contains one.
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { LineCounter, isScalar, parseAllDocuments, type Document } from 'yaml';
import { ReloadableFiles, type ReloadOptions } from '../../tls/reloadable.js';
import type { AuthParams, AuthenticationRef, ScaleTargetRef, ScaledObject, ScaledObjectStore, Trigger } from './types.js';

export const KEDA_API_VERSION = 'keda.sh/v1alpha1';

export const SCALED_OBJECT_DEFAULTS = Object.freeze({ pollingInterval: 30, cooldownPeriod: 300, minReplicaCount: 0, maxReplicaCount: 100 });

export interface FileScaledObjectStoreOptions {
  /** Where ClusterTriggerAuthentications find their Secrets: KEDA's own namespace. Default `keda`. */
  clusterObjectNamespace?: string;
  /** Debounce and periodic re-check of the file watcher. */
  watch?: ReloadOptions;
}

export interface SecretTargetRef {
  parameter: string;
  name: string;
  key: string;
}

export interface ParsedAuth {
  secretTargetRef: SecretTargetRef[];
}

/** One parse of the file: what the store serves until the next good write. */
export interface ParsedManifests {
  /** `namespace/name` -> the object, in file order; uid and generation are the store's business. */
  scaledObjects: Map<string, { namespace: string; name: string; spec: ScaledObject['spec'] }>;
  /** `namespace/name` -> TriggerAuthentication. */
  triggerAuthentications: Map<string, ParsedAuth>;
  /** `name` -> ClusterTriggerAuthentication. */
  clusterTriggerAuthentications: Map<string, ParsedAuth>;
  /** `namespace/name` -> key -> decoded value. Never logged. */
  secrets: Map<string, Map<string, string>>;
  /** Warnings and debug lines, logged only once the whole file has been accepted. */
  notes: { level: 'warn' | 'debug'; msg: string }[];
}

type Obj = Record<string, unknown>;
type Path = (string | number)[];

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const METRIC_TYPES = ['AverageValue', 'Value', 'Utilization'] as const;
const AUTH_KINDS = ['TriggerAuthentication', 'ClusterTriggerAuthentication'] as const;
const INT32_MAX = 2 ** 31 - 1;

/** A value quoted in a message, for fields that are never secret (kinds, enum values, names). */
const quote = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v) : typeof v);

/** What is wrong with the file: document, object and field, never a secret value. */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

/** Reads one object (document or List item), every error prefixed with where it is. */
class ObjectReader {
  label: string;
  constructor(
    readonly at: string,
    kind: string,
    private readonly doc: Document.Parsed,
    private readonly path: Path,
    private readonly notes: ParsedManifests['notes'],
  ) {
    this.label = kind === '' ? at : `${at} (${kind})`;
  }

  named(kind: string, namespace: string | undefined, name: string): void {
    this.label = `${this.at} (${kind} ${namespace === undefined ? name : `${namespace}/${name}`})`;
  }

  fail(field: string, problem: string): never {
    throw new ManifestError(`${this.label}: ${field} ${problem}`);
  }

  warn(msg: string): void {
    this.notes.push({ level: 'warn', msg: `${this.label}: ${msg}` });
  }

  debug(msg: string): void {
    this.notes.push({ level: 'debug', msg: `${this.label}: ${msg}` });
  }

  mapping(v: unknown, field: string, required: boolean): Obj | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(field, 'is required');
      return undefined;
    }
    if (!isObj(v)) this.fail(field, 'must be a mapping');
    return v;
  }

  string(v: unknown, field: string, required: true): string;
  string(v: unknown, field: string, required: false): string | undefined;
  string(v: unknown, field: string, required: boolean): string | undefined {
    if (v === undefined || v === null || v === '') {
      if (required) this.fail(field, 'is required');
      return undefined;
    }
    if (typeof v !== 'string') this.fail(field, 'must be a string');
    return v;
  }

  int(v: unknown, field: string, dflt: number, min: number): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > INT32_MAX) this.fail(field, `must be an integer >= ${min}`);
    return v;
  }

  list(v: unknown, field: string): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) this.fail(field, 'must be a list');
    return v;
  }

  /** A string map the API server would insist on (trigger metadata, stringData): numbers and booleans are coerced, with a warning. */
  stringMap(v: Obj, field: string, fieldPath: Path): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) {
      if (typeof val === 'string') out[k] = val;
      else if (typeof val === 'number' || typeof val === 'boolean' || typeof val === 'bigint') {
        // The text as written (`0.50` stays `0.50`), so the coercion is what the user meant.
        const node = this.doc.getIn([...this.path, ...fieldPath, k], true);
        out[k] = isScalar(node) && typeof node.source === 'string' ? node.source : String(val);
        this.warn(`${field}.${k} is a ${typeof val}, but Kubernetes requires a string here (quote it); used as a string`);
      } else this.fail(`${field}.${k}`, 'must be a string');
    }
    return out;
  }
}

function objectName(r: ObjectReader, field: string, value: unknown, pattern: RegExp, max: number, what: string): string {
  const s = r.string(value, field, true);
  if (s.length > max || !pattern.test(s)) r.fail(field, `${quote(s)} is not a valid ${what}`);
  return s;
}

/** Parses and validates the whole file; throws ManifestError naming document, object and field. */
export function parseKedaManifests(text: string): ParsedManifests {
  const out: ParsedManifests = { scaledObjects: new Map(), triggerAuthentications: new Map(), clusterTriggerAuthentications: new Map(), secrets: new Map(), notes: [] };
  const lineCounter = new LineCounter();
  // prettyErrors off: the pretty form quotes the offending source line, which may be a secret.
  // Merge keys (`<<: *defaults`) on, as kubectl's YAML reader has them.
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, merge: true });
  let seen = 0;
  const origins = new Map<string, string>();
  for (const [i, doc] of docs.entries()) {
    const at = `document ${i + 1}`;
    const err = doc.errors[0];
    if (err) {
      const { line, col } = lineCounter.linePos(err.pos[0]);
      throw new ManifestError(`${at}: YAML syntax error at line ${line}, column ${col}: ${err.message.split('\n')[0]} (${err.code})`);
    }
    let raw: unknown;
    try {
      raw = doc.toJS();
    } catch (e) {
      throw new ManifestError(`${at}: ${(e as Error).message.split('\n')[0]}`);
    }
    if (raw === null || raw === undefined) continue; // an empty document, e.g. a trailing `---`
    seen++;
    visit(raw, at, doc, [], out, origins);
  }
  // A file caught mid-write by a non-atomic writer reads empty: never take that for "no objects".
  if (seen === 0) throw new ManifestError('the file holds no Kubernetes object (for an empty set, write `apiVersion: v1`, `kind: List`, `items: []`)');
  return out;
}

const READERS: Record<string, (r: ObjectReader, raw: Obj, out: ParsedManifests) => { kind: string; namespace: string; name: string }> = {
  [`${KEDA_API_VERSION}/ScaledObject`]: readScaledObject,
  [`${KEDA_API_VERSION}/TriggerAuthentication`]: readAuth,
  [`${KEDA_API_VERSION}/ClusterTriggerAuthentication`]: readAuth,
  'v1/Secret': readSecret,
};

/** Where each object was first defined (`Kind namespace/name` -> `document N`), to name both sides of a duplicate. */
type Origins = Map<string, string>;

function visit(raw: unknown, at: string, doc: Document.Parsed, path: Path, out: ParsedManifests, origins: Origins): void {
  if (!isObj(raw)) throw new ManifestError(`${at}: expected a Kubernetes object (a mapping with apiVersion and kind)`);
  const probe = new ObjectReader(at, '', doc, path, out.notes);
  const kind = probe.string(raw.kind, 'kind', true);
  const r = new ObjectReader(at, kind, doc, path, out.notes);
  const apiVersion = r.string(raw.apiVersion, 'apiVersion', true);

  if (kind === 'List' || (kind.endsWith('List') && Array.isArray(raw.items))) {
    const items = r.list(raw.items, 'items') ?? [];
    items.forEach((item, j) => visit(item, `${at}, items[${j}]`, doc, [...path, 'items', j], out, origins));
    return;
  }

  const read = READERS[`${apiVersion}/${kind}`];
  if (read) {
    const o = read(r, raw, out);
    const id = `${o.kind} ${o.namespace === '' ? o.name : `${o.namespace}/${o.name}`}`;
    const first = origins.get(id);
    if (first !== undefined) r.fail('metadata.name', `duplicates ${first}: ${id} is defined twice`);
    origins.set(id, at);
    return;
  }

  if (apiVersion.startsWith('keda.sh/') || ['ScaledObject', 'TriggerAuthentication', 'ClusterTriggerAuthentication'].includes(kind)) {
    // KEDA's own kinds in a version or flavour we do not serve: likely a mistake, so say it louder.
    r.warn(`ignored: ${apiVersion} ${kind} is not supported (only ${KEDA_API_VERSION} ScaledObject, TriggerAuthentication and ClusterTriggerAuthentication)`);
    return;
  }
  r.debug(`ignored: ${apiVersion} ${kind} is not a kind this store reads`);
}

function readMetadata(r: ObjectReader, raw: Obj, kind: string, namespaced: boolean): { namespace: string; name: string } {
  const metadata = r.mapping(raw.metadata, 'metadata', true) as Obj;
  const name = objectName(r, 'metadata.name', metadata.name, DNS_SUBDOMAIN, 253, 'object name (lowercase RFC 1123 subdomain)');
  if (!namespaced) {
    r.named(kind, undefined, name);
    return { namespace: '', name };
  }
  const namespace = metadata.namespace === undefined || metadata.namespace === null ? 'default' : objectName(r, 'metadata.namespace', metadata.namespace, DNS_LABEL, 63, 'namespace (lowercase RFC 1123 label)');
  r.named(kind, namespace, name);
  return { namespace, name };
}

function readScaledObject(r: ObjectReader, raw: Obj, out: ParsedManifests) {
  const { namespace, name } = readMetadata(r, raw, 'ScaledObject', true);
  const key = `${namespace}/${name}`;
  if (out.scaledObjects.has(key)) return { kind: 'ScaledObject', namespace, name };
  const spec = r.mapping(raw.spec, 'spec', true) as Obj;

  const ref = r.mapping(spec.scaleTargetRef, 'spec.scaleTargetRef', true) as Obj;
  const scaleTargetRef: ScaleTargetRef = { name: r.string(ref.name, 'spec.scaleTargetRef.name', true) };
  const refKind = r.string(ref.kind, 'spec.scaleTargetRef.kind', false);
  const refApiVersion = r.string(ref.apiVersion, 'spec.scaleTargetRef.apiVersion', false);
  if (refKind !== undefined) scaleTargetRef.kind = refKind;
  if (refApiVersion !== undefined) scaleTargetRef.apiVersion = refApiVersion;

  const d = SCALED_OBJECT_DEFAULTS;
  const pollingInterval = r.int(spec.pollingInterval, 'spec.pollingInterval', d.pollingInterval, 1);
  const cooldownPeriod = r.int(spec.cooldownPeriod, 'spec.cooldownPeriod', d.cooldownPeriod, 0);
  const minReplicaCount = r.int(spec.minReplicaCount, 'spec.minReplicaCount', d.minReplicaCount, 0);
  const maxReplicaCount = r.int(spec.maxReplicaCount, 'spec.maxReplicaCount', d.maxReplicaCount, 1);
  if (minReplicaCount > maxReplicaCount) r.fail('spec.minReplicaCount', `(${minReplicaCount}) must not be greater than spec.maxReplicaCount (${maxReplicaCount})`);

  const rawTriggers = r.list(spec.triggers, 'spec.triggers');
  if (rawTriggers === undefined) r.fail('spec.triggers', 'is required');
  if (rawTriggers.length === 0) r.fail('spec.triggers', 'must hold at least one trigger');
  const names = new Map<string, number>();
  const triggers = rawTriggers.map((t, i) => readTrigger(r, t, i, names));

  out.scaledObjects.set(key, { namespace, name, spec: { scaleTargetRef, pollingInterval, cooldownPeriod, minReplicaCount, maxReplicaCount, triggers } });
  return { kind: 'ScaledObject', namespace, name };
}

function readTrigger(r: ObjectReader, raw: unknown, i: number, names: Map<string, number>): Trigger {
  const at = `spec.triggers[${i}]`;
  const t = r.mapping(raw, at, true) as Obj;
  const type = r.string(t.type, `${at}.type`, true);
  const metadata = r.stringMap(r.mapping(t.metadata, `${at}.metadata`, true) as Obj, `${at}.metadata`, ['spec', 'triggers', i, 'metadata']);
  const trigger: Trigger = { type, metadata };

  const name = r.string(t.name, `${at}.name`, false);
  if (name !== undefined) {
    const first = names.get(name);
    if (first !== undefined) r.fail(`${at}.name`, `${quote(name)} is already used by spec.triggers[${first}]; trigger names must be unique`);
    names.set(name, i);
    trigger.name = name;
  }

  const metricType = r.string(t.metricType, `${at}.metricType`, false);
  if (metricType !== undefined) {
    if (!(METRIC_TYPES as readonly string[]).includes(metricType)) r.fail(`${at}.metricType`, `must be one of ${METRIC_TYPES.join(', ')} (got ${quote(metricType)})`);
    trigger.metricType = metricType as Trigger['metricType'];
  }

  if (t.useCachedMetrics !== undefined && t.useCachedMetrics !== null) {
    if (typeof t.useCachedMetrics !== 'boolean') r.fail(`${at}.useCachedMetrics`, 'must be true or false');
    if (t.useCachedMetrics && ['cpu', 'memory', 'cron'].includes(type)) r.fail(`${at}.useCachedMetrics`, `is not supported for the ${quote(type)} trigger`);
    trigger.useCachedMetrics = t.useCachedMetrics;
  }

  const authRef = r.mapping(t.authenticationRef, `${at}.authenticationRef`, false);
  if (authRef !== undefined) {
    const ref: AuthenticationRef = { name: r.string(authRef.name, `${at}.authenticationRef.name`, true) };
    const kind = r.string(authRef.kind, `${at}.authenticationRef.kind`, false);
    if (kind !== undefined) {
      if (!(AUTH_KINDS as readonly string[]).includes(kind)) r.fail(`${at}.authenticationRef.kind`, `must be one of ${AUTH_KINDS.join(', ')} (got ${quote(kind)})`);
      ref.kind = kind as AuthenticationRef['kind'];
    }
    trigger.authenticationRef = ref;
  }
  return trigger;
}

function readAuth(r: ObjectReader, raw: Obj, out: ParsedManifests) {
  const kind = raw.kind as 'TriggerAuthentication' | 'ClusterTriggerAuthentication';
  const cluster = kind === 'ClusterTriggerAuthentication';
  const { namespace, name } = readMetadata(r, raw, kind, !cluster);
  const map = cluster ? out.clusterTriggerAuthentications : out.triggerAuthentications;
  const key = cluster ? name : `${namespace}/${name}`;
  if (map.has(key)) return { kind, namespace, name };
  const spec = r.mapping(raw.spec, 'spec', true) as Obj;

  const refs = (r.list(spec.secretTargetRef, 'spec.secretTargetRef') ?? []).map((item, i): SecretTargetRef => {
    const at = `spec.secretTargetRef[${i}]`;
    const ref = r.mapping(item, at, true) as Obj;
    return { parameter: r.string(ref.parameter, `${at}.parameter`, true), name: r.string(ref.name, `${at}.name`, true), key: r.string(ref.key, `${at}.key`, true) };
  });
  const unsupported = Object.keys(spec).filter((k) => k !== 'secretTargetRef' && spec[k] !== null && spec[k] !== undefined);
  if (unsupported.length > 0) {
    r.warn(`spec.${unsupported.join(', spec.')} ${unsupported.length === 1 ? 'is' : 'are'} not supported here (only spec.secretTargetRef is resolved); parameters from ${unsupported.length === 1 ? 'it' : 'them'} will be missing`);
  }
  map.set(key, { secretTargetRef: refs });
  return { kind, namespace, name };
}

function readSecret(r: ObjectReader, raw: Obj, out: ParsedManifests) {
  const { namespace, name } = readMetadata(r, raw, 'Secret', true);
  const key = `${namespace}/${name}`;
  if (out.secrets.has(key)) return { kind: 'Secret', namespace, name };
  const values = new Map<string, string>();
  const data = r.mapping(raw.data, 'data', false);
  for (const [k, v] of Object.entries(data ?? {})) {
    if (k.length > 253 || !SECRET_KEY.test(k)) r.fail(`data.${k}`, 'is not a valid key (letters, digits, "-", "_" and "." only)');
    if (typeof v !== 'string') r.fail(`data.${k}`, 'must be a base64 string');
    const compact = v.replace(/[\r\n]/g, '');
    if (!BASE64.test(compact)) r.fail(`data.${k}`, 'is not valid base64 (use stringData for plain text)');
    values.set(k, Buffer.from(compact, 'base64').toString('utf8'));
  }
  const stringData = r.mapping(raw.stringData, 'stringData', false);
  if (stringData) {
    // As the API server does: stringData is merged over data, key by key.
    for (const [k, v] of Object.entries(r.stringMap(stringData, 'stringData', ['stringData']))) {
      if (k.length > 253 || !SECRET_KEY.test(k)) r.fail(`stringData.${k}`, 'is not a valid key (letters, digits, "-", "_" and "." only)');
      values.set(k, v);
    }
  }
  out.secrets.set(key, values);
  return { kind: 'Secret', namespace, name };
}

// A fixed namespace for the name-based UUIDs below (RFC 9562 version 5 layout).
const UID_NAMESPACE = Buffer.from('3b1e6f0c5d2a4e8f9a7c1d2e3f405162', 'hex');

/** A UUID derived from namespace/name only: the same object keeps its uid across reloads and restarts. */
export function scaledObjectUid(namespace: string, name: string): string {
  const h = createHash('sha1').update(UID_NAMESPACE).update(`${KEDA_API_VERSION}/ScaledObject/${namespace}/${name}`).digest();
  h.writeUInt8((h.readUInt8(6) & 0x0f) | 0x50, 6);
  h.writeUInt8((h.readUInt8(8) & 0x3f) | 0x80, 8);
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

interface State {
  parsed: ParsedManifests;
  objects: Map<string, ScaledObject>;
}

export class FileScaledObjectStore implements ScaledObjectStore {
  private readonly file: ReloadableFiles<ParsedManifests>;
  private readonly clusterObjectNamespace: string;
  private readonly watchOptions: ReloadOptions;
  private readonly listeners: (() => void)[] = [];
  /** Last spec and generation of every object ever seen, removed ones included, so a generation never goes back. */
  private readonly history = new Map<string, { spec: ScaledObject['spec']; generation: number }>();
  private state: State | undefined;

  constructor(
    readonly path: string,
    private readonly log: Logger,
    opts: FileScaledObjectStoreOptions = {},
  ) {
    this.clusterObjectNamespace = opts.clusterObjectNamespace ?? 'keda';
    this.watchOptions = opts.watch ?? {};
    this.file = new ReloadableFiles(
      'ScaledObjects file',
      [path],
      ([text]) => parseKedaManifests(text as string),
      log,
      { onLoaded: (parsed) => this.apply(parsed) },
    );
    this.file.onChange(() => this.notify());
  }

  /** Loads the file (throwing the message that names what is wrong), then follows it. Listeners already registered are called once. */
  async start(): Promise<void> {
    await this.file.start(this.watchOptions);
    this.notify();
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  /** The ScaledObjects in file order. Objects are frozen: treat them as read-only snapshots. */
  list(): ScaledObject[] {
    return [...this.current.objects.values()];
  }

  get(namespace: string, name: string): ScaledObject | undefined {
    return this.current.objects.get(`${namespace}/${name}`);
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  resolveAuth(namespace: string, ref: AuthenticationRef): AuthParams {
    const { parsed } = this.current;
    const kind = ref.kind ?? 'TriggerAuthentication';
    let auth: ParsedAuth | undefined;
    let label: string;
    let secretNs: string;
    if (kind === 'ClusterTriggerAuthentication') {
      label = `ClusterTriggerAuthentication ${ref.name}`;
      auth = parsed.clusterTriggerAuthentications.get(ref.name);
      secretNs = this.clusterObjectNamespace;
    } else if (kind === 'TriggerAuthentication') {
      label = `TriggerAuthentication ${namespace}/${ref.name}`;
      auth = parsed.triggerAuthentications.get(`${namespace}/${ref.name}`);
      secretNs = namespace;
    } else {
      throw new Error(`authenticationRef ${ref.name}: kind ${quote(kind)} is not TriggerAuthentication or ClusterTriggerAuthentication`);
    }
    if (!auth) throw new Error(`${label} not found`);

    const params: AuthParams = {};
    const problems: string[] = [];
    for (const t of auth.secretTargetRef) {
      const secret = parsed.secrets.get(`${secretNs}/${t.name}`);
      const value = secret?.get(t.key);
      if (!secret) problems.push(`secret ${secretNs}/${t.name} not found`);
      else if (value === undefined) problems.push(`secret ${secretNs}/${t.name} has no key ${JSON.stringify(t.key)}`);
      else params[t.parameter] = value;
    }
    if (problems.length > 0) throw new Error(`${label}: ${[...new Set(problems)].join('; ')}`);
    return params;
  }

  private get current(): State {
    if (!this.state) throw new Error(`${this.file.name} ${this.path} has not been loaded (call start() first)`);
    return this.state;
  }

  /** A new good parse: assign uids and generations, then log what was noted while parsing. */
  private apply(parsed: ParsedManifests): void {
    const objects = new Map<string, ScaledObject>();
    for (const [key, o] of parsed.scaledObjects) {
      const prev = this.history.get(key);
      const generation = !prev ? 1 : isDeepStrictEqual(prev.spec, o.spec) ? prev.generation : prev.generation + 1;
      this.history.set(key, { spec: o.spec, generation });
      objects.set(key, deepFreeze({ namespace: o.namespace, name: o.name, uid: scaledObjectUid(o.namespace, o.name), generation, spec: o.spec }));
    }
    this.state = { parsed, objects };
    for (const n of parsed.notes) this.log[n.level]({ material: this.file.name, file: this.path }, n.msg);
  }

  private notify(): void {
    // A throwing listener must not break the reload chain (nor the other listeners).
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.log.error({ material: this.file.name, err: (err as Error).message }, 'a ScaledObject store listener failed');
      }
    }
  }
}
