// Short-lived ServiceAccount tokens through the TokenRequest API
// (POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token), for TriggerAuthentications with
// KEDA's `boundServiceAccountToken` (KEDA issue 5630). Off unless the operator runs with
// --enable-service-account-token-requests; the RBAC is deploy/components/service-account-tokens.
//
// One cache entry per (namespace, service account, audiences, requested expiration):
// - get() answers from the cache until the token's refreshAt, 80 % of the lifetime the API server
//   actually granted (status.expirationTimestamp, which may differ from the requested one). That
//   lifetime is measured on the API server's clock (its Date header) and laid onto ours from the
//   moment the request was sent, so a skew between the two clocks cannot make us hold on to an
//   expired token.
// - Identical requests in flight are one API call; every caller gets its answer.
// - Renewal happens in the background at refreshAt (timers unref'd, so they never keep the process
//   alive), and again on the next get() after refreshAt if the timer was late (stalled event loop,
//   suspended VM): get() always compares with the clock itself. Why both: the scalers call get()
//   again at refreshAt and then find the new token ready (or join the request in flight) instead of
//   waiting on the API server on the metrics path; a token file is kept fresh for SDKs that only
//   read the file; and a failed renewal has the remaining fifth of the lifetime to be retried.
// - A failed renewal keeps the still-valid token in service until it expires, retrying with
//   exponential backoff (with jitter, never past the expiry); get() meanwhile returns the old token
//   with refreshAt set to the next retry. A failed first request is remembered for the backoff
//   delay: get() rethrows it without asking the API server again.
// - An entry nobody asked for within its token's lifetime (idleTimeoutMs) is dropped at its next
//   renewal instead of being renewed, so the tokens of deleted ScaledObjects are not renewed forever.
//
// The token itself never reaches a log line, an error message or a serialisation: BoundToken keeps
// it in a private field behind a getter and redacts it in toJSON, util.inspect and toString, and
// API errors are turned into our own messages (code and Status message, never the raw response).
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import type { KubeClient } from './client.js';
import type { Logger } from 'pino';
import { describeApiError, statusCodeOf, withTimeout } from './kubeconfig.js';

interface TokenRequest {
  spec?: { audiences?: string[]; expirationSeconds?: number };
  status?: { token?: string; expirationTimestamp?: string };
}
import { isDns1123Label, isDns1123Subdomain } from './names.js';

/** The API server's bounds for spec.expirationSeconds. */
export const MIN_EXPIRATION_SECONDS = 600;
export const MAX_EXPIRATION_SECONDS = 2 ** 32;
export const DEFAULT_EXPIRATION_SECONDS = 3600;
/** Tokens are renewed when this fraction of their granted lifetime has passed. */
export const REFRESH_FRACTION = 0.8;
/** The deploy component that grants `create` on serviceaccounts/token. */
export const TOKEN_RBAC_COMPONENT = 'deploy/components/service-account-tokens';

const REDACTED = '[redacted]';
/** Longest single timer sleep; longer waits wake up and re-check (setTimeout fires at once past 2^31-1 ms). */
const MAX_TIMER_MS = 24 * 3600 * 1000;

/** A token from the TokenRequest API. `token` is never serialised: JSON, util.inspect and String() show "[redacted]". */
export interface BoundToken {
  readonly token: string;
  readonly namespace: string;
  readonly serviceAccountName: string;
  /** The audiences the token is valid for, as the API server granted them (its default when none were requested). */
  readonly audiences: readonly string[];
  /** When the token stops working, on this process's clock. */
  readonly expiresAt: Date;
  /** When to ask again: 80 % of the granted lifetime, or the next retry while a renewal is failing. */
  readonly refreshAt: Date;
  /** With the tokenDir option: the file holding the token (mode 0600), replaced atomically on renewal. */
  readonly tokenFile?: string;
}

export interface TokenRequestOptions {
  /** Audiences of the token. Default: the instance's audiences; an empty list means the API server's own audience. */
  audiences?: readonly string[];
  /** Requested lifetime, 600 to 2^32 s. Default: the instance's expirationSeconds. The API server may grant a different one. */
  expirationSeconds?: number;
}

/** Counters for the operator's metrics (low cardinality: no names). Every method is optional. */
export interface ServiceAccountTokenMetrics {
  /** A TokenRequest finished. `trigger`: a get() asked for it, or the background renewal did. */
  requestFinished?(outcome: TokenRequestOutcome, trigger: 'get' | 'background', durationSeconds: number): void;
  /** get() was answered from the cache. */
  cacheHit?(): void;
  /** A cached token expired before it could be renewed. */
  tokenExpired?(): void;
}
export type TokenRequestOutcome = 'ok' | 'forbidden' | 'not_found' | 'error';

export interface ServiceAccountTokensOptions {
  /** Default audiences, e.g. ["api://AzureADTokenExchange"] for workload identity federation. Default: none (the API server's). */
  audiences?: readonly string[];
  /** Default requested lifetime in seconds. Default 3600; at least 600, the API server's minimum. */
  expirationSeconds?: number;
  /** Renew tokens in the background at refreshAt (default true); false: only on the next get() after refreshAt. */
  backgroundRefresh?: boolean;
  /** An entry not asked for within this long is dropped instead of renewed. Default: its token's granted lifetime. */
  idleTimeoutMs?: number;
  /** Also write every token to a file in this directory (created 0700): mode 0600, replaced by rename, removed by close(). */
  tokenDir?: string;
  /** Deadline of one TokenRequest. Default 10 s. */
  requestTimeoutMs?: number;
  /** Backoff after a failed request: the first delay (default 1 s), doubled per failure up to retryMaxDelayMs (default 30 s), ±20 % jitter. */
  retryInitialDelayMs?: number;
  retryMaxDelayMs?: number;
  log?: Logger;
  metrics?: ServiceAccountTokenMetrics;
}

/** A TokenRequest that failed; the message says what to change and never contains a token. */
export class TokenRequestError extends Error {
  override readonly name: string = 'TokenRequestError';
  constructor(
    message: string,
    readonly namespace: string,
    readonly serviceAccountName: string,
    /** The HTTP status from the API server, when there was one. */
    readonly statusCode?: number,
  ) {
    super(message);
  }
}

/** 403: the operator's user lacks `create` on `serviceaccounts/token` for this service account. */
export class TokenRequestForbiddenError extends TokenRequestError {
  override readonly name: string = 'TokenRequestForbiddenError';
  /** The missing RBAC permission, exactly. */
  readonly permission: { verb: 'create'; apiGroup: ''; resource: 'serviceaccounts/token'; resourceName: string; namespace: string };
  constructor(
    namespace: string,
    serviceAccountName: string,
    /** The operator's Kubernetes user as the API server named it, when it did. */
    readonly user: string | undefined,
    serverMessage: string,
  ) {
    const who = user ? `the operator's user "${user}"` : `the operator's user`;
    const rbacDenial = /cannot create resource/.test(serverMessage);
    super(
      `${who} may not request a token for service account ${namespace}/${serviceAccountName}: ` +
        `it needs "create" on "serviceaccounts/token" (API group "") for resourceName "${serviceAccountName}" in namespace "${namespace}"; ` +
        `grant it with ${TOKEN_RBAC_COMPONENT} (add "${serviceAccountName}" to the ClusterRole's resourceNames and a RoleBinding in namespace "${namespace}")` +
        (rbacDenial || !serverMessage ? '' : ` (API server: ${serverMessage})`),
      namespace,
      serviceAccountName,
      403,
    );
    this.permission = { verb: 'create', apiGroup: '', resource: 'serviceaccounts/token', resourceName: serviceAccountName, namespace };
  }
}

/** 404: no such service account (or namespace). */
export class ServiceAccountNotFoundError extends TokenRequestError {
  override readonly name: string = 'ServiceAccountNotFoundError';
  constructor(namespace: string, serviceAccountName: string) {
    super(`service account ${namespace}/${serviceAccountName} not found`, namespace, serviceAccountName, 404);
  }
}

/** The token as handed out: the value only through the getter, never in any serialisation. */
class IssuedToken implements BoundToken {
  readonly #token: string;
  readonly namespace: string;
  readonly serviceAccountName: string;
  readonly audiences: readonly string[];
  readonly expiresAt: Date;
  readonly refreshAt: Date;
  readonly tokenFile?: string;

  constructor(token: string, e: Entry, issued: Issued, refreshAt: number) {
    this.#token = token;
    this.namespace = e.namespace;
    this.serviceAccountName = e.serviceAccountName;
    this.audiences = Object.freeze([...issued.audiences]);
    this.expiresAt = new Date(issued.expiresAt);
    this.refreshAt = new Date(refreshAt);
    if (e.file) this.tokenFile = e.file;
  }

  get token(): string {
    return this.#token;
  }

  toJSON(): Record<string, unknown> {
    return {
      namespace: this.namespace,
      serviceAccountName: this.serviceAccountName,
      audiences: this.audiences,
      expiresAt: this.expiresAt.toISOString(),
      refreshAt: this.refreshAt.toISOString(),
      ...(this.tokenFile ? { tokenFile: this.tokenFile } : {}),
      token: REDACTED,
    };
  }

  [inspect.custom](): string {
    return `BoundToken ${inspect(this.toJSON())}`;
  }

  toString(): string {
    return `[BoundToken ${this.namespace}/${this.serviceAccountName} expires ${this.expiresAt.toISOString()}]`;
  }
}

/** A token value that redacts itself wherever it might be printed. */
class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
  toString(): string {
    return REDACTED;
  }
}

interface Issued {
  secret: Secret;
  audiences: string[];
  /** ms on our clock. */
  issuedAt: number;
  expiresAt: number;
  refreshAt: number;
}

interface Entry {
  key: string;
  namespace: string;
  serviceAccountName: string;
  /** Sorted, without duplicates; empty: the API server's default. */
  audiences: string[];
  expirationSeconds: number;
  file: string | undefined;
  current: Issued | undefined;
  inflight: Promise<Issued> | undefined;
  failures: number;
  lastError: TokenRequestError | undefined;
  /** After a failure: no new request before this (ms). */
  retryAt: number;
  lastUsedAt: number;
  timer: NodeJS.Timeout | undefined;
}

export class ServiceAccountTokens {
  private readonly entries = new Map<string, Entry>();
  private readonly audiences: string[];
  private readonly expirationSeconds: number;
  private readonly background: boolean;
  private readonly requestTimeoutMs: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly log: Logger | undefined;
  private readonly metrics: ServiceAccountTokenMetrics;
  private closed = false;

  constructor(
    private readonly client: KubeClient,
    private readonly o: ServiceAccountTokensOptions = {},
  ) {
    this.audiences = normalizeAudiences(o.audiences ?? []);
    this.expirationSeconds = o.expirationSeconds ?? DEFAULT_EXPIRATION_SECONDS;
    const bad = checkExpiration(this.expirationSeconds);
    if (bad) throw new RangeError(`service-account tokens: expirationSeconds ${bad}`);
    this.background = o.backgroundRefresh ?? true;
    this.requestTimeoutMs = o.requestTimeoutMs ?? 10_000;
    this.retryInitialMs = o.retryInitialDelayMs ?? 1_000;
    this.retryMaxMs = Math.max(this.retryInitialMs, o.retryMaxDelayMs ?? 30_000);
    this.log = o.log;
    this.metrics = o.metrics ?? {};
  }

  /**
   * A valid token for `namespace/serviceAccountName`: from the cache until its refreshAt, else from
   * the API server (one request for all concurrent callers). While a renewal is failing the old
   * token is returned until it expires. Rejects with a TokenRequestError (TokenRequestForbiddenError,
   * ServiceAccountNotFoundError) when there is no valid token.
   */
  async get(namespace: string, serviceAccountName: string, opts: TokenRequestOptions = {}): Promise<BoundToken> {
    if (this.closed) throw new TokenRequestError(`no token for service account ${namespace}/${serviceAccountName}: the token source is closed`, namespace, serviceAccountName);
    const entry = this.entryFor(namespace, serviceAccountName, opts);
    const now = Date.now();
    entry.lastUsedAt = now;
    const cur = entry.current;
    if (cur && now < cur.expiresAt) {
      if (now < cur.refreshAt) {
        this.metrics.cacheHit?.();
        return this.view(entry, cur);
      }
      // Renewal due but failing: the old token until the next retry, without a request of our own.
      if (!entry.inflight && entry.failures > 0 && now < entry.retryAt) return this.view(entry, cur, Math.min(entry.retryAt, cur.expiresAt));
      try {
        return this.view(entry, await this.refresh(entry, 'get'));
      } catch (err) {
        const still = entry.current;
        if (still && Date.now() < still.expiresAt) return this.view(entry, still, Math.min(entry.retryAt, still.expiresAt));
        throw err;
      }
    }
    if (!entry.inflight && entry.lastError && now < entry.retryAt) throw entry.lastError;
    return this.view(entry, await this.refresh(entry, 'get'));
  }

  /** Forgets the cached tokens of a service account (e.g. it was deleted and recreated, or a token was rejected). */
  async invalidate(namespace: string, serviceAccountName: string): Promise<void> {
    const drop = [...this.entries.values()].filter((e) => e.namespace === namespace && e.serviceAccountName === serviceAccountName);
    await Promise.all(drop.map((e) => this.evict(e)));
  }

  /** Stops the timers, waits for requests in flight, removes the token files. get() rejects afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = [...this.entries.values()];
    for (const e of all) clearTimeout(e.timer);
    await Promise.allSettled(all.map((e) => e.inflight));
    await Promise.all(all.map((e) => this.removeFile(e)));
    this.entries.clear();
  }

  // ---------------------------------------------------------------------------

  private entryFor(namespace: string, serviceAccountName: string, opts: TokenRequestOptions): Entry {
    if (!isDns1123Label(namespace)) {
      throw new TokenRequestError(`no token for service account ${namespace}/${serviceAccountName}: ${JSON.stringify(namespace)} is not a valid namespace name`, namespace, serviceAccountName);
    }
    if (!isDns1123Subdomain(serviceAccountName)) {
      throw new TokenRequestError(`no token for service account ${namespace}/${serviceAccountName}: ${JSON.stringify(serviceAccountName)} is not a valid service account name`, namespace, serviceAccountName);
    }
    const audiences = opts.audiences ? normalizeAudiences(opts.audiences) : this.audiences;
    const expirationSeconds = opts.expirationSeconds ?? this.expirationSeconds;
    const bad = checkExpiration(expirationSeconds);
    if (bad) throw new TokenRequestError(`no token for service account ${namespace}/${serviceAccountName}: expirationSeconds ${bad}`, namespace, serviceAccountName);
    const key = JSON.stringify([namespace, serviceAccountName, audiences, expirationSeconds]);
    let e = this.entries.get(key);
    if (!e) {
      // One file per entry: namespace and name cannot contain "_", the hash tells audiences and lifetime apart.
      const file = this.o.tokenDir ? join(this.o.tokenDir, `${namespace}_${serviceAccountName}_${createHash('sha256').update(key).digest('hex').slice(0, 16)}.token`) : undefined;
      e = { key, namespace, serviceAccountName, audiences, expirationSeconds, file, current: undefined, inflight: undefined, failures: 0, lastError: undefined, retryAt: 0, lastUsedAt: 0, timer: undefined };
      this.entries.set(key, e);
    }
    return e;
  }

  private view(e: Entry, issued: Issued, refreshAt = issued.refreshAt): BoundToken {
    return new IssuedToken(issued.secret.reveal(), e, issued, refreshAt);
  }

  /** The request in flight for this entry, or a new one. Settles after the entry's state is updated. */
  private refresh(e: Entry, trigger: 'get' | 'background'): Promise<Issued> {
    if (e.inflight) return e.inflight;
    const started = Date.now();
    const p = this.request(e, started).then(
      (issued) => {
        e.inflight = undefined;
        this.metrics.requestFinished?.('ok', trigger, (Date.now() - started) / 1000);
        this.succeeded(e, issued);
        return issued;
      },
      (err: unknown) => {
        e.inflight = undefined;
        const error = toTokenRequestError(err, e);
        this.metrics.requestFinished?.(outcomeOf(error), trigger, (Date.now() - started) / 1000);
        this.failed(e, error);
        throw error;
      },
    );
    e.inflight = p;
    // Background renewals have nobody awaiting them; their failure is handled in failed().
    p.catch(() => undefined);
    return p;
  }

  private async request(e: Entry, started: number): Promise<Issued> {
    const { namespace, serviceAccountName: name } = e;
    const body = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      // No audiences: the API server's own (its --api-audiences).
      spec: { audiences: [...e.audiences], expirationSeconds: e.expirationSeconds },
    };
    const res = await withTimeout(
      this.client.call<TokenRequest>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, { body, timeoutMs: 0 }),
      this.requestTimeoutMs,
      `TokenRequest for service account ${namespace}/${name}`,
    );
    const token = res.body.status?.token;
    const expMs = Date.parse(res.body.status?.expirationTimestamp ?? '');
    if (!token) throw new TokenRequestError(`could not request a token for service account ${namespace}/${name}: the API server's answer has no status.token`, namespace, name);
    if (!Number.isFinite(expMs)) throw new TokenRequestError(`could not request a token for service account ${namespace}/${name}: the API server's answer has no valid status.expirationTimestamp`, namespace, name);
    // The granted lifetime on the API server's clock (Date header; ours when it sent none), less a
    // second for the whole-second resolution of both timestamps, counted from when we asked.
    const serverNow = Date.parse(String(res.headers.date ?? ''));
    const lifetimeMs = expMs - (Number.isFinite(serverNow) ? serverNow : Date.now()) - 1000;
    if (started + lifetimeMs <= Date.now()) {
      throw new TokenRequestError(
        `could not request a token for service account ${namespace}/${name}: the API server returned a token that expires at once (expirationTimestamp ${new Date(expMs).toISOString()})`,
        namespace,
        name,
      );
    }
    if (this.closed) throw new TokenRequestError(`no token for service account ${namespace}/${name}: the token source is closed`, namespace, name);
    if (e.file) await this.writeFile(e, token);
    const granted = res.body.spec?.audiences;
    const expiresAt = started + lifetimeMs;
    // 80 % of the lifetime; should the answer have taken longer than that, halfway to the expiry
    // from now, so that a refreshAt in the past never makes anyone ask again at once, in a loop.
    const now = Date.now();
    const due = started + Math.floor(lifetimeMs * REFRESH_FRACTION);
    return {
      secret: new Secret(token),
      audiences: granted && granted.length ? [...granted] : [...e.audiences],
      issuedAt: started,
      expiresAt,
      refreshAt: due > now ? due : now + Math.floor((expiresAt - now) / 2),
    };
  }

  private succeeded(e: Entry, issued: Issued): void {
    const renewal = e.current !== undefined;
    e.current = issued;
    e.failures = 0;
    e.lastError = undefined;
    e.retryAt = 0;
    const fields = { namespace: e.namespace, serviceAccount: e.serviceAccountName, audiences: issued.audiences, expiresAt: new Date(issued.expiresAt).toISOString(), refreshAt: new Date(issued.refreshAt).toISOString() };
    if (renewal) this.log?.debug(fields, 'service-account token renewed');
    else this.log?.info(fields, 'service-account token issued');
    if (this.entries.get(e.key) !== e || this.closed) return;
    this.schedule(e);
  }

  private failed(e: Entry, err: TokenRequestError): void {
    e.failures++;
    const base = Math.min(this.retryMaxMs, this.retryInitialMs * 2 ** Math.min(e.failures - 1, 30));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    e.retryAt = Date.now() + delay;
    e.lastError = err;
    const cur = e.current;
    const fields = { namespace: e.namespace, serviceAccount: e.serviceAccountName, reason: err.message, failures: e.failures, retryInMs: delay };
    if (cur && Date.now() < cur.expiresAt) {
      this.log?.warn({ ...fields, expiresAt: new Date(cur.expiresAt).toISOString() }, 'could not renew a service-account token; the current one stays in use until it expires');
    } else if (e.failures === 1) {
      this.log?.warn(fields, 'could not request a service-account token');
    } else {
      this.log?.debug(fields, 'could not request a service-account token');
    }
    if (this.entries.get(e.key) !== e || this.closed) return;
    this.schedule(e);
  }

  /** The next wake-up: renewal at refreshAt, a retry while failing, or the expiry of the token. */
  private schedule(e: Entry): void {
    clearTimeout(e.timer);
    e.timer = undefined;
    const cur = e.current;
    if (this.closed || !cur) return;
    let at: number;
    if (!this.background) at = cur.expiresAt;
    else if (e.failures > 0) at = Math.min(e.retryAt, cur.expiresAt);
    else at = cur.refreshAt;
    e.timer = setTimeout(() => this.tick(e), Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now())));
    e.timer.unref();
  }

  private tick(e: Entry): void {
    e.timer = undefined;
    if (this.closed || this.entries.get(e.key) !== e || e.inflight) return; // a request in flight reschedules when it settles
    const cur = e.current;
    if (!cur) return;
    const now = Date.now();
    if (now >= cur.expiresAt) {
      void this.expire(e, cur);
      return;
    }
    const due = this.background && now >= (e.failures > 0 ? e.retryAt : cur.refreshAt);
    if (!due) return this.schedule(e);
    const idleMs = this.o.idleTimeoutMs ?? cur.expiresAt - cur.issuedAt;
    if (now - e.lastUsedAt > idleMs) {
      this.log?.debug({ namespace: e.namespace, serviceAccount: e.serviceAccountName }, 'service-account token not used lately: dropped instead of renewed');
      void this.evict(e);
      return;
    }
    void this.refresh(e, 'background').catch(() => undefined);
  }

  private async expire(e: Entry, cur: Issued): Promise<void> {
    if (e.current !== cur) return;
    e.current = undefined;
    this.metrics.tokenExpired?.();
    if (e.lastError) {
      this.log?.error(
        { namespace: e.namespace, serviceAccount: e.serviceAccountName, reason: e.lastError.message },
        'a service-account token expired before it could be renewed; scalers using it fail until a new one is issued',
      );
    } else {
      // Not renewed because nobody asked (backgroundRefresh off): nothing is wrong.
      this.entries.delete(e.key);
    }
    await this.removeFile(e);
  }

  private async evict(e: Entry): Promise<void> {
    clearTimeout(e.timer);
    e.timer = undefined;
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    e.current = undefined;
    // A request in flight might still write the file: remove it after that one settles.
    if (e.inflight) await e.inflight.catch(() => undefined);
    if (!this.entries.has(e.key)) await this.removeFile(e);
  }

  private async writeFile(e: Entry, token: string): Promise<void> {
    const dir = this.o.tokenDir!;
    const file = e.file!;
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, token, { mode: 0o600, flag: 'wx' });
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      const code = (err as NodeJS.ErrnoException).code;
      throw new TokenRequestError(
        `could not write the token file ${file} for service account ${e.namespace}/${e.serviceAccountName}: ${code ?? (err as Error).message}`,
        e.namespace,
        e.serviceAccountName,
      );
    }
  }

  private async removeFile(e: Entry): Promise<void> {
    if (!e.file) return;
    try {
      await rm(e.file, { force: true });
    } catch (err) {
      this.log?.warn({ file: e.file, reason: (err as Error).message }, 'could not remove a service-account token file');
    }
  }
}

function normalizeAudiences(a: readonly string[]): string[] {
  return [...new Set(a)].sort();
}

function checkExpiration(s: number): string | undefined {
  if (!Number.isInteger(s)) return `must be a whole number of seconds, got ${s}`;
  if (s < MIN_EXPIRATION_SECONDS) return `must be at least ${MIN_EXPIRATION_SECONDS} (the API server's minimum), got ${s}`;
  if (s > MAX_EXPIRATION_SECONDS) return `must be at most 2^32, got ${s}`;
  return undefined;
}

function outcomeOf(err: TokenRequestError): TokenRequestOutcome {
  if (err instanceof TokenRequestForbiddenError) return 'forbidden';
  if (err instanceof ServiceAccountNotFoundError) return 'not_found';
  return 'error';
}

/** The Status message of a failed API call ('' without one). */
function statusMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  try {
    const parsed = typeof body === 'string' ? (JSON.parse(body) as { message?: unknown }) : (body as { message?: unknown } | undefined);
    return typeof parsed?.message === 'string' ? parsed.message : '';
  } catch {
    return '';
  }
}

/**
 * Our error for any failure: never the client's ApiException itself (its message carries the raw
 * response) and no `cause`, so that nothing but our own words and the Status message is ever logged.
 */
function toTokenRequestError(err: unknown, e: Entry): TokenRequestError {
  const { namespace, serviceAccountName: name } = e;
  if (err instanceof TokenRequestError) return err;
  const code = statusCodeOf(err);
  if (code === 403) {
    const msg = statusMessage(err);
    return new TokenRequestForbiddenError(namespace, name, /User "([^"]+)"/.exec(msg)?.[1], msg);
  }
  if (code === 404) return new ServiceAccountNotFoundError(namespace, name);
  if (code === 401) return new TokenRequestError(`could not request a token for service account ${namespace}/${name}: the API server rejected the operator's own credentials (HTTP 401)`, namespace, name, 401);
  return new TokenRequestError(`could not request a token for service account ${namespace}/${name}: ${describeApiError(err)}`, namespace, name, code);
}
