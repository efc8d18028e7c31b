// What the scalers that read an HTTP(S) upstream share (metrics-api, prometheus, rabbitmq,
// nats-jetstream): the undici client (one dispatcher per trust bundle, rebuilt when the --ca-dir
// trust changes, pooled across scalers), bounded reading of answers, and credentials in URLs.
import type { SecureContext } from 'node:tls';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import type { CustomCaTrust } from '../../tls/custom-ca.js';
import { ScalerError } from './scaler.js';
import { configError, describeNetworkError, oneLine, upstreamSecureContext, type TlsMaterial } from './upstream.js';

/** A metrics endpoint answers a few kilobytes; this only stops a runaway upstream eating memory. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
/** How much of a non-2xx answer is read: enough for any error document worth quoting. */
export const ERROR_BODY_BYTES = 4096;
/** How much of a non-2xx answer is quoted in the error (after removing secrets). */
export const ERROR_BODY_CHARS = 200;
/** Go's http.Client default, which KEDA uses. */
export const MAX_REDIRECTS = 10;
/** Connections one pool opens to one origin at most. */
export const MAX_CONNECTIONS_PER_ORIGIN = 32;

/** Basic auth on the requests; the encoded credentials join `secrets` (the password should be there already). */
export function setBasicAuth(headers: Record<string, string>, secrets: string[], user: string, password: string): void {
  const encoded = Buffer.from(`${user}:${password}`).toString('base64');
  headers.authorization = `Basic ${encoded}`;
  secrets.push(encoded);
}

/** A bearer token on the requests; the token and the header join `secrets`. */
export function setBearerAuth(headers: Record<string, string>, secrets: string[], token: string): void {
  headers.authorization = `Bearer ${token}`;
  secrets.push(token, headers.authorization);
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
  if (headers.authorization === undefined) setBasicAuth(headers, secrets, inUrl.user, inUrl.password);
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

// --- HTTP -----------------------------------------------------------------------------------

/** The body as text, at most `limit` bytes of it (then the rest is not read and the connection is dropped). */
export function readBody(body: Dispatcher.ResponseData['body'], limit: number): Promise<{ text: string; truncated: boolean }> {
  // Events, not `for await`: an async iterator costs a promise and a stream-state object per chunk,
  // on every query of every scaler that reads HTTP.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      chunks.push(chunk.subarray(0, chunk.length - (size - limit)));
      body.destroy();
      resolve({ text: Buffer.concat(chunks).toString('utf8'), truncated: true });
    });
    body.on('end', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), truncated: false }));
    body.on('error', reject);
  });
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
    // after every call, long after the answer arrived. One controller for both, not
    // AbortSignal.any: a composite signal per call costs weak references and GC work.
    const both = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      both.abort();
    }, timeoutMs);
    const follow = () => both.abort();
    signal.addEventListener('abort', follow, { once: true });
    try {
      const res = await request(url, { method: 'GET', headers, dispatcher: this.currentDispatcher(), signal: both.signal });
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
      if (timedOut) throw fail(`no answer within ${timeoutMs} ms`);
      const https = this.o.https;
      throw fail(describeNetworkError(err, https && !this.o.tls.cert ? this.o.clientCertHint : undefined, https ? this.o.clientCertRefusedHint : undefined));
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', follow);
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
        // Per origin: a thousand triggers polled at once on one upstream queue for these instead
        // of opening a thousand connections (the call's timeout covers the wait).
        connections: MAX_CONNECTIONS_PER_ORIGIN,
      });
    if (o.https && (o.tls.cert || o.tls.ca)) {
      const agent = create(upstreamSecureContext(trust, o.tls));
      return { agent, release: () => void agent.close().catch(() => undefined) };
    }
    const key = `${o.https ? 'https' : 'http'}|${o.unsafeSsl}|${backstop}`;
    let entry = this.shared.get(key);
    if (!entry || entry.trust !== trust) {
      // Plain HTTP needs no TLS context; HTTPS shares one per trust bundle.
      entry = { trust, agent: create(o.https ? upstreamSecureContext(trust) : undefined), users: 0 };
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
