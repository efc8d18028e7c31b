// The HTTPS front of the fake kube-apiserver: authentication (bearer tokens, client certificates,
// impersonation), authorization, request info as Kubernetes derives it, the REST verbs, watch
// streams, discovery, the review APIs, the TokenRequest subresource, and fault injection.
import { randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { createCA, issueCertificate, type CertificateBundle } from '../../../src/certs/x509.js';
import { clone, isObject, jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { BUILTIN_RESOURCES, ResourceRegistry, apiVersionOf, labelSelectorString, nowSeconds, type ResourceDef } from './resources.js';
import { parseFieldSelector, parseLabelSelector, type Matcher } from './selectors.js';
import {
  ApiStatusError,
  badRequest,
  conflict,
  forbidden,
  gone,
  invalid,
  methodNotAllowed,
  notFound,
  resourceNotFound,
  statusFor,
  unauthorized,
  unsupportedMediaType,
} from './status.js';
import { Store, gr, type StoredEvent } from './store.js';
import type {
  ActiveWatch,
  Authorizer,
  Fault,
  KubeObject,
  RecordedRequest,
  RequestAttributes,
  SubjectAccessReviewSpec,
  SubjectAccessReviewStatus,
  TokenRequestAnswer,
  TokenRequestInput,
  TokenReviewSpec,
  TokenReviewStatus,
  UserInfo,
} from './types.js';

export interface FakeApiServerOptions {
  /** Bearer tokens accepted besides the admin token (system:authenticated is added to their groups). */
  tokens?: Record<string, UserInfo>;
  /** Decides every caller's request; default: any authenticated user may do anything, anonymous only discovery and health. */
  authorizer?: Authorizer;
  /** Watch events kept per resource; a watch from before them gets 410 Gone. Default 200. */
  historyLimit?: number;
  /** How often a watch with allowWatchBookmarks=true gets a BOOKMARK. Default 60 s, as the watch cache. */
  bookmarkIntervalMs?: number;
  /** Watch duration when the client gives no timeoutSeconds. Default 1800 s (--min-request-timeout). */
  watchTimeoutSeconds?: number;
  /** How long a watch from a resourceVersion in the future waits for it before "Too large resource version". Default 3 s. */
  tooLargeResourceVersionWaitMs?: number;
  /** Audiences of the API server's own tokens. Default ["https://kubernetes.default.svc.cluster.local"]. */
  apiAudiences?: string[];
  /** Extra resource types (or replacements), e.g. another CRD. */
  resources?: ResourceDef[];
  /** Namespaces that exist from the start. Default default, kube-system, kube-public, kube-node-lease. */
  namespaces?: string[];
  /** The first resourceVersion handed out is this + 1. Default 1000. */
  initialResourceVersion?: number;
}

export interface KubeconfigOptions {
  /** Authenticate with this bearer token (registered or not: an unknown one gets 401). */
  token?: string;
  /** Without a token: authenticate with a client certificate for this user (CN), groups as O. */
  user?: string;
  groups?: string[];
  /** Context namespace. */
  namespace?: string;
  /** Server host in the kubeconfig: 127.0.0.1 (default) or localhost; both are in the serving certificate. */
  host?: '127.0.0.1' | 'localhost';
  /** File name inside the directory. Default kubeconfig-<n>.yaml. */
  fileName?: string;
}

export type TokenReviewHandler = (spec: TokenReviewSpec, caller: UserInfo) => TokenReviewStatus | undefined | Promise<TokenReviewStatus | undefined>;
export type SubjectAccessReviewHandler = (
  spec: SubjectAccessReviewSpec,
  caller: UserInfo,
) => SubjectAccessReviewStatus | undefined | Promise<SubjectAccessReviewStatus | undefined>;
export type TokenRequestHandler = (input: TokenRequestInput) => TokenRequestAnswer | undefined | Promise<TokenRequestAnswer | undefined>;

interface TokenEntry {
  user: UserInfo;
  /** Absent: valid for any audience (a static token). */
  audiences?: string[];
  expiresAt?: number;
}

interface ActiveFault {
  fault: Fault;
  remaining: number;
}

interface RouteInfo {
  group: string;
  version: string;
  def: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: string;
}

interface WatchHandle {
  info: ActiveWatch;
  finish(mode: 'end' | 'destroy'): void;
}

const DEFAULT_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
const PUBLIC_PATHS = ['/api', '/apis', '/version', '/healthz', '/livez', '/readyz', '/openapi', '/.well-known/openid-configuration', '/openid/v1/jwks'];
const AUTHENTICATED = 'system:authenticated';

/** Default authorizer: authenticated users may do anything; anonymous only what RBAC's public roles allow. */
export const allowAuthenticated: Authorizer = (a) =>
  a.user.username !== 'system:anonymous' || (!a.isResourceRequest && PUBLIC_PATHS.some((p) => a.path === p || a.path.startsWith(`${p}/`)));

const withAuthenticated = (u: UserInfo): UserInfo => ({ ...u, groups: [...new Set([...(u.groups ?? []), AUTHENTICATED])] });

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

export class FakeApiServer {
  readonly url: string;
  readonly port: number;
  readonly caPem: string;
  /** The CA that signs the serving certificate and trusted client certificates. */
  readonly ca: CertificateBundle;
  /** A bearer token for user "admin" (groups system:masters), the kubeconfig default. */
  readonly adminToken: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];

  private readonly store: Store;
  private readonly registry: ResourceRegistry;
  private readonly tokens = new Map<string, TokenEntry>();
  private readonly faults: ActiveFault[] = [];
  private readonly watchHandles = new Set<WatchHandle>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly waiters = new Set<() => void>();
  private readonly apiAudiences: string[];
  private authorizer: Authorizer;
  private tokenReviewHandler: TokenReviewHandler | undefined;
  private sarHandler: SubjectAccessReviewHandler | undefined;
  private tokenRequestHandler: TokenRequestHandler | undefined;
  private seq = 0;
  private watchSeq = 0;
  private kubeconfigSeq = 0;
  private closed = false;

  private constructor(
    private readonly server: Server,
    ca: CertificateBundle,
    private readonly opts: FakeApiServerOptions,
  ) {
    const addr = server.address() as AddressInfo;
    this.port = addr.port;
    this.url = `https://127.0.0.1:${addr.port}`;
    this.ca = ca;
    this.caPem = ca.certPem;
    this.registry = new ResourceRegistry([...BUILTIN_RESOURCES, ...(opts.resources ?? [])]);
    this.store = new Store(this.registry, opts.historyLimit ?? 200, opts.initialResourceVersion ?? 1000);
    this.apiAudiences = opts.apiAudiences ?? ['https://kubernetes.default.svc.cluster.local'];
    this.authorizer = opts.authorizer ?? allowAuthenticated;
    this.adminToken = `admin-${randomBytes(16).toString('hex')}`;
    this.tokens.set(this.adminToken, { user: { username: 'admin', uid: 'admin-uid', groups: ['system:masters', AUTHENTICATED] } });
    for (const [t, u] of Object.entries(opts.tokens ?? {})) this.addToken(t, u);
    for (const ns of opts.namespaces ?? DEFAULT_NAMESPACES) this.store.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  }

  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const ca = await createCA({ commonName: 'fake-kube-apiserver-ca' });
    const serving = await issueCertificate(ca, {
      commonName: 'kube-apiserver',
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
      ipAddresses: ['127.0.0.1'],
      extendedUsages: ['serverAuth'],
    });
    const holder: { self?: FakeApiServer } = {};
    const server = createServer(
      { key: serving.keyPem, cert: serving.certPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
      (req, res) => {
        const self = holder.self;
        if (!self) {
          res.writeHead(503).end();
          return;
        }
        self.handle(req, res).catch((err: unknown) => self.fail(res, err));
      },
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    holder.self = new FakeApiServer(server, ca, opts);
    return holder.self;
  }

  // -------------------------------------------------------------------------
  // Public API: credentials
  // -------------------------------------------------------------------------

  addToken(token: string, user: UserInfo, opts: { audiences?: string[]; expiresAt?: Date } = {}): void {
    this.tokens.set(token, { user: withAuthenticated(user), ...(opts.audiences ? { audiences: opts.audiences } : {}), ...(opts.expiresAt ? { expiresAt: opts.expiresAt.getTime() } : {}) });
  }

  removeToken(token: string): void {
    this.tokens.delete(token);
  }

  /** A client certificate for `user` (CN) in `groups` (O), signed by the fake's CA. */
  clientCertificate(user: string, groups: string[] = []): Promise<CertificateBundle> {
    return issueCertificate(this.ca, { commonName: user, organization: groups.length ? groups : undefined, extendedUsages: ['clientAuth'] });
  }

  /** A kubeconfig for this server as YAML: the admin token by default, another token, or a client certificate. */
  async kubeconfig(opts: KubeconfigOptions = {}): Promise<string> {
    let userName: string;
    let user: Record<string, string>;
    if (opts.token !== undefined || opts.user === undefined) {
      userName = opts.user ?? (opts.token === undefined ? 'admin' : 'token-user');
      user = { token: opts.token ?? this.adminToken };
    } else {
      const cert = await this.clientCertificate(opts.user, opts.groups ?? []);
      userName = opts.user;
      user = { 'client-certificate-data': Buffer.from(cert.certPem).toString('base64'), 'client-key-data': Buffer.from(cert.keyPem).toString('base64') };
    }
    return stringifyYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: `https://${opts.host ?? '127.0.0.1'}:${this.port}`, 'certificate-authority-data': Buffer.from(this.caPem).toString('base64') } }],
      users: [{ name: userName, user }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: userName, ...(opts.namespace ? { namespace: opts.namespace } : {}) } }],
      'current-context': 'fake',
    });
  }

  /** Writes a kubeconfig (see kubeconfig()) into `dir` and returns its path. */
  async writeKubeconfig(dir: string, opts: KubeconfigOptions = {}): Promise<string> {
    await mkdir(dir, { recursive: true });
    const file = join(dir, opts.fileName ?? `kubeconfig-${++this.kubeconfigSeq}.yaml`);
    await writeFile(file, await this.kubeconfig(opts), { mode: 0o600 });
    return file;
  }

  setAuthorizer(fn: Authorizer | undefined): void {
    this.authorizer = fn ?? allowAuthenticated;
  }

  /** Answers TokenReviews; return undefined to fall back to the fake's own tokens. */
  onTokenReview(fn: TokenReviewHandler | undefined): void {
    this.tokenReviewHandler = fn;
  }

  /** Answers SubjectAccessReviews (and LocalSubjectAccessReviews); undefined falls back to deny "no RBAC policy matched". */
  onSubjectAccessReview(fn: SubjectAccessReviewHandler | undefined): void {
    this.sarHandler = fn;
  }

  /** Answers serviceaccounts/<name>/token; undefined falls back to a generated token. Throw an ApiStatusError to fail it. */
  onTokenRequest(fn: TokenRequestHandler | undefined): void {
    this.tokenRequestHandler = fn;
  }

  // -------------------------------------------------------------------------
  // Public API: objects (the test back door)
  // -------------------------------------------------------------------------

  /** The current resourceVersion (the last one handed out). */
  get resourceVersion(): string {
    return String(this.store.rv);
  }

  /** Create or replace; new resourceVersion and a watch event unless nothing changed. Namespaces are created as needed. */
  put<T extends KubeObject = KubeObject>(obj: NoInfer<T> | KubeObject): T {
    return this.store.put(obj) as T;
  }

  get<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): T | undefined {
    const o = this.store.getRaw(this.def(apiVersion, kind), namespace, name);
    return o ? (clone(o) as T) : undefined;
  }

  list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace?: string): T[] {
    return this.store.listRaw(this.def(apiVersion, kind), namespace).map((o) => clone(o) as T);
  }

  /** Read-modify-write through the back door; throws when absent. */
  modify<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string, fn: (obj: T) => void): T {
    const cur = this.get<T>(apiVersion, kind, namespace, name);
    if (!cur) throw new Error(`fake-apiserver: ${kind} ${namespace ? `${namespace}/` : ''}${name} not found`);
    fn(cur);
    return this.put<T>(cur);
  }

  /** Remove at once (finalizers ignored), with a DELETED event; false when absent. */
  delete(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean {
    return this.store.remove(this.def(apiVersion, kind), namespace, name);
  }

  /** Forget watch history (of one kind, or all): a watch from any resourceVersion seen so far gets 410 Gone. */
  compact(apiVersion?: string, kind?: string): void {
    this.store.compact(apiVersion && kind ? this.def(apiVersion, kind) : undefined);
  }

  /** Adds (or replaces) a resource type at run time. */
  defineResource(def: ResourceDef): void {
    this.registry.add(def);
  }

  private def(apiVersion: string, kind: string): ResourceDef {
    const d = this.registry.byKind(apiVersion, kind);
    if (!d || d.virtual) throw new Error(`fake-apiserver: unknown resource ${apiVersion} ${kind}`);
    return d;
  }

  // -------------------------------------------------------------------------
  // Public API: faults, watches, requests
  // -------------------------------------------------------------------------

  /** Injects a fault; returns a function that removes it. Faults are matched in injection order. */
  inject(fault: Fault): () => void {
    const actions = [fault.status !== undefined, fault.drop, fault.hang, fault.cutWatch !== undefined].filter(Boolean).length;
    if (actions > 1) throw new Error('fake-apiserver: a fault takes at most one of status, drop, hang, cutWatch');
    if (actions === 0 && fault.delayMs === undefined && fault.answerDelayMs === undefined) throw new Error('fake-apiserver: a fault needs delayMs, answerDelayMs, status, drop, hang or cutWatch');
    const entry: ActiveFault = { fault, remaining: fault.times ?? Infinity };
    this.faults.push(entry);
    return () => {
      const i = this.faults.indexOf(entry);
      if (i >= 0) this.faults.splice(i, 1);
    };
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Watches currently open. */
  get watches(): ActiveWatch[] {
    return [...this.watchHandles].map((h) => ({ ...h.info }));
  }

  /** Ends open watches (all, or those matching): `end` as a server-side timeout does, `destroy` as a crash. */
  closeWatches(match?: (w: ActiveWatch) => boolean, mode: 'end' | 'destroy' = 'end'): number {
    const hs = [...this.watchHandles].filter((h) => !match || match(h.info));
    for (const h of hs) h.finish(mode);
    return hs.length;
  }

  /** Resolves with the first open watch matching (waiting for one to start), or rejects after timeoutMs. */
  waitForWatch(match: (w: ActiveWatch) => boolean = () => true, timeoutMs = 5000): Promise<ActiveWatch> {
    return this.waitFor(() => this.watches.find(match), timeoutMs, 'watch');
  }

  /** Resolves with the first recorded request matching whose response has been written (or was cut). */
  waitForRequest(match: (r: RecordedRequest) => boolean, timeoutMs = 5000): Promise<RecordedRequest> {
    return this.waitFor(() => this.requests.find(match), timeoutMs, 'request');
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  private waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = probe();
        if (v === undefined) return false;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(v);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`fake-apiserver: no matching ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      if (!check()) this.waiters.add(check);
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const h of [...this.watchHandles]) h.finish('end');
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await done;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  // -------------------------------------------------------------------------
  // Request handling
  // -------------------------------------------------------------------------

  private send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    const json = JSON.stringify(body);
    res.writeHead(code, {
      'Content-Type': 'application/json',
      'Content-Length': String(Buffer.byteLength(json)),
      'Cache-Control': 'no-cache, private',
      'Audit-Id': randomUUID(),
      ...headers,
    });
    res.end(json);
  }

  private fail(res: ServerResponse, err: unknown): void {
    const e = err instanceof ApiStatusError ? err : new ApiStatusError(500, 'InternalError', `Internal error occurred: ${(err as Error)?.message ?? String(err)}`);
    if (!(err instanceof ApiStatusError)) console.error('fake-apiserver: unexpected error', err);
    this.send(res, e.code, e.toStatus(), e.headers);
  }

  private async readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  private matchFault(rec: RecordedRequest): Fault | undefined {
    for (const entry of this.faults) {
      const f = entry.fault;
      if (entry.remaining <= 0) continue;
      if (f.method !== undefined && ![f.method].flat().some((m) => m.toUpperCase() === rec.method)) continue;
      if (typeof f.path === 'string' && !rec.path.startsWith(f.path)) continue;
      if (f.path instanceof RegExp && !f.path.test(rec.path)) continue;
      if (f.watch !== undefined && f.watch !== rec.watch) continue;
      if (f.query && !Object.entries(f.query).every(([k, v]) => rec.query[k] === v)) continue;
      if (f.when && !f.when(rec)) continue;
      entry.remaining--;
      if (entry.remaining <= 0) this.faults.splice(this.faults.indexOf(entry), 1);
      return f;
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    const segments = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    const query = Object.fromEntries(url.searchParams);
    const method = (req.method ?? 'GET').toUpperCase();
    const rec: RecordedRequest = {
      seq: ++this.seq,
      method,
      path: `/${segments.join('/')}`,
      query,
      headers: { ...req.headers },
      body: '',
      status: 0,
      watch: method === 'GET' && (query.watch === 'true' || query.watch === '1'),
      time: new Date(),
    };
    this.requests.push(rec);
    res.on('finish', () => {
      rec.status = res.statusCode;
      this.notify();
    });
    res.on('close', () => this.notify());

    const fault = this.matchFault(rec);
    if (fault?.drop) {
      req.socket.destroy();
      return;
    }
    rec.body = await this.readBody(req);
    if (fault?.delayMs) await this.sleep(fault.delayMs);
    if (this.closed) return;
    if (fault?.hang) return;
    if (fault?.status !== undefined) {
      const e = statusFor(fault.status, fault.message, fault.reason, fault.retryAfterSeconds);
      this.send(res, e.code, e.toStatus(), e.headers);
      return;
    }

    const user = await this.authenticate(req);
    if (!user) throw unauthorized();
    rec.user = await this.impersonate(req, user);

    if (fault?.answerDelayMs) holdAnswer(res, fault.answerDelayMs);
    await this.route(req, res, rec, segments, rec.user, fault?.cutWatch);
  }

  // -------------------------------------------------------------------------
  // Authentication, impersonation, authorization
  // -------------------------------------------------------------------------

  /** undefined: 401. Client certificate first, then bearer token, else anonymous (as the union authenticator). */
  private async authenticate(req: IncomingMessage): Promise<UserInfo | undefined> {
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate?.();
    const hasCert = peer && Object.keys(peer).length > 0 && peer.raw !== undefined;
    if (hasCert && socket.authorized) {
      const cert = new X509Certificate(peer.raw);
      const eku = cert.keyUsage ?? [];
      if (eku.length === 0 || eku.includes('1.3.6.1.5.5.7.3.2')) {
        const attrs = (name: string) =>
          cert.subject
            .split('\n')
            .filter((l) => l.startsWith(`${name}=`))
            .map((l) => l.slice(name.length + 1));
        const cn = attrs('CN')[0];
        if (cn) return withAuthenticated({ username: cn, groups: attrs('O') });
      }
    }
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^bearer\s+(\S+)\s*$/i.exec(auth);
      if (!m) return undefined;
      const entry = this.tokenEntry(m[1]!);
      if (!entry) return undefined;
      if (entry.audiences && !entry.audiences.some((a) => this.apiAudiences.includes(a))) return undefined;
      return entry.user;
    }
    if (hasCert) return undefined;
    return { username: 'system:anonymous', groups: ['system:unauthenticated'] };
  }

  private tokenEntry(token: string): TokenEntry | undefined {
    const e = this.tokens.get(token);
    if (!e) return undefined;
    if (e.expiresAt !== undefined && e.expiresAt <= Date.now()) return undefined;
    return e;
  }

  private async impersonate(req: IncomingMessage, user: UserInfo): Promise<UserInfo> {
    const target = req.headers['impersonate-user'];
    const groupsHeader = req.headers['impersonate-group'];
    if (target === undefined && groupsHeader === undefined) return user;
    if (typeof target !== 'string') throw badRequest('requested impersonation of groups without a user');
    const groups = groupsHeader === undefined ? [] : ([groupsHeader].flat() as string[]);
    const check = async (resource: string, name: string) => {
      const attrs: RequestAttributes = { user, verb: 'impersonate', isResourceRequest: true, path: '', apiGroup: '', apiVersion: 'v1', resource, subresource: '', namespace: '', name };
      const d = await this.authorizer(attrs);
      const allowed = typeof d === 'boolean' ? d : d.allowed;
      if (!allowed) throw forbidden(user.username, attrs, typeof d === 'boolean' ? '' : (d.reason ?? ''));
    };
    await check('users', target);
    for (const g of groups) await check('groups', g);
    return withAuthenticated({ username: target, groups });
  }

  private async authorize(attrs: RequestAttributes): Promise<void> {
    const d = await this.authorizer(attrs);
    const allowed = typeof d === 'boolean' ? d : d.allowed;
    if (!allowed) throw forbidden(attrs.user.username, attrs, typeof d === 'boolean' ? '' : (d.reason ?? ''));
  }

  private nonResource(user: UserInfo, method: string, path: string): RequestAttributes {
    return { user, verb: method.toLowerCase(), isResourceRequest: false, path, apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '' };
  }

  // -------------------------------------------------------------------------
  // Routing
  // -------------------------------------------------------------------------

  private async route(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, seg: string[], user: UserInfo, cut: Fault['cutWatch']): Promise<void> {
    const method = rec.method;
    const path = rec.path;
    const discovery = async (body: unknown) => {
      await this.authorize(this.nonResource(user, method, path));
      if (method !== 'GET') throw methodNotAllowed();
      this.send(res, 200, body);
    };
    const text = async (body: string) => {
      await this.authorize(this.nonResource(user, method, path));
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(body.length) }).end(body);
    };

    if (['healthz', 'livez', 'readyz'].includes(seg[0] ?? '') && seg.length === 1) return text('ok');
    if (seg[0] === 'version' && seg.length === 1) {
      return discovery({ major: '1', minor: '33', gitVersion: 'v1.33.0-fake', gitCommit: '', gitTreeState: 'clean', buildDate: '', goVersion: '', compiler: 'gc', platform: 'linux/amd64' });
    }
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api') {
      if (seg.length === 1) return discovery(this.registry.apiVersions(`127.0.0.1:${this.port}`));
      group = '';
      version = seg[1]!;
      rest = seg.slice(2);
    } else if (seg[0] === 'apis') {
      if (seg.length === 1) return discovery(this.registry.apiGroupList());
      if (seg.length === 2) {
        const doc = this.registry.apiGroupDoc(seg[1]!);
        await this.authorize(this.nonResource(user, method, path));
        if (!doc) throw resourceNotFound();
        return discovery(doc);
      }
      group = seg[1]!;
      version = seg[2]!;
      rest = seg.slice(3);
    } else {
      await this.authorize(this.nonResource(user, method, path));
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
      return;
    }
    if (!this.registry.hasGroupVersion(group, version)) {
      await this.authorize(this.nonResource(user, method, path));
      throw resourceNotFound();
    }
    if (rest.length === 0) return discovery(this.registry.apiResourceList(group, version));

    // RequestInfo: namespaces/<ns>/<resource>/<name>/<subresource>, or the namespace object itself.
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length > 1) {
      if (rest.length === 2 || (rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
        // the Namespace object (or its subresource)
      } else {
        namespace = rest[1];
        rest = rest.slice(2);
      }
    }
    if (rest.length > 3) throw resourceNotFound();
    const [resource, name, subresource] = rest as [string, string | undefined, string | undefined];
    const def = this.registry.byPath(group, version, resource);
    if (!def) throw resourceNotFound();
    if (namespace !== undefined && !def.namespaced) throw resourceNotFound();
    if (namespace === undefined && def.namespaced && name !== undefined) throw resourceNotFound();
    const info: RouteInfo = { group, version, def, ...(namespace !== undefined ? { namespace } : {}), ...(name !== undefined ? { name } : {}), ...(subresource !== undefined ? { subresource } : {}) };

    // The verb, as Kubernetes derives it.
    let verb: string;
    switch (method) {
      case 'GET':
        verb = rec.watch ? 'watch' : name !== undefined ? 'get' : 'list';
        break;
      case 'POST':
        verb = 'create';
        break;
      case 'PUT':
        verb = 'update';
        break;
      case 'PATCH':
        verb = 'patch';
        break;
      case 'DELETE':
        verb = name !== undefined ? 'delete' : 'deletecollection';
        break;
      default:
        throw methodNotAllowed();
    }
    let selectorName = '';
    if (name === undefined && (verb === 'list' || verb === 'watch' || verb === 'deletecollection') && rec.query.fieldSelector) {
      try {
        selectorName = parseFieldSelector(rec.query.fieldSelector, def.fieldSelectors ?? {}, !!def.custom).name ?? '';
      } catch {
        // reported by the handler
      }
    }
    await this.authorize({
      user,
      verb,
      isResourceRequest: true,
      path,
      apiGroup: group,
      apiVersion: version,
      resource,
      subresource: subresource ?? '',
      namespace: namespace ?? (def.kind === 'Namespace' && def.group === '' ? (name ?? '') : ''),
      name: name ?? selectorName,
      ...(rec.query.fieldSelector !== undefined ? { fieldSelector: rec.query.fieldSelector } : {}),
      ...(rec.query.labelSelector !== undefined ? { labelSelector: rec.query.labelSelector } : {}),
    });

    if (def.virtual) {
      if (method !== 'POST' || name !== undefined) throw methodNotAllowed();
      return this.review(res, rec, info, user);
    }
    if (subresource !== undefined) return this.subresource(req, res, rec, info, user, verb);
    return this.resourceVerb(req, res, rec, info, verb, cut);
  }

  private dryRun(query: Record<string, string>): boolean {
    const v = query.dryRun;
    if (v === undefined || v === '') return false;
    if (v !== 'All') throw invalid({ group: '', kind: 'Options' }, '', [{ type: 'FieldValueNotSupported', field: 'dryRun', value: v, detail: 'supported values: "All"' }]);
    return true;
  }

  private decodeBody(req: IncomingMessage, raw: string): KubeObject {
    const ct = mediaType(req.headers['content-type']);
    if (ct !== '' && ct !== 'application/json' && ct !== 'application/yaml') {
      throw unsupportedMediaType(['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf', 'application/cbor']);
    }
    if (raw.trim() === '') throw badRequest('the body of the request was empty');
    try {
      return (ct === 'application/yaml' ? parseYaml(raw) : JSON.parse(raw)) as KubeObject;
    } catch (err) {
      throw badRequest(`couldn't get version/kind; json parse error: ${(err as Error).message}`);
    }
  }

  private listMatchers(def: ResourceDef, query: Record<string, string>): { label: Matcher; field: Matcher } {
    return { label: parseLabelSelector(query.labelSelector), field: parseFieldSelector(query.fieldSelector, def.fieldSelectors ?? {}, !!def.custom).match };
  }

  /** Typed lists carry apiVersion/kind only at the top; CRD lists keep them on every item. */
  private listItem(def: ResourceDef, o: KubeObject): KubeObject {
    const c = clone(o);
    if (!def.custom) {
      delete c.apiVersion;
      delete c.kind;
    }
    return c;
  }

  private async resourceVerb(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, r: RouteInfo, verb: string, cut: Fault['cutWatch']): Promise<void> {
    const { def } = r;
    const q = rec.query;
    switch (verb) {
      case 'get': {
        const o = this.store.getRaw(def, r.namespace, r.name!);
        if (!o) throw notFound(gr(def), r.name!);
        return this.send(res, 200, o);
      }
      case 'list': {
        const m = this.listMatchers(def, q);
        let items = this.store.listRaw(def, r.namespace).filter((o) => m.label(o) && m.field(o));
        const listMeta: Record<string, unknown> = { resourceVersion: String(this.store.rv) };
        if (q.continue) {
          let start: string;
          try {
            start = (JSON.parse(Buffer.from(q.continue, 'base64url').toString('utf8')) as { start: string }).start;
          } catch {
            throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
          }
          items = items.filter((o) => `${o.metadata!.namespace ?? ''}/${o.metadata!.name!}` > start);
        }
        const limit = q.limit ? Number(q.limit) : 0;
        if (limit > 0 && items.length > limit) {
          const last = items[limit - 1]!;
          listMeta.continue = Buffer.from(JSON.stringify({ rv: this.store.rv, start: `${last.metadata!.namespace ?? ''}/${last.metadata!.name!}` })).toString('base64url');
          if (!q.labelSelector && !q.fieldSelector) listMeta.remainingItemCount = items.length - limit;
          items = items.slice(0, limit);
        }
        return this.send(res, 200, { apiVersion: apiVersionOf(def), kind: `${def.kind}List`, metadata: listMeta, items: items.map((o) => this.listItem(def, o)) });
      }
      case 'watch':
        return this.watch(req, res, rec, r, cut);
      case 'create': {
        if (r.name !== undefined) throw methodNotAllowed();
        if (def.namespaced && r.namespace === undefined) throw methodNotAllowed();
        const out = this.store.create(def, r.namespace, this.decodeBody(req, rec.body), rec.body, { dryRun: this.dryRun(q) });
        return this.send(res, out.code, out.obj);
      }
      case 'update': {
        if (r.name === undefined) throw methodNotAllowed();
        const dryRun = this.dryRun(q);
        const out = this.store.update(def, r.namespace, r.name, this.decodeBody(req, rec.body), rec.body, { dryRun });
        return this.send(res, out.code, out.obj);
      }
      case 'patch': {
        if (r.name === undefined) throw methodNotAllowed();
        const out = this.store.patch(def, r.namespace, r.name, mediaType(req.headers['content-type']), rec.body, {
          dryRun: this.dryRun(q),
          ...(q.fieldManager !== undefined ? { fieldManager: q.fieldManager } : {}),
          ...(q.force !== undefined ? { force: q.force === 'true' } : {}),
        });
        return this.send(res, out.code, out.obj);
      }
      case 'delete': {
        const opts = this.deleteOptions(rec);
        const out = this.store.delete(def, r.namespace, r.name!, opts);
        return this.send(res, out.code, out.body);
      }
      case 'deletecollection': {
        const opts = this.deleteOptions(rec);
        const m = this.listMatchers(def, q);
        const items: KubeObject[] = [];
        for (const o of this.store.listRaw(def, r.namespace).filter((x) => m.label(x) && m.field(x))) {
          const out = this.store.delete(def, o.metadata!.namespace, o.metadata!.name!, { ...(opts.dryRun ? { dryRun: true } : {}) });
          items.push(out.body.kind === 'Status' ? o : (out.body as KubeObject));
        }
        return this.send(res, 200, { apiVersion: apiVersionOf(def), kind: `${def.kind}List`, metadata: { resourceVersion: String(this.store.rv) }, items: items.map((o) => this.listItem(def, o)) });
      }
    }
    throw methodNotAllowed();
  }

  private deleteOptions(rec: RecordedRequest): { preconditions?: { uid?: string; resourceVersion?: string }; dryRun?: boolean } {
    let body: Record<string, unknown> = {};
    if (rec.body.trim() !== '') {
      try {
        const parsed: unknown = JSON.parse(rec.body);
        if (isObject(parsed)) body = parsed;
      } catch (err) {
        throw badRequest(`couldn't decode DeleteOptions: ${(err as Error).message}`);
      }
    }
    const dryRun = this.dryRun(rec.query) || (Array.isArray(body.dryRun) && body.dryRun.includes('All'));
    const pre = isObject(body.preconditions) ? (body.preconditions as { uid?: string; resourceVersion?: string }) : undefined;
    return { ...(pre ? { preconditions: pre } : {}), ...(dryRun ? { dryRun } : {}) };
  }

  // -------------------------------------------------------------------------
  // Subresources: status, scale, token
  // -------------------------------------------------------------------------

  private async subresource(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, r: RouteInfo, user: UserInfo, verb: string): Promise<void> {
    const { def, subresource } = r;
    const name = r.name!;
    if (subresource === 'status' && def.statusSubresource) {
      switch (verb) {
        case 'get': {
          const o = this.store.getRaw(def, r.namespace, name);
          if (!o) throw notFound(gr(def), name);
          return this.send(res, 200, o);
        }
        case 'update': {
          const dryRun = this.dryRun(rec.query);
          const out = this.store.update(def, r.namespace, name, this.decodeBody(req, rec.body), rec.body, { subresource: 'status', dryRun });
          return this.send(res, out.code, out.obj);
        }
        case 'patch': {
          const out = this.store.patch(def, r.namespace, name, mediaType(req.headers['content-type']), rec.body, {
            subresource: 'status',
            dryRun: this.dryRun(rec.query),
            ...(rec.query.fieldManager !== undefined ? { fieldManager: rec.query.fieldManager } : {}),
          });
          return this.send(res, out.code, out.obj);
        }
      }
      throw methodNotAllowed();
    }
    if (subresource === 'scale' && def.subresources?.scale) return this.scale(req, res, rec, r, verb);
    if (subresource === 'token' && def.kind === 'ServiceAccount' && def.group === '') {
      if (verb !== 'create') throw methodNotAllowed();
      return this.tokenRequest(req, res, rec, r, user);
    }
    throw resourceNotFound();
  }

  private scaleOf(o: KubeObject): KubeObject {
    const m = o.metadata!;
    const spec = isObject(o.spec) ? o.spec : {};
    const status = isObject(o.status) ? o.status : {};
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, creationTimestamp: m.creationTimestamp },
      spec: { replicas: spec.replicas ?? 0 },
      status: { replicas: status.replicas ?? 0, selector: labelSelectorString(spec.selector) },
    };
  }

  private async scale(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, r: RouteInfo, verb: string): Promise<void> {
    const { def } = r;
    const name = r.name!;
    const current = () => {
      const cur = this.store.getRaw(def, r.namespace, name);
      if (!cur) throw notFound(gr(def), name);
      return cur;
    };
    // The Scale a write asks for, given the current one.
    let nextScale: (curScale: KubeObject) => KubeObject;
    switch (verb) {
      case 'get':
        return this.send(res, 200, this.scaleOf(current()));
      case 'update': {
        current();
        const body = this.decodeBody(req, rec.body);
        if (body.metadata?.name !== name) throw badRequest(`the name of the object (${body.metadata?.name ?? ''}) does not match the name on the URL (${name})`);
        nextScale = () => body;
        break;
      }
      case 'patch': {
        current();
        const ct = mediaType(req.headers['content-type']);
        let body: unknown;
        try {
          body = JSON.parse(rec.body);
        } catch (err) {
          throw badRequest(`error decoding patch: ${(err as Error).message}`);
        }
        if (ct === 'application/json-patch+json') nextScale = (cur) => jsonPatch(cur, body) as KubeObject;
        else if (ct === 'application/merge-patch+json') nextScale = (cur) => mergePatch(cur, body) as KubeObject;
        else if (ct === 'application/strategic-merge-patch+json') nextScale = (cur) => strategicMergePatch(cur, body, {}) as KubeObject;
        else throw unsupportedMediaType(['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json']);
        break;
      }
      default:
        throw methodNotAllowed();
    }
    const dryRun = this.dryRun(rec.query);
    const cur = current();
    const next = nextScale(this.scaleOf(cur));
    const rv = next.metadata?.resourceVersion;
    if (rv && rv !== cur.metadata!.resourceVersion) throw conflict(gr(def), name);
    const replicas = isObject(next.spec) ? next.spec.replicas : undefined;
    if (typeof replicas !== 'number' || replicas < 0 || !Number.isInteger(replicas)) {
      throw invalid({ group: 'autoscaling', kind: 'Scale' }, name, [{ type: 'FieldValueInvalid', field: 'spec.replicas', value: replicas ?? null, detail: 'must be greater than or equal to 0' }]);
    }
    const updated = clone(cur);
    (updated.spec as Record<string, unknown>).replicas = replicas;
    const out = this.store.applyUpdate(def, cur, updated, { dryRun });
    return this.send(res, 200, this.scaleOf(out.obj));
  }

  private async tokenRequest(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, r: RouteInfo, user: UserInfo): Promise<void> {
    const name = r.name!;
    const ns = r.namespace!;
    const body = this.decodeBody(req, rec.body);
    if ((body.apiVersion !== undefined && body.apiVersion !== 'authentication.k8s.io/v1') || (body.kind !== undefined && body.kind !== 'TokenRequest')) {
      throw badRequest(`${String(body.kind)} in version "${String(body.apiVersion)}" cannot be handled as a TokenRequest`);
    }
    const sa = this.store.getRaw(r.def, ns, name);
    if (!sa) throw notFound(gr(r.def), name);
    const spec = (isObject(body.spec) ? clone(body.spec) : {}) as { audiences?: string[]; expirationSeconds?: number; boundObjectRef?: unknown };
    spec.audiences = spec.audiences?.length ? spec.audiences : [...this.apiAudiences];
    spec.expirationSeconds ??= 3600;
    if (spec.expirationSeconds < 600 || spec.expirationSeconds > 2 ** 32) {
      throw invalid({ group: 'authentication.k8s.io', kind: 'TokenRequest' }, name, [
        {
          type: 'FieldValueInvalid',
          field: 'spec.expirationSeconds',
          value: spec.expirationSeconds,
          detail: spec.expirationSeconds < 600 ? 'may not specify a duration less than 10 minutes' : 'may not specify a duration larger than 2^32 seconds',
        },
      ]);
    }
    const answer = (await this.tokenRequestHandler?.({ namespace: ns, serviceAccount: clone(sa), spec: clone(spec) as never, caller: user })) ?? {
      token: `fake-sa-token.${randomBytes(24).toString('base64url')}`,
    };
    const exp = answer.expirationTimestamp ? new Date(answer.expirationTimestamp) : new Date(Date.now() + spec.expirationSeconds * 1000);
    this.tokens.set(answer.token, {
      user: { username: `system:serviceaccount:${ns}:${name}`, uid: sa.metadata!.uid!, groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, AUTHENTICATED] },
      audiences: spec.audiences,
      expiresAt: exp.getTime(),
    });
    this.send(res, 201, {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name, namespace: ns, creationTimestamp: nowSeconds() },
      spec: { ...spec, boundObjectRef: spec.boundObjectRef ?? null },
      status: { token: answer.token, expirationTimestamp: nowSeconds(exp) },
    });
  }

  // -------------------------------------------------------------------------
  // Reviews
  // -------------------------------------------------------------------------

  private async review(res: ServerResponse, rec: RecordedRequest, r: RouteInfo, caller: UserInfo): Promise<void> {
    const { def } = r;
    let body: KubeObject;
    try {
      body = JSON.parse(rec.body) as KubeObject;
    } catch (err) {
      throw badRequest(`couldn't get version/kind; json parse error: ${(err as Error).message}`);
    }
    if (!isObject(body)) throw badRequest('the body of the request is not a JSON object');
    if ((body.kind !== undefined && body.kind !== def.kind) || (body.apiVersion !== undefined && body.apiVersion !== apiVersionOf(def))) {
      throw badRequest(`${String(body.kind)} in version "${String(body.apiVersion)}" cannot be handled as a ${def.kind}`);
    }
    const spec = (isObject(body.spec) ? body.spec : {}) as Record<string, unknown>;
    const reply = (status: unknown) =>
      this.send(res, 201, { kind: def.kind, apiVersion: apiVersionOf(def), metadata: isObject(body.metadata) ? body.metadata : {}, spec, status });
    const errs = (field: string, value: unknown, detail: string) => invalid({ group: def.group, kind: def.kind }, '', [{ type: 'FieldValueInvalid', field, value, detail }]);

    if (def.kind === 'TokenReview') {
      const s = spec as TokenReviewSpec;
      if (!s.token) throw badRequest(`token is required for TokenReview in ${apiVersionOf(def)}`);
      const custom = await this.tokenReviewHandler?.(clone(s), caller);
      return reply(custom ?? this.defaultTokenReview(s));
    }

    const s = spec as SubjectAccessReviewSpec;
    const hasRes = s.resourceAttributes !== undefined && s.resourceAttributes !== null;
    const hasNonRes = s.nonResourceAttributes !== undefined && s.nonResourceAttributes !== null;
    if (hasRes && hasNonRes) throw errs('spec.nonResourceAttributes', s.nonResourceAttributes, 'cannot be specified in combination with resourceAttributes');
    if (!hasRes && !hasNonRes) throw errs('spec.resourceAttributes', 'null', 'exactly one of nonResourceAttributes or resourceAttributes must be specified');

    if (def.kind === 'SelfSubjectAccessReview') {
      const ra = s.resourceAttributes ?? {};
      const attrs: RequestAttributes = hasRes
        ? {
            user: caller, verb: ra.verb ?? '', isResourceRequest: true, path: '', apiGroup: ra.group ?? '', apiVersion: ra.version ?? '',
            resource: ra.resource ?? '', subresource: ra.subresource ?? '', namespace: ra.namespace ?? '', name: ra.name ?? '',
          }
        : this.nonResource(caller, s.nonResourceAttributes?.verb ?? '', s.nonResourceAttributes?.path ?? '');
      if (!hasRes) attrs.verb = s.nonResourceAttributes?.verb ?? '';
      const d = await this.authorizer(attrs);
      const allowed = typeof d === 'boolean' ? d : d.allowed;
      const reason = typeof d === 'boolean' ? undefined : d.reason;
      return reply({ allowed, ...(reason ? { reason } : {}) });
    }

    if (!s.user && !(s.groups ?? []).length) throw errs('spec.user', '', 'at least one of user or group must be specified');
    if (def.kind === 'LocalSubjectAccessReview') {
      if (!hasRes) throw errs('spec.nonResourceAttributes', s.nonResourceAttributes, 'disallowed on this kind of request');
      if ((s.resourceAttributes?.namespace ?? '') !== r.namespace) throw badRequest(`spec.resourceAttributes.namespace must match namespace: ${r.namespace ?? ''}`);
    }
    const custom = await this.sarHandler?.(clone(s), caller);
    return reply(custom ?? { allowed: false, reason: 'no RBAC policy matched' });
  }

  private defaultTokenReview(spec: TokenReviewSpec): TokenReviewStatus {
    const entry = this.tokenEntry(spec.token!);
    if (!entry) return { user: {}, error: 'invalid bearer token' };
    const wanted = spec.audiences?.length ? spec.audiences : this.apiAudiences;
    const audiences = entry.audiences ? wanted.filter((a) => entry.audiences!.includes(a)) : wanted;
    if (audiences.length === 0) return { user: {}, error: 'token audiences are invalid for the target audiences' };
    return { authenticated: true, user: clone(entry.user), audiences };
  }

  // -------------------------------------------------------------------------
  // Watch
  // -------------------------------------------------------------------------

  private async watch(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, r: RouteInfo, cut: Fault['cutWatch']): Promise<void> {
    const { def } = r;
    const q = rec.query;
    const m = this.listMatchers(def, q);
    const matches = (o: KubeObject) =>
      (r.namespace === undefined || o.metadata?.namespace === r.namespace) && (r.name === undefined || o.metadata?.name === r.name) && m.label(o) && m.field(o);
    const rvParam = q.resourceVersion ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam)) {
      throw invalid({ group: 'meta.k8s.io', kind: 'ListOptions' }, '', [{ type: 'FieldValueInvalid', field: 'resourceVersion', value: rvParam, detail: 'must be a non-negative integer' }]);
    }
    const allowBookmarks = q.allowWatchBookmarks === 'true';
    const sendInitialEvents = q.sendInitialEvents === 'true';
    if (sendInitialEvents && (q.resourceVersionMatch !== 'NotOlderThan' || !allowBookmarks)) {
      throw invalid({ group: 'meta.k8s.io', kind: 'ListOptions' }, '', [
        { type: 'FieldValueForbidden', field: 'sendInitialEvents', detail: 'sendInitialEvents is forbidden for watch unless resourceVersionMatch is NotOlderThan and allowWatchBookmarks is true' },
      ]);
    }
    const timeoutSeconds = q.timeoutSeconds !== undefined ? Number(q.timeoutSeconds) : (this.opts.watchTimeoutSeconds ?? 1800);

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Audit-Id': randomUUID() });
    res.flushHeaders();

    const timers: NodeJS.Timeout[] = [];
    let unsubscribe: (() => void) | undefined;
    let finished = false;
    const info: ActiveWatch = {
      id: ++this.watchSeq,
      path: rec.path,
      query: q,
      user: rec.user!,
      apiVersion: apiVersionOf(def),
      resource: def.plural,
      ...(r.namespace !== undefined ? { namespace: r.namespace } : {}),
      events: 0,
      startedAt: new Date(),
    };
    const handle: WatchHandle = {
      info,
      finish: (mode) => {
        if (finished) return;
        finished = true;
        unsubscribe?.();
        for (const t of timers) clearTimeout(t);
        this.watchHandles.delete(handle);
        if (mode === 'end') res.end();
        else req.socket.destroy();
        this.notify();
      },
    };
    res.on('close', () => handle.finish('end'));

    let cutting = false;
    rec.watchEvents = [];
    const write = (type: string, object: unknown) => {
      if (finished || cutting) return;
      rec.watchEvents!.push(type);
      const counted = type !== 'BOOKMARK' && type !== 'ERROR';
      if (counted) info.events++;
      if (counted && cut?.afterEvents !== undefined && info.events >= cut.afterEvents) {
        // Let the event reach the client before the cut, or a reset would discard it unsent.
        cutting = true;
        res.write(`${JSON.stringify({ type, object })}\n`, () => timers.push(setTimeout(() => handle.finish(cut.mode ?? 'end'), 20)));
        return;
      }
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const bookmark = (initialEventsEnd = false) => ({
      kind: def.kind,
      apiVersion: apiVersionOf(def),
      metadata: { resourceVersion: String(this.store.rv), ...(initialEventsEnd ? { annotations: { 'k8s.io/initial-events-end': 'true' } } : {}) },
    });
    const deliver = (ev: StoredEvent) => {
      const now = matches(ev.obj);
      const before = ev.prev !== undefined && matches(ev.prev);
      if (ev.type === 'ADDED' && now) write('ADDED', ev.obj);
      else if (ev.type === 'MODIFIED') {
        if (now && before) write('MODIFIED', ev.obj);
        else if (now) write('ADDED', ev.obj);
        else if (before) write('DELETED', ev.obj);
      } else if (ev.type === 'DELETED' && now) write('DELETED', ev.obj);
    };
    const errorEvent = (e: ApiStatusError) => {
      write('ERROR', e.toStatus());
      handle.finish('end');
    };

    this.watchHandles.add(handle);
    this.notify();
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      timers.push(t as unknown as NodeJS.Timeout);
    };
    timers.push(setTimeout(() => handle.finish('end'), timeoutSeconds * 1000));
    if (cut?.afterMs !== undefined) timers.push(setTimeout(() => handle.finish(cut.mode ?? 'end'), cut.afterMs));

    const begin = () => {
      if (finished) return;
      if (sendInitialEvents || rvParam === '' || rvParam === '0') {
        // "Start at most recent" (or at any): synthetic ADDED for the current state, then changes.
        for (const o of this.store.listRaw(def, r.namespace)) if (matches(o)) write('ADDED', o);
        if (sendInitialEvents) write('BOOKMARK', bookmark(true));
      } else {
        const since = Number(rvParam);
        const events = this.store.eventsSince(def, since);
        if (!events) return errorEvent(gone(`too old resource version: ${since} (${this.store.oldestRv(def)})`));
        for (const ev of events) deliver(ev);
      }
      if (finished) return;
      unsubscribe = this.store.subscribe(def, deliver);
      if (allowBookmarks) every(this.opts.bookmarkIntervalMs ?? 60_000, () => write('BOOKMARK', bookmark()));
    };

    const wanted = rvParam === '' ? 0 : Number(rvParam);
    if (wanted <= this.store.rv) return begin();
    // A resourceVersion from the future: wait for the store to catch up, as the watch cache does.
    const deadline = Date.now() + (this.opts.tooLargeResourceVersionWaitMs ?? 3000);
    const poll = () => {
      if (finished) return;
      if (wanted <= this.store.rv) return begin();
      if (Date.now() >= deadline) {
        return errorEvent(
          new ApiStatusError(504, 'Timeout', `Timeout: Too large resource version: ${wanted}, current: ${this.store.rv}`, {
            causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
            retryAfterSeconds: 1,
          }),
        );
      }
      timers.push(setTimeout(poll, 25));
    };
    poll();
  }
}

export function startFakeApiServer(opts?: FakeApiServerOptions): Promise<FakeApiServer> {
  return FakeApiServer.start(opts);
}

/** The answer written to `res` reaches the client only `ms` later (headers and body are held together). */
function holdAnswer(res: ServerResponse, ms: number): void {
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  (res as { end: (...args: unknown[]) => ServerResponse }).end = (...args: unknown[]) => {
    setTimeout(() => end(...args), ms);
    return res;
  };
}
