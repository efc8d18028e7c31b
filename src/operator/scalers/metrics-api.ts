// KEDA's `metrics-api` scaler: GET a URL, read one number out of the JSON answer.
// https://keda.sh/docs/latest/scalers/metrics-api/
//
// Metadata (as KEDA): url, valueLocation, targetValue, activationTargetValue, format (json only
// here), unsafeSsl, and authMode / method / keyParamName. The secrets come from the trigger's
// authentication (token, username/password, cert/key/ca, apiKey); like KEDA, the metadata is the
// fallback for them, and the first place looked at for authMode, method and keyParamName.
//
// What the upstream says is never improved upon: unreachable, slow, non-2xx, not JSON, no value
// or not a number is a ScalerError naming the URL (credentials and query values removed) and the
// problem. Secrets never appear in messages or logs.
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { QuantityError, parseQuantity, quantityToNumber } from '../../k8s/quantity.js';
import { MaterialError, parseCertificates, parsePrivateKey } from '../../tls/pem.js';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { ScalerConfigError, ScalerError, type Scaler, type ScalerContext, type ScalerFactory } from './scaler.js';

const TYPE = 'metrics-api';
/** A metrics endpoint answers a few kilobytes; this only stops a runaway upstream eating memory. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;
/** How much of a non-2xx answer is quoted in the error (after removing secrets). */
const ERROR_BODY_CHARS = 200;
/** Go's http.Client default, which KEDA uses. */
const MAX_REDIRECTS = 10;
const AUTH_MODES = ['bearer', 'basic', 'tls', 'apiKey'] as const;
type AuthMode = (typeof AUTH_MODES)[number];

/** URLs already warned about for unsafeSsl: once per process, not at every rebuild of the scaler. */
const unsafeWarned = new Set<string>();

export const createMetricsApiScaler: ScalerFactory = (ctx) => new MetricsApiScaler(ctx);

interface TlsMaterial {
  cert?: string;
  key?: string;
  ca?: string;
}

class MetricsApiScaler implements Scaler {
  readonly metricName: string;
  readonly targetValue: number;
  private readonly activationTargetValue: number;
  private readonly url: URL;
  /** The URL as it may be shown: no userinfo, query values replaced. */
  private readonly shownUrl: string;
  private readonly path: PathSegment[];
  private readonly valueLocation: string;
  private readonly headers: Record<string, string>;
  private readonly secrets: string[];
  private readonly unsafeSsl: boolean;
  private readonly tlsMaterial: TlsMaterial;
  private readonly stripOnCrossOrigin: string[];
  private dispatcher: Dispatcher | undefined;
  private agent: Agent | undefined;
  /** The trust bundle the current dispatcher was built with. */
  private dispatcherCa: string | undefined;
  private closed = false;

  constructor(private readonly ctx: ScalerContext) {
    const md = ctx.trigger.metadata ?? {};
    const fromMeta = (name: string): string | undefined => nonEmpty(md[name]) ?? nonEmpty(ctx.auth[name]);
    const fromAuth = (name: string): string | undefined => nonEmpty(ctx.auth[name]) ?? nonEmpty(md[name]);

    // --- what to read --------------------------------------------------------------------------
    const rawUrl = nonEmpty(md.url);
    if (rawUrl === undefined) throw configError('no url given in metadata');
    let url: URL;
    try {
      url = new URL(rawUrl.trim());
    } catch {
      throw configError('url is not a valid URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw configError(`url must be http or https, not ${url.protocol.replace(/:$/, '')}`);

    const valueLocation = nonEmpty(md.valueLocation);
    if (valueLocation === undefined) throw configError('no valueLocation given in metadata');
    this.valueLocation = valueLocation;
    this.path = parseValueLocation(valueLocation);

    const format = (md.format ?? 'json').trim();
    if (format !== 'json') throw configError(`format "${format}" is not supported: only json is (KEDA's prometheus, xml and yaml formats are not implemented)`);

    const target = nonEmpty(md.targetValue);
    if (target === undefined) {
      if (ctx.trigger.metricType !== 'Utilization') throw configError('no targetValue given in metadata');
      this.targetValue = 0;
    } else {
      this.targetValue = parseNumber('targetValue', target);
    }
    const activation = nonEmpty(md.activationTargetValue);
    this.activationTargetValue = activation === undefined ? 0 : parseNumber('activationTargetValue', activation);
    this.unsafeSsl = md.unsafeSsl === undefined || md.unsafeSsl.trim() === '' ? false : parseBool('unsafeSsl', md.unsafeSsl);
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`metric-api-${valueLocation}`));

    // --- how to authenticate -------------------------------------------------------------------
    const headers: Record<string, string> = { accept: 'application/json' };
    const secrets: string[] = [];
    const tlsMaterial: TlsMaterial = {};
    this.stripOnCrossOrigin = [];
    const authMode = fromMeta('authMode')?.trim();
    if (authMode !== undefined && !(AUTH_MODES as readonly string[]).includes(authMode)) {
      throw configError(`authMode "${authMode}" is not supported (one of: ${AUTH_MODES.join(', ')})`);
    }
    switch (authMode as AuthMode | undefined) {
      case 'bearer': {
        const token = fromAuth('token');
        if (token === undefined) throw configError('authMode bearer: no token provided');
        headers.authorization = `Bearer ${token.trim()}`;
        secrets.push(token.trim(), headers.authorization);
        break;
      }
      case 'basic': {
        const username = fromAuth('username');
        if (username === undefined) throw configError('authMode basic: no username given');
        // The password is optional, as in KEDA: some APIs take the key as user name and nothing else.
        const password = fromAuth('password') ?? '';
        headers.authorization = basicAuth(username, password);
        secrets.push(password, headers.authorization.slice('Basic '.length));
        break;
      }
      case 'tls': {
        const cert = fromAuth('cert');
        const key = fromAuth('key');
        if (cert === undefined) throw configError('authMode tls: no cert given');
        if (key === undefined) throw configError('authMode tls: no key given');
        Object.assign(tlsMaterial, checkClientPair(cert, key));
        // KEDA requires ca here; we accept its absence (the system roots and --ca-dir still apply).
        const ca = fromAuth('ca');
        if (ca !== undefined) tlsMaterial.ca = checkCa(ca);
        break;
      }
      case 'apiKey': {
        const apiKey = fromAuth('apiKey');
        if (apiKey === undefined) throw configError('authMode apiKey: no apiKey provided');
        const method = fromMeta('method') ?? 'header';
        if (method !== 'header' && method !== 'query') throw configError(`method "${method}" is not supported (header or query)`);
        const param = fromMeta('keyParamName');
        secrets.push(apiKey);
        if (method === 'query') {
          url.searchParams.set(param ?? 'api_key', apiKey);
        } else {
          const header = (param ?? 'X-API-KEY').toLowerCase();
          headers[header] = apiKey;
          // Go keeps custom headers across redirects; we do not hand the key to another origin.
          this.stripOnCrossOrigin.push(header);
        }
        break;
      }
      case undefined:
        break;
    }
    // Credentials in the URL itself: Go's client turns them into basic auth, so do we.
    if (url.username !== '' || url.password !== '') {
      let user: string;
      let pass: string;
      try {
        user = decodeURIComponent(url.username);
        pass = decodeURIComponent(url.password);
      } catch {
        throw configError('url has malformed credentials (bad percent-encoding)');
      }
      secrets.push(pass);
      if (headers.authorization === undefined) {
        headers.authorization = basicAuth(user, pass);
        secrets.push(headers.authorization.slice('Basic '.length));
      }
      url.username = '';
      url.password = '';
    }
    this.url = url;
    this.headers = headers;
    this.tlsMaterial = tlsMaterial;
    this.secrets = [...new Set(secrets.flatMap((s) => [s, encodeURIComponent(s)]))]
      // Too short to scrub without mangling every message; also too short to be a real secret.
      .filter((s) => s.length >= 4)
      .sort((a, b) => b.length - a.length);
    this.shownUrl = showUrl(url);

    if (this.unsafeSsl && !unsafeWarned.has(this.shownUrl)) {
      unsafeWarned.add(this.shownUrl);
      ctx.log?.warn({ scaler: TYPE, url: this.shownUrl }, `metrics-api ${this.shownUrl}: unsafeSsl is true, the upstream's certificate is NOT verified`);
    }
  }

  isActive(value: number): boolean {
    return value > this.activationTargetValue; // KEDA: strictly above the activation target
  }

  async getMetricValue(signal: AbortSignal): Promise<number> {
    if (this.closed) throw this.fail('the scaler is closed');
    if (signal.aborted) throw this.fail('request aborted');
    // A cleared timer, not AbortSignal.timeout: that one would fire (and build an exception)
    // after every call, long after the answer arrived.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.ctx.timeoutMs);
    const both = AbortSignal.any([signal, deadline.signal]);
    let text: string;
    try {
      const res = await request(this.url, {
        method: 'GET',
        headers: this.headers,
        dispatcher: this.currentDispatcher(),
        signal: both,
      });
      if (res.statusCode < 200 || res.statusCode > 299) {
        const { text: body } = await readBody(res.body, 4096);
        const snippet = oneLine(body).slice(0, ERROR_BODY_CHARS);
        throw this.fail(`the upstream answered HTTP ${res.statusCode}${snippet ? `: ${snippet}` : ''}`);
      }
      const body = await readBody(res.body, MAX_BODY_BYTES);
      if (body.truncated) throw this.fail(`the answer is larger than ${MAX_BODY_BYTES} bytes`);
      text = body.text;
    } catch (err) {
      if (err instanceof ScalerError) throw err;
      if (signal.aborted) throw this.fail('request aborted');
      if (deadline.signal.aborted) throw this.fail(`no answer within ${this.ctx.timeoutMs} ms`);
      throw this.fail(describeNetworkError(err, this.url.protocol === 'https:' && !this.tlsMaterial.cert));
    } finally {
      clearTimeout(timer);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text.replace(/^\uFEFF/, ''));
    } catch (err) {
      throw this.fail(`the answer is not valid JSON (${(err as Error).message})`);
    }
    return this.extract(doc);
  }

  close(): void {
    this.closed = true;
    const agent = this.agent;
    this.agent = undefined;
    this.dispatcher = undefined;
    agent?.destroy().catch(() => undefined);
  }

  private extract(doc: unknown): number {
    const found = lookup(doc, this.path);
    if (!found.ok) throw this.fail(`no value at "${this.valueLocation}": ${found.reason}`);
    const v = found.value;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw this.fail(`value at "${this.valueLocation}" is not a finite number`);
      return v;
    }
    if (typeof v === 'string') {
      const n = quantityValue(v);
      if (n === undefined) throw this.fail(`value at "${this.valueLocation}" is not a number (${JSON.stringify(truncate(v, 64))})`);
      return n;
    }
    const kind = v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
    throw this.fail(`value at "${this.valueLocation}" is not a number (got ${kind})`);
  }

  /** One dispatcher (and one TLS context) per trust bundle: rebuilt only when the trust changes. */
  private currentDispatcher(): Dispatcher {
    const trust = this.ctx.trust.caBundle();
    if (this.dispatcher && this.dispatcherCa === trust) return this.dispatcher;
    // Plain HTTP needs no TLS context at all; HTTPS without client material shares one per bundle.
    const secureContext: SecureContext | undefined =
      this.url.protocol !== 'https:' ? undefined
      : this.tlsMaterial.cert || this.tlsMaterial.ca ? upstreamContext(trust, this.tlsMaterial)
      : sharedUpstreamContext(trust);
    // The whole call is bounded by timeoutMs through the abort signal; undici's own timers are
    // only a backstop, set later so that the signal (and its clear message) always wins.
    const backstop = this.ctx.timeoutMs + 1000;
    const agent = new Agent({
      connect: { ...(secureContext ? { secureContext } : {}), rejectUnauthorized: !this.unsafeSsl, timeout: backstop },
      headersTimeout: backstop,
      bodyTimeout: backstop,
      allowH2: false,
    });
    const old = this.agent;
    this.agent = agent;
    this.dispatcherCa = trust;
    this.dispatcher = agent.compose(
      interceptors.redirect({ maxRedirections: MAX_REDIRECTS, throwOnMaxRedirect: true, stripHeadersOnCrossOriginRedirect: this.stripOnCrossOrigin }),
    );
    // Requests still running on the old one finish; its idle connections go.
    old?.close().catch(() => undefined);
    return this.dispatcher;
  }

  private fail(problem: string): ScalerError {
    return new ScalerError(this.scrub(`${TYPE} ${this.shownUrl}: ${problem}`));
  }

  private scrub(message: string): string {
    let out = message;
    for (const s of this.secrets) out = out.split(s).join('[redacted]');
    return out;
  }
}

// Upstreams are third-party servers we do not control: TLS 1.2 is the floor, not 1.3 as for our
// own endpoints.
function upstreamContext(trust: string, material: { ca?: string; cert?: string; key?: string }): SecureContext {
  return createSecureContext({
    ca: material.ca ? `${trust}\n${material.ca}` : trust,
    ...(material.cert ? { cert: material.cert, key: material.key } : {}),
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

// --- valueLocation ------------------------------------------------------------------------------

type PathSegment = string;

/**
 * A subset of GJSON paths (what KEDA evaluates valueLocation with): keys separated by dots, `\.`
 * for a dot inside a key, and numeric segments that index arrays (`data.items.0.value`). Nothing
 * fancier: wildcards (`*`, `?`), `#` array queries, `|` pipes, `@` modifiers and multipaths are
 * refused at configuration time rather than silently read differently.
 */
export function parseValueLocation(location: string): PathSegment[] {
  const segments: string[] = [];
  let cur = '';
  for (let i = 0; i < location.length; i++) {
    const c = location[i]!;
    if (c === '\\' && i + 1 < location.length) {
      cur += location[++i];
      continue;
    }
    if (c === '.') {
      segments.push(cur);
      cur = '';
      continue;
    }
    if (c === '*' || c === '?' || c === '#' || c === '|') throw unsupportedPath(location, `"${c}"`);
    if (cur === '' && (c === '@' || c === '!' || c === '[' || c === '{')) throw unsupportedPath(location, `a key starting with "${c}"`);
    cur += c;
  }
  segments.push(cur);
  if (segments.some((s) => s === '')) throw configError(`valueLocation "${location}" has an empty key`);
  return segments;
}

function unsupportedPath(location: string, what: string): ScalerConfigError {
  return configError(`valueLocation "${location}" uses ${what}: only dotted keys and array indices are supported (no GJSON wildcards, queries, pipes or modifiers)`);
}

type Lookup = { ok: true; value: unknown } | { ok: false; reason: string };

function lookup(doc: unknown, path: PathSegment[]): Lookup {
  let cur: unknown = doc;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const where = i === 0 ? 'the document' : `"${path.slice(0, i).join('.')}"`;
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(seg)) return { ok: false, reason: `${where} is an array, "${seg}" is not an index` };
      const idx = Number(seg);
      if (idx >= cur.length) return { ok: false, reason: `${where} has no index ${idx} (array of ${cur.length})` };
      cur = cur[idx];
    } else if (cur !== null && typeof cur === 'object') {
      if (!Object.hasOwn(cur, seg)) return { ok: false, reason: `${where} has no key "${seg}"` };
      cur = (cur as Record<string, unknown>)[seg];
    } else {
      return { ok: false, reason: `${where} is ${cur === null ? 'null' : `a ${typeof cur}`}, not an object or array` };
    }
  }
  return { ok: true, value: cur };
}

// --- numbers ------------------------------------------------------------------------------------

const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

function parseNumber(name: string, raw: string): number {
  const s = raw.trim();
  const n = DECIMAL.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n)) throw configError(`${name} "${raw}" is not a number`);
  return n;
}

/**
 * A string value, read as KEDA does (Kubernetes resource.ParseQuantity): "12.5", "-3", "250m",
 * "1Ki", "2e3". undefined when it is not one.
 */
function quantityValue(s: string): number | undefined {
  try {
    const n = quantityToNumber(parseQuantity(s));
    return Number.isFinite(n) ? n : undefined;
  } catch (err) {
    if (err instanceof QuantityError) return undefined;
    throw err;
  }
}

/** Go's strconv.ParseBool. */
function parseBool(name: string, raw: string): boolean {
  const s = raw.trim();
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  throw configError(`${name} "${raw}" is not a boolean (true or false)`);
}

// --- TLS client material ------------------------------------------------------------------------

function checkClientPair(cert: string, key: string): { cert: string; key: string } {
  try {
    const certs = parseCertificates('auth parameter "cert"', cert);
    const keyObject = parsePrivateKey('auth parameter "key"', key);
    if (!new X509Certificate(certs[0]!.raw).checkPrivateKey(keyObject)) {
      throw configError('authMode tls: the key does not match the certificate');
    }
  } catch (err) {
    if (err instanceof MaterialError) throw configError(`authMode tls: ${err.message}`);
    throw err;
  }
  return { cert, key };
}

function checkCa(ca: string): string {
  try {
    return parseCertificates('auth parameter "ca"', ca)
      .map((c) => c.toString().trim())
      .join('\n');
  } catch (err) {
    throw configError(`authMode tls: ${(err as Error).message}`);
  }
}

// --- HTTP ---------------------------------------------------------------------------------------

async function readBody(body: Dispatcher.ResponseData['body'], limit: number): Promise<{ text: string; truncated: boolean }> {
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

function describeNetworkError(err: unknown, httpsWithoutClientCert: boolean): string {
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
    const hint = httpsWithoutClientCert ? ' (an upstream that requires a client certificate does this: see authMode tls)' : '';
    return `the upstream closed the connection: ${message}${hint}`;
  }
  return `request failed: ${message}${code ? ` (${code})` : ''}`;
}

// --- helpers ------------------------------------------------------------------------------------

function configError(message: string): ScalerConfigError {
  return new ScalerConfigError(`${TYPE}: ${message}`);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** The URL for messages: without userinfo, with every query value replaced (any may be a key). */
function showUrl(url: URL): string {
  const u = new URL(url.href);
  u.username = '';
  u.password = '';
  const names = [...new Set([...u.searchParams.keys()])];
  u.search = '';
  const query = names.map((n) => `${encodeURIComponent(n)}=***`).join('&');
  return `${u.origin}${u.pathname}${query ? `?${query}` : ''}`;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
