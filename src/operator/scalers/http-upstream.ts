// What the scalers that read an HTTP(S) upstream share (metrics-api, prometheus): the undici
// client (one dispatcher and TLS context per trust bundle, rebuilt when the --ca-dir trust
// changes), the client certificate checks, bounded reading of answers, network errors told in
// words a user can act on, secrets removed from every message, and the small metadata parsers
// that must read values exactly as KEDA (Go) does.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import type { CustomCaTrust } from '../../tls/custom-ca.js';
import { MaterialError, parseCertificates, parsePrivateKey } from '../../tls/pem.js';
import { ScalerConfigError, ScalerError } from './scaler.js';

/** A metrics endpoint answers a few kilobytes; this only stops a runaway upstream eating memory. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
/** How much of a non-2xx answer is read: enough for any error document worth quoting. */
export const ERROR_BODY_BYTES = 4096;
/** How much of a non-2xx answer is quoted in the error (after removing secrets). */
export const ERROR_BODY_CHARS = 200;
/** Go's http.Client default, which KEDA uses. */
export const MAX_REDIRECTS = 10;

// --- metadata values, read as KEDA reads them ------------------------------------------------

export function configError(type: string, message: string): ScalerConfigError {
  return new ScalerConfigError(`${type}: ${message}`);
}

/** undefined for a missing or blank value: KEDA treats `""` as not given. */
export function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A finite decimal number (Go's strconv.ParseFloat, without its NaN / Inf / hex forms). */
export function parseNumber(type: string, name: string, raw: string): number {
  const s = raw.trim();
  const n = DECIMAL.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n)) throw configError(type, `${name} "${raw}" is not a number`);
  return n;
}

/** Go's strconv.ParseBool. */
export function parseBool(type: string, name: string, raw: string): boolean {
  const s = raw.trim();
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  throw configError(type, `${name} "${raw}" is not a boolean (true or false)`);
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/**
 * Credentials written into the URL itself (`https://user:pass@host`), taken out of it and sent as
 * basic auth, as Go's client does, unless an auth mode already set an Authorization header. The
 * password (and the header) join `secrets`, so no message shows them.
 */
export function moveUrlCredentialsToBasicAuth(type: string, what: string, url: URL, headers: Record<string, string>, secrets: string[]): void {
  const inUrl = takeUrlCredentials(type, what, url);
  if (!inUrl) return;
  secrets.push(inUrl.password);
  if (headers.authorization === undefined) {
    headers.authorization = basicAuth(inUrl.user, inUrl.password);
    secrets.push(headers.authorization.slice('Basic '.length));
  }
}

function takeUrlCredentials(type: string, what: string, url: URL): { user: string; password: string } | undefined {
  if (url.username === '' && url.password === '') return undefined;
  let user: string;
  let password: string;
  try {
    user = decodeURIComponent(url.username);
    password = decodeURIComponent(url.password);
  } catch {
    throw configError(type, `${what} has malformed credentials (bad percent-encoding)`);
  }
  url.username = '';
  url.password = '';
  return { user, password };
}

/** The URL for messages: without userinfo, with every query value replaced (any may be a key). */
export function showUrl(url: URL): string {
  const u = new URL(url.href);
  u.username = '';
  u.password = '';
  const names = [...new Set([...u.searchParams.keys()])];
  u.search = '';
  const query = names.map((n) => `${encodeURIComponent(n)}=***`).join('&');
  return `${u.origin}${u.pathname}${query ? `?${query}` : ''}`;
}

export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

export function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

// --- secrets --------------------------------------------------------------------------------

/** Replaces every secret (and its percent-encoded form) in a message by `[redacted]`. */
export class SecretScrubber {
  private readonly secrets: string[];

  constructor(secrets: Iterable<string>) {
    this.secrets = [...new Set([...secrets].flatMap((s) => [s, encodeURIComponent(s)]))]
      // Too short to scrub without mangling every message; also too short to be a real secret.
      .filter((s) => s.length >= 4)
      .sort((a, b) => b.length - a.length);
  }

  scrub(message: string): string {
    let out = message;
    for (const s of this.secrets) out = out.split(s).join('[redacted]');
    return out;
  }
}

/** `type url` pairs already warned about for unsafeSsl: once per process, not at every rebuild. */
const unsafeWarned = new Set<string>();

/** The one warning that `unsafeSsl: true` is in use for this upstream. */
export function warnUnsafeSslOnce(log: Logger | undefined, type: string, shownUrl: string): void {
  const key = `${type} ${shownUrl}`;
  if (unsafeWarned.has(key)) return;
  unsafeWarned.add(key);
  log?.warn({ scaler: type, url: shownUrl }, `${type} ${shownUrl}: unsafeSsl is true, the upstream's certificate is NOT verified`);
}

// --- TLS client material --------------------------------------------------------------------

export interface TlsMaterial {
  cert?: string;
  key?: string;
  /** For an encrypted key (KEDA's `keyPassword`). */
  passphrase?: string;
  ca?: string;
}

/**
 * The client certificate and its key, checked now rather than at the first handshake: both parse,
 * and they belong together. `mode` prefixes the messages (e.g. `authMode tls`). `keyPassword`:
 * the scaler takes one (KEDA's `keyPassword`), and this is its value when given.
 */
export function checkClientPair(
  type: string,
  mode: string,
  cert: string,
  key: string,
  keyPassword?: { value: string | undefined },
): { cert: string; key: string; passphrase?: string } {
  const passphrase = keyPassword?.value;
  try {
    const certs = parseCertificates('auth parameter "cert"', cert);
    let keyObject;
    if (passphrase === undefined) {
      if (keyPassword && /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4,ENCRYPTED/.test(key)) {
        throw configError(type, `${mode}: auth parameter "key" is encrypted and no keyPassword is given`);
      }
      keyObject = parsePrivateKey('auth parameter "key"', key);
    } else {
      try {
        keyObject = createPrivateKey({ key, format: 'pem', passphrase });
      } catch {
        // Node's message may quote key bytes; say only what failed.
        throw configError(type, `${mode}: auth parameter "key" cannot be read with the given keyPassword (wrong password, or not a PEM private key)`);
      }
    }
    if (!new X509Certificate(certs[0]!.raw).checkPrivateKey(keyObject)) {
      throw configError(type, `${mode}: the key does not match the certificate`);
    }
  } catch (err) {
    if (err instanceof MaterialError) throw configError(type, `${mode}: ${err.message}`);
    throw err;
  }
  return passphrase === undefined ? { cert, key } : { cert, key, passphrase };
}

/** A CA bundle given as an auth parameter, normalised to its certificates only. `mode` ('' for none) prefixes messages. */
export function checkCa(type: string, mode: string, ca: string): string {
  try {
    return parseCertificates('auth parameter "ca"', ca)
      .map((c) => c.toString().trim())
      .join('\n');
  } catch (err) {
    throw configError(type, `${mode ? `${mode}: ` : ''}${(err as Error).message}`);
  }
}

// Upstreams are third-party servers we do not control: TLS 1.2 is the floor, not 1.3 as for our
// own endpoints.
function upstreamContext(trust: string, material: TlsMaterial): SecureContext {
  return createSecureContext({
    ca: material.ca ? `${trust}\n${material.ca}` : trust,
    ...(material.cert ? { cert: material.cert, key: material.key, ...(material.passphrase !== undefined ? { passphrase: material.passphrase } : {}) } : {}),
    minVersion: 'TLSv1.2',
  });
}

// Parsing the system roots costs milliseconds and most of a megabyte per context: every scaler
// that trusts exactly the shared bundle uses the same context, rebuilt when the bundle changes.
let shared: { trust: string; context: SecureContext } | undefined;
function sharedUpstreamContext(trust: string): SecureContext {
  if (shared?.trust !== trust) shared = { trust, context: upstreamContext(trust, {}) };
  return shared.context;
}

// --- HTTP -----------------------------------------------------------------------------------

export async function readBody(body: Dispatcher.ResponseData['body'], limit: number): Promise<{ text: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      chunks.push(chunk.subarray(0, chunk.length - (size - limit)));
      body.destroy();
      return { text: Buffer.concat(chunks).toString('utf8'), truncated: true };
    }
    chunks.push(chunk);
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated: false };
}

/** OpenSSL's verification failures: the answer to these is trust (a CA in --ca-dir, or `ca`). */
const VERIFY_CODES = /^(UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|CERT_|HOSTNAME_MISMATCH|ERR_TLS_CERT_ALTNAME_INVALID)/;

/**
 * A failed request in words: what went wrong and, where there is one, what to do about it.
 * When an HTTPS upstream closed the connection, `clientCertHint` is added if we sent no client
 * certificate (e.g. `see authMode tls`), `clientCertRefusedHint` if we did.
 */
export function describeNetworkError(err: unknown, clientCertHint: string | undefined, clientCertRefusedHint?: string): string {
  const e = err as NodeJS.ErrnoException & { errors?: unknown[]; cause?: unknown };
  // Happy eyeballs reports an AggregateError with an empty message; the first attempt says it.
  const inner = (e?.message === '' && Array.isArray(e.errors) && e.errors.length > 0 ? e.errors[0] : e) as NodeJS.ErrnoException;
  const code = inner?.code ?? e?.code;
  // Node appends advice about --use-system-ca to verification errors; ours is the one that applies.
  const message = (inner?.message || String(err)).replace(/; if the root CA is installed locally.*$/s, '');
  if (code && VERIFY_CODES.test(code)) {
    return `TLS: the upstream's certificate is not trusted: ${message} (${code}); put its CA in a --ca-dir folder or the trigger's ca`;
  }
  if (code && /^ERR_(SSL|TLS)_/.test(code)) return `TLS handshake failed: ${message} (${code})`;
  if (code === 'ECONNREFUSED') return `connection refused (${message})`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve the host (${message})`;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return `connect timed out (${message})`;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return `the upstream went silent (${message})`;
  if (code === 'UND_ERR_MAX_REDIRECTIONS') return `more than ${MAX_REDIRECTS} redirects`;
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') {
    // With TLS 1.3 a server refuses a missing or untrusted client certificate after the
    // handshake, so the client only sees the connection close.
    const hint =
      clientCertHint ? ` (an upstream that requires a client certificate does this: ${clientCertHint})`
      : clientCertRefusedHint ? ` (an upstream that refuses our client certificate does this: ${clientCertRefusedHint})`
      : '';
    return `the upstream closed the connection: ${message}${hint}`;
  }
  return `request failed: ${message}${code ? ` (${code})` : ''}`;
}

/** `the upstream answered HTTP 503: <the start of its answer, on one line>`. */
export function httpStatusProblem(status: number, body: string): string {
  const snippet = oneLine(body).slice(0, ERROR_BODY_CHARS);
  return `the upstream answered HTTP ${status}${snippet ? `: ${snippet}` : ''}`;
}

export interface UpstreamClientOptions {
  trust: CustomCaTrust;
  /** The whole call (connect, headers, body) is bounded by this. */
  timeoutMs: number;
  /** The origin is https: (plain HTTP needs no TLS context). */
  https: boolean;
  unsafeSsl: boolean;
  tls: TlsMaterial;
  /** Headers not handed to another origin on a redirect (Go keeps them; we do not). */
  stripOnCrossOrigin?: string[];
  /** For describeNetworkError when no client certificate is configured, e.g. `see authMode tls`. */
  clientCertHint: string;
  /** For describeNetworkError when a client certificate is configured (none: no hint). */
  clientCertRefusedHint?: string;
  /** Turns a problem into the scaler's error (its prefix, secrets removed). */
  fail: (problem: string) => ScalerError;
}

export interface UpstreamAnswer {
  status: number;
  /** True for 2xx. */
  ok: boolean;
  /** The whole body for 2xx (at most MAX_BODY_BYTES, else a failure); the first ERROR_BODY_BYTES otherwise. */
  text: string;
}

/** GETs from one upstream; every failure is a ScalerError made by `fail`. */
export class UpstreamClient {
  private dispatcher: Dispatcher | undefined;
  private agent: SharedAgent | undefined;
  /** The trust bundle the current dispatcher was built with. */
  private dispatcherCa: string | undefined;
  private closed = false;

  constructor(private readonly o: UpstreamClientOptions) {}

  async get(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<UpstreamAnswer> {
    const { fail, timeoutMs } = this.o;
    if (this.closed) throw fail('the scaler is closed');
    if (signal.aborted) throw fail('request aborted');
    // A cleared timer, not AbortSignal.timeout: that one would fire (and build an exception)
    // after every call, long after the answer arrived.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    const both = AbortSignal.any([signal, deadline.signal]);
    try {
      const res = await request(url, { method: 'GET', headers, dispatcher: this.currentDispatcher(), signal: both });
      const ok = res.statusCode >= 200 && res.statusCode <= 299;
      if (!ok) {
        const { text } = await readBody(res.body, ERROR_BODY_BYTES);
        return { status: res.statusCode, ok, text };
      }
      const body = await readBody(res.body, MAX_BODY_BYTES);
      if (body.truncated) throw fail(`the answer is larger than ${MAX_BODY_BYTES} bytes`);
      return { status: res.statusCode, ok, text: body.text };
    } catch (err) {
      if (err instanceof ScalerError) throw err;
      if (signal.aborted) throw fail('request aborted');
      if (deadline.signal.aborted) throw fail(`no answer within ${timeoutMs} ms`);
      const https = this.o.https;
      throw fail(describeNetworkError(err, https && !this.o.tls.cert ? this.o.clientCertHint : undefined, https ? this.o.clientCertRefusedHint : undefined));
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.closed = true;
    const agent = this.agent;
    this.agent = undefined;
    this.dispatcher = undefined;
    agent?.release();
  }

  /** One dispatcher per trust bundle: rebuilt only when the trust changes. */
  private currentDispatcher(): Dispatcher {
    const trust = this.o.trust.caBundle();
    if (this.dispatcher && this.dispatcherCa === trust) return this.dispatcher;
    const old = this.agent;
    this.agent = agents.acquire(trust, this.o);
    this.dispatcherCa = trust;
    this.dispatcher = this.agent.agent.compose(
      interceptors.redirect({ maxRedirections: MAX_REDIRECTS, throwOnMaxRedirect: true, stripHeadersOnCrossOriginRedirect: this.o.stripOnCrossOrigin ?? [] }),
    );
    old?.release();
    return this.dispatcher;
  }
}

interface SharedAgent {
  agent: Agent;
  release(): void;
}

/**
 * Connection pools, shared by every scaler that connects the same way (scheme, trust bundle,
 * unsafeSsl, timeout, no client material of its own), as KEDA shares its HTTP transports: a
 * thousand ScaledObjects on one upstream reuse a few keep-alive connections instead of holding a
 * pool each. A scaler with its own client certificate or CA has a pool of its own. A pool goes
 * when its last scaler does (requests still running finish; idle connections close).
 */
const agents = {
  shared: new Map<string, { trust: string; agent: Agent; users: number }>(),

  acquire(trust: string, o: UpstreamClientOptions): SharedAgent {
    // The whole call is bounded by timeoutMs through the abort signal; undici's own timers are
    // only a backstop, set later so that the signal (and its clear message) always wins.
    const backstop = o.timeoutMs + 1000;
    const create = (secureContext: SecureContext | undefined) =>
      new Agent({
        connect: { ...(secureContext ? { secureContext } : {}), rejectUnauthorized: !o.unsafeSsl, timeout: backstop },
        headersTimeout: backstop,
        bodyTimeout: backstop,
        allowH2: false,
      });
    if (o.https && (o.tls.cert || o.tls.ca)) {
      const agent = create(upstreamContext(trust, o.tls));
      return { agent, release: () => void agent.close().catch(() => undefined) };
    }
    const key = `${o.https ? 'https' : 'http'}|${o.unsafeSsl}|${backstop}`;
    let entry = this.shared.get(key);
    if (!entry || entry.trust !== trust) {
      // Plain HTTP needs no TLS context; HTTPS shares one per trust bundle.
      entry = { trust, agent: create(o.https ? sharedUpstreamContext(trust) : undefined), users: 0 };
      this.shared.set(key, entry);
    }
    const mine = entry;
    mine.users++;
    let released = false;
    return {
      agent: mine.agent,
      release: () => {
        if (released) return;
        released = true;
        if (--mine.users > 0) return;
        if (this.shared.get(key) === mine) this.shared.delete(key);
        void mine.agent.close().catch(() => undefined);
      },
    };
  },
};
