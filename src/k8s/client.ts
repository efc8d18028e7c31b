// Our own Kubernetes REST client: what a component needs to talk to kube-apiserver, and nothing
// more. Loading @kubernetes/client-node costs ~0.5 s and ~80 MB per process (every generated model
// and API comes with it), and it opens a new TLS connection for every call; this client loads in
// milliseconds and keeps one pool of keep-alive connections per cluster. It is built on node:https
// (undici alone adds ~20 MB to a process that loads it, and the adapter needs no other HTTP
// client), and reads YAML only for a kubeconfig file, which a pod does not have.
//
// Credentials, as client-go reads them: in a pod, the ServiceAccount token file (re-read every
// minute, so a projected token's rotation is picked up) and its CA; or a kubeconfig file: server,
// certificate-authority(-data), tls-server-name, insecure-skip-tls-verify, and for the user
// client-certificate(-data)/client-key(-data), token, tokenFile, username/password, or an exec
// plugin (client.authentication.k8s.io ExecCredential, cached until it expires). Paths in a
// kubeconfig are relative to the file. The legacy auth-provider plugins (gcp, azure, oidc) and
// proxy-url are refused with a message saying so, never silently ignored.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import type { parse as YamlParse } from 'yaml';

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN_FILE_REREAD_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 10_000;

/** A Kubernetes Status, as kube-apiserver answers failures. */
export interface ApiStatus {
  kind?: 'Status';
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: Record<string, unknown>;
}

/** A failed call: `code` is the HTTP status, `body` kube-apiserver's Status (when it sent one). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: number,
    readonly body: ApiStatus | undefined,
    what: string,
  ) {
    super(`${what}: HTTP ${code}${body?.message ? `: ${body.message}` : ''}`);
  }
}

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
  /** Ends the call early (the caller gave up); the timeout applies too. */
  signal?: AbortSignal;
  /** Default 10 s; 0 for none (watches). */
  timeoutMs?: number;
}

interface Tls {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  insecureSkipVerify?: boolean;
}

/** What the next request authenticates with. */
interface Credential {
  /** The Authorization header value, if any. */
  authorization?: string;
  /** A client certificate handed out at run time (exec plugins); absent: the kubeconfig's, if any. */
  tls?: { cert?: string; key?: string };
}

type Credentials = () => Promise<Credential>;

/** Told of every request: its method, and its HTTP status code or `<error>` when no answer came (client-go's labels), and how long until the answer's headers. */
export type RequestObserver = (method: string, code: string, seconds: number) => void;

export class KubeClient {
  private agent: Agent;
  private agentKey: string;
  private observers: RequestObserver[] = [];

  private constructor(
    /** https://host:port, no trailing slash. */
    readonly server: string,
    private readonly tls: Tls,
    private readonly credentials: Credentials,
  ) {
    this.agentKey = '';
    this.agent = this.newAgent(tls);
  }

  /**
   * The cluster a component is pointed at: the kubeconfig file when given, the pod's
   * ServiceAccount when running in a cluster, otherwise none.
   */
  static load(kubeconfig: string, env: NodeJS.ProcessEnv = process.env): KubeClient | undefined {
    if (kubeconfig) return KubeClient.fromKubeconfig(kubeconfig);
    if (env.KUBERNETES_SERVICE_HOST) return KubeClient.inCluster(env);
    return undefined;
  }

  static inCluster(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeClient {
    const host = env.KUBERNETES_SERVICE_HOST ?? '';
    const port = env.KUBERNETES_SERVICE_PORT ?? '443';
    const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
    return new KubeClient(server, { ca }, tokenFileCredentials(join(dir, 'token')));
  }

  static fromKubeconfig(file: string): KubeClient {
    const { parse: parseYaml } = createRequire(import.meta.url)('yaml') as { parse: typeof YamlParse };
    const doc = parseYaml(readFileSync(file, 'utf8')) as Kubeconfig | null;
    const fail = (why: string) => new Error(`kubeconfig ${file}: ${why}`);
    if (!doc || typeof doc !== 'object') throw fail('not a kubeconfig');
    const contextName = doc['current-context'];
    const context = doc.contexts?.find((c) => c.name === contextName)?.context ?? (doc.contexts?.length === 1 ? doc.contexts[0]!.context : undefined);
    if (!context) throw fail(contextName ? `context "${contextName}" not found` : 'no current-context');
    const cluster = doc.clusters?.find((c) => c.name === context.cluster)?.cluster;
    if (!cluster?.server) throw fail(`cluster "${context.cluster}" not found or without a server`);
    const user = doc.users?.find((u) => u.name === context.user)?.user ?? {};
    const rel = (p: string) => (isAbsolute(p) ? p : join(dirname(file), p));
    const material = (data: string | undefined, path: string | undefined) => (data ? Buffer.from(data, 'base64').toString('utf8') : path ? readFileSync(rel(path), 'utf8') : undefined);
    if (cluster['proxy-url']) throw fail(`proxy-url is not supported; reach ${cluster.server} directly (or unset the proxy for it)`);
    if (user['auth-provider']) throw fail(`the auth-provider "${user['auth-provider'].name}" plugin is not supported; use its exec credential plugin instead (for example gke-gcloud-auth-plugin or kubelogin)`);
    const tls: Tls = {
      ...optional('ca', material(cluster['certificate-authority-data'], cluster['certificate-authority'])),
      ...optional('cert', material(user['client-certificate-data'], user['client-certificate'])),
      ...optional('key', material(user['client-key-data'], user['client-key'])),
      ...optional('servername', cluster['tls-server-name']),
      ...(cluster['insecure-skip-tls-verify'] ? { insecureSkipVerify: true } : {}),
    };
    let credentials: Credentials;
    if (user.exec) credentials = execCredentials(user.exec, cluster.server, dirname(file));
    else if (user.token) credentials = staticAuthorization(`Bearer ${user.token}`);
    else if (user.tokenFile) credentials = tokenFileCredentials(rel(user.tokenFile));
    else if (user.username !== undefined) credentials = staticAuthorization(`Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}`);
    else credentials = staticAuthorization(undefined);
    return new KubeClient(cluster.server.replace(/\/+$/, ''), tls, credentials);
  }

  get<T>(path: string, o: Omit<RequestOptions, 'body'> = {}): Promise<T> {
    return this.json<T>('GET', path, o);
  }

  post<T>(path: string, body: unknown, o: RequestOptions = {}): Promise<T> {
    return this.json<T>('POST', path, { ...o, body });
  }

  put<T>(path: string, body: unknown, o: RequestOptions = {}): Promise<T> {
    return this.json<T>('PUT', path, { ...o, body });
  }

  patch<T>(path: string, body: unknown, type: PatchType, o: RequestOptions = {}): Promise<T> {
    return this.json<T>('PATCH', path, { ...o, body, contentType: PATCH_CONTENT_TYPE[type] });
  }

  delete<T>(path: string, o: RequestOptions = {}): Promise<T> {
    return this.json<T>('DELETE', path, o);
  }

  /**
   * A request whose answer is read by the caller (watches): resolves once the headers are in;
   * a status other than 200 is an ApiError.
   */
  async stream(path: string, o: RequestOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    const res = await this.send('GET', path, { timeoutMs: 0, ...o });
    if (res.statusCode !== 200) throw await errorOf(res, `GET ${path}`);
    return res;
  }

  /** Every request from now on is also told to `observer`. */
  observe(observer: RequestObserver): void {
    this.observers.push(observer);
  }

  /** Closes the connections; the client must not be used afterwards. */
  async close(): Promise<void> {
    this.agent.destroy();
  }

  /** A call whose answer's headers matter too (the Date of a TokenRequest, say). */
  async call<T>(method: string, path: string, o: RequestOptions = {}): Promise<{ body: T; headers: IncomingHttpHeaders }> {
    const res = await this.send(method, path, o);
    if ((res.statusCode ?? 0) >= 300) throw await errorOf(res, `${method} ${path}`);
    const text = await readText(res);
    return { body: (text === '' ? undefined : JSON.parse(text)) as T, headers: res.headers };
  }

  private async json<T>(method: string, path: string, o: RequestOptions): Promise<T> {
    return (await this.call<T>(method, path, o)).body;
  }

  private async send(method: string, path: string, o: RequestOptions) {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: o.accept ?? 'application/json' };
    const credential = await this.credentials();
    if (credential.authorization) headers.authorization = credential.authorization;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
      headers['content-type'] = o.contentType ?? 'application/json';
    }
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // A cleared timer, not AbortSignal.timeout: that one fires (and builds an exception) after
    // every call, long after the answer arrived.
    const deadline = new AbortController();
    const timer = timeoutMs > 0 ? setTimeout(() => deadline.abort(), timeoutMs) : undefined;
    const signal = o.signal ? AbortSignal.any([o.signal, deadline.signal]) : deadline.signal;
    // Plain http only ever in tests against a local server; it has no TLS to pool by.
    const plain = url.protocol === 'http:';
    const send = plain ? httpRequest : httpsRequest;
    const started = performance.now();
    const observed = (code: string) => {
      for (const o of this.observers) o(method, code, (performance.now() - started) / 1e3);
    };
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(
        url,
        { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, ...(plain ? {} : { agent: this.agentFor(credential.tls) }), signal },
        (res) => {
          observed(String(res.statusCode ?? 0));
          // The deadline covers the whole answer of a call; a stream's body is the caller's to bound.
          if (timer) res.once('end', () => clearTimeout(timer)).once('error', () => clearTimeout(timer)).once('close', () => clearTimeout(timer));
          resolve(res);
        },
      );
      req.once('error', (err) => {
        clearTimeout(timer);
        observed('<error>');
        if (deadline.signal.aborted) reject(new Error(`${method} ${path}: no answer from kube-apiserver within ${timeoutMs} ms`, { cause: err }));
        else reject(new Error(`${method} ${path}: ${describeCause(err)}`, { cause: err }));
      });
      req.end(body);
    });
  }

  /** The pool; rebuilt when an exec plugin hands out another client certificate. */
  private agentFor(dynamic: Credential['tls']): Agent {
    if (dynamic) {
      const key = `${dynamic.cert ?? ''}|${dynamic.key ?? ''}`;
      if (key !== this.agentKey) {
        const old = this.agent;
        this.agent = this.newAgent({ ...this.tls, ...dynamic });
        this.agentKey = key;
        // Requests in flight on the old pool finish; its idle connections close.
        setTimeout(() => old.destroy(), DEFAULT_TIMEOUT_MS).unref();
      }
    }
    return this.agent;
  }

  private newAgent(tls: Tls): Agent {
    return new Agent({
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
      ...(tls.servername ? { servername: tls.servername } : {}),
      rejectUnauthorized: !tls.insecureSkipVerify,
      keepAlive: true,
      keepAliveMsecs: 30_000,
      // Watches hold a connection each; calls share the rest.
      maxSockets: 64,
      // Idle pooled connections are closed after this long (a busy one only gets the event).
      timeout: 30_000,
    });
  }
}

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function errorOf(res: IncomingMessage, what: string): Promise<ApiError> {
  const text = await readText(res).catch(() => '');
  let status: ApiStatus | undefined;
  try {
    const parsed = JSON.parse(text) as ApiStatus;
    if (parsed && typeof parsed === 'object') status = parsed;
  } catch {
    status = text ? { message: text.slice(0, 500) } : undefined;
  }
  return new ApiError(res.statusCode ?? 0, status, what);
}

/** The innermost reason of a network failure. */
function describeCause(err: unknown): string {
  let e = err as { message?: string; cause?: unknown; code?: string } | undefined;
  while (e?.cause && typeof e.cause === 'object') e = e.cause as typeof e;
  return e?.code ? `${e.code}${e.message ? ` (${e.message})` : ''}` : (e?.message ?? String(err));
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function staticAuthorization(authorization: string | undefined): Credentials {
  return () => Promise.resolve(authorization ? { authorization } : {});
}

/** A token file, re-read every minute (kubelet rotates projected ServiceAccount tokens). */
function tokenFileCredentials(file: string): Credentials {
  let token = '';
  let readAt = -Infinity;
  return () => {
    if (Date.now() - readAt > TOKEN_FILE_REREAD_MS) {
      token = readFileSync(file, 'utf8').trim();
      readAt = Date.now();
    }
    return Promise.resolve(token ? { authorization: `Bearer ${token}` } : {});
  };
}

interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
  apiVersion?: string;
  provideClusterInfo?: boolean;
}

interface ExecStatus {
  token?: string;
  clientCertificateData?: string;
  clientKeyData?: string;
  expirationTimestamp?: string;
}

/** client-go's exec credential plugin protocol: run it, cache what it says until it expires. */
function execCredentials(exec: ExecConfig, server: string, cwd: string): Credentials {
  let cached: { status: ExecStatus; until: number } | undefined;
  let running: Promise<ExecStatus> | undefined;
  const apiVersion = exec.apiVersion ?? 'client.authentication.k8s.io/v1';
  const run = () =>
    new Promise<ExecStatus>((resolve, reject) => {
      const input = { apiVersion, kind: 'ExecCredential', spec: { interactive: false, ...(exec.provideClusterInfo ? { cluster: { server } } : {}) } };
      const env = { ...process.env, ...Object.fromEntries((exec.env ?? []).map((e) => [e.name, e.value])), KUBERNETES_EXEC_INFO: JSON.stringify(input) };
      execFile(exec.command, exec.args ?? [], { env, cwd, timeout: 60_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`exec credential plugin ${exec.command} failed: ${stderr.trim().split('\n').at(-1) || err.message}`));
        try {
          const out = JSON.parse(stdout) as { status?: ExecStatus };
          if (!out.status) throw new Error('no status');
          resolve(out.status);
        } catch (e) {
          reject(new Error(`exec credential plugin ${exec.command} printed no ExecCredential (${(e as Error).message})`));
        }
      });
    });
  const current = async (): Promise<ExecStatus> => {
    if (cached && Date.now() < cached.until) return cached.status;
    running ??= run().finally(() => (running = undefined));
    const status = await running;
    // No expiry: valid for the process's life, as client-go treats it.
    const expires = status.expirationTimestamp ? Date.parse(status.expirationTimestamp) : Infinity;
    cached = { status, until: expires - 10_000 };
    return status;
  };
  return async () => {
    const s = await current();
    return {
      ...(s.token ? { authorization: `Bearer ${s.token}` } : {}),
      ...(s.clientCertificateData ? { tls: { cert: s.clientCertificateData, ...(s.clientKeyData ? { key: s.clientKeyData } : {}) } } : {}),
    };
  };
}

interface Kubeconfig {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string; namespace?: string } }[];
  clusters?: {
    name: string;
    cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string; 'tls-server-name'?: string; 'insecure-skip-tls-verify'?: boolean; 'proxy-url'?: string };
  }[];
  users?: {
    name: string;
    user: {
      'client-certificate'?: string;
      'client-certificate-data'?: string;
      'client-key'?: string;
      'client-key-data'?: string;
      token?: string;
      tokenFile?: string;
      username?: string;
      password?: string;
      exec?: ExecConfig;
      'auth-provider'?: { name: string };
    };
  }[];
}
