// KEDA's custom resources from a YAML file, live: exactly what a user would `kubectl apply`
// (ScaledObjects, TriggerAuthentications, ClusterTriggerAuthentications and the Secrets they
// point at), validated as a whole. A bad edit keeps the last good set, like certificates do.
//
// Secret values live in memory only: no message or log line built here ever contains one.
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { ReloadableFiles, type ReloadOptions } from '../../tls/reloadable.js';
import { KEDA_API_VERSION, ManifestError, ObjectReader, readScaledObject, readSecret, readTriggerAuthentication, type Note, type Path, type ScaledObjectManifest } from './manifest.js';
import type { AuthLookup, AuthSpec, AuthenticationRef, ScaledObject, ScaledObjectStore } from './types.js';

export { KEDA_API_VERSION, ManifestError } from './manifest.js';

export interface FileScaledObjectStoreOptions {
  /** Where ClusterTriggerAuthentications find their Secrets: KEDA's own namespace. Default `keda`. */
  clusterObjectNamespace?: string;
  /** Debounce and periodic re-check of the file watcher. */
  watch?: ReloadOptions;
}

/** One parse of the file: what the store serves until the next good write. */
export interface ParsedManifests {
  /** `namespace/name` -> the object, in file order; uid and generation are the store's business. */
  scaledObjects: Map<string, ScaledObjectManifest>;
  /** `namespace/name` -> TriggerAuthentication. */
  triggerAuthentications: Map<string, AuthSpec>;
  /** `name` -> ClusterTriggerAuthentication. */
  clusterTriggerAuthentications: Map<string, AuthSpec>;
  /** `namespace/name` -> key -> decoded value. Never logged. */
  secrets: Map<string, Map<string, string>>;
  /** Warnings and debug lines, logged only once the whole file has been accepted. */
  notes: Note[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

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

type Read = (r: ObjectReader, raw: Obj, out: ParsedManifests) => { kind: string; namespace: string; name: string };
const readAuthInto: Read = (r, raw, out) => {
  const a = readTriggerAuthentication(r, raw);
  const map = a.kind === 'ClusterTriggerAuthentication' ? out.clusterTriggerAuthentications : out.triggerAuthentications;
  const key = a.namespace === '' ? a.name : `${a.namespace}/${a.name}`;
  if (!map.has(key)) map.set(key, a.auth);
  return a;
};
const READERS: Record<string, Read> = {
  [`${KEDA_API_VERSION}/ScaledObject`]: (r, raw, out) => {
    const so = readScaledObject(r, raw);
    const key = `${so.namespace}/${so.name}`;
    if (!out.scaledObjects.has(key)) out.scaledObjects.set(key, so);
    return { kind: 'ScaledObject', ...so };
  },
  [`${KEDA_API_VERSION}/TriggerAuthentication`]: readAuthInto,
  [`${KEDA_API_VERSION}/ClusterTriggerAuthentication`]: readAuthInto,
  'v1/Secret': (r, raw, out) => {
    const secret = readSecret(r, raw);
    const key = `${secret.namespace}/${secret.name}`;
    if (!out.secrets.has(key)) out.secrets.set(key, secret.values);
    return { kind: 'Secret', ...secret };
  },
};

/** Where each object was first defined (`Kind namespace/name` -> `document N`), to name both sides of a duplicate. */
type Origins = Map<string, string>;

function visit(raw: unknown, at: string, doc: Document.Parsed, path: Path, out: ParsedManifests, origins: Origins): void {
  if (!isObj(raw)) throw new ManifestError(`${at}: expected a Kubernetes object (a mapping with apiVersion and kind)`);
  const probe = new ObjectReader(at, '', out.notes);
  const kind = probe.string(raw.kind, 'kind', true);
  const r = new ObjectReader(at, kind, out.notes, { doc, path });
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
  private revision = 0;

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

  lookupAuth(namespace: string, ref: AuthenticationRef): AuthLookup {
    const { parsed } = this.current;
    if (ref.kind === 'ClusterTriggerAuthentication') {
      const label = `ClusterTriggerAuthentication ${ref.name}`;
      const spec = parsed.clusterTriggerAuthentications.get(ref.name);
      if (!spec) throw new Error(`${label} not found`);
      return { label, secretNamespace: this.clusterObjectNamespace, spec };
    }
    const label = `TriggerAuthentication ${namespace}/${ref.name}`;
    const spec = parsed.triggerAuthentications.get(`${namespace}/${ref.name}`);
    if (!spec) throw new Error(`${label} not found`);
    return { label, secretNamespace: namespace, spec };
  }

  /** Every reload may have changed authentication objects or Secrets: one version for all of them. */
  dependencyVersion(): string {
    return String(this.revision);
  }

  /** A reload is announced by onChange; there is nothing finer to announce. */
  onDependencyChange(): void {}

  readSecret(namespace: string, name: string): Promise<Map<string, string> | undefined> {
    return Promise.resolve(this.current.parsed.secrets.get(`${namespace}/${name}`));
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
      objects.set(key, deepFreeze({ namespace: o.namespace, name: o.name, uid: scaledObjectUid(o.namespace, o.name), generation, spec: o.spec, unsupported: o.unsupported }));
    }
    this.state = { parsed, objects };
    this.revision++;
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
