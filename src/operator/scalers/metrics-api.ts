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
import { QuantityError, parseQuantity, quantityToNumber } from '../../k8s/quantity.js';
import {
  SecretScrubber,
  UpstreamClient,
  basicAuth,
  checkCa,
  checkClientPair,
  configError as upstreamConfigError,
  httpStatusProblem,
  nonEmpty,
  optionalBool,
  parseNumber as upstreamParseNumber,
  showUrl,
  moveUrlCredentialsToBasicAuth,
  truncate,
  warnUnsafeSslOnce,
  type TlsMaterial,
} from './http-upstream.js';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { ScalerError, type Scaler, type ScalerConfigError, type ScalerContext, type ScalerFactory } from './scaler.js';

const TYPE = 'metrics-api';
const AUTH_MODES = ['bearer', 'basic', 'tls', 'apiKey'] as const;
type AuthMode = (typeof AUTH_MODES)[number];

export const createMetricsApiScaler: ScalerFactory = (ctx) => new MetricsApiScaler(ctx);

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
  private readonly scrubber: SecretScrubber;
  private readonly client: UpstreamClient;
  private readonly validateOnly: boolean;

  constructor(ctx: ScalerContext) {
    const md = ctx.trigger.metadata ?? {};
    const fromMeta = (name: string): string | undefined => nonEmpty(md[name]) ?? nonEmpty(ctx.auth[name]);
    const fromAuth = (name: string): string | undefined => nonEmpty(ctx.auth[name]) ?? nonEmpty(md[name]);
    // Validation only (an admission webhook, which cannot read Secrets): the metadata is checked
    // in full, missing credentials are not an error, and the scaler never sends a request.
    this.validateOnly = ctx.validateOnly === true;
    const missing = (message: string): void => {
      if (!this.validateOnly) throw configError(message);
    };

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
    const unsafeSsl = optionalBool(TYPE, md, 'unsafeSsl', false);
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`metric-api-${valueLocation}`));

    // --- how to authenticate -------------------------------------------------------------------
    const headers: Record<string, string> = { accept: 'application/json' };
    const secrets: string[] = [];
    const tlsMaterial: TlsMaterial = {};
    const stripOnCrossOrigin: string[] = [];
    const authMode = fromMeta('authMode')?.trim();
    if (authMode !== undefined && !(AUTH_MODES as readonly string[]).includes(authMode)) {
      throw configError(`authMode "${authMode}" is not supported (one of: ${AUTH_MODES.join(', ')})`);
    }
    switch (authMode as AuthMode | undefined) {
      case 'bearer': {
        const token = fromAuth('token');
        if (token === undefined) {
          missing('authMode bearer: no token provided');
          break;
        }
        headers.authorization = `Bearer ${token.trim()}`;
        secrets.push(token.trim(), headers.authorization);
        break;
      }
      case 'basic': {
        const username = fromAuth('username');
        // The password is optional, as in KEDA: some APIs take the key as user name and nothing else.
        const password = fromAuth('password') ?? '';
        secrets.push(password);
        if (username === undefined) {
          missing('authMode basic: no username given');
          break;
        }
        headers.authorization = basicAuth(username, password);
        secrets.push(headers.authorization.slice('Basic '.length));
        break;
      }
      case 'tls': {
        const cert = fromAuth('cert');
        const key = fromAuth('key');
        if (cert === undefined) missing('authMode tls: no cert given');
        else if (key === undefined) missing('authMode tls: no key given');
        else Object.assign(tlsMaterial, checkClientPair(TYPE, 'authMode tls', cert, key));
        // KEDA requires ca here; we accept its absence (the system roots and --ca-dir still apply).
        const ca = fromAuth('ca');
        if (ca !== undefined) tlsMaterial.ca = checkCa(TYPE, 'authMode tls', ca);
        break;
      }
      case 'apiKey': {
        const method = fromMeta('method') ?? 'header';
        if (method !== 'header' && method !== 'query') throw configError(`method "${method}" is not supported (header or query)`);
        const param = fromMeta('keyParamName');
        const apiKey = fromAuth('apiKey');
        if (apiKey === undefined) {
          missing('authMode apiKey: no apiKey provided');
          break;
        }
        secrets.push(apiKey);
        if (method === 'query') {
          url.searchParams.set(param ?? 'api_key', apiKey);
        } else {
          const header = (param ?? 'X-API-KEY').toLowerCase();
          headers[header] = apiKey;
          // Go keeps custom headers across redirects; we do not hand the key to another origin.
          stripOnCrossOrigin.push(header);
        }
        break;
      }
      case undefined:
        break;
    }
    moveUrlCredentialsToBasicAuth(TYPE, 'url', url, headers, secrets);
    this.url = url;
    this.headers = headers;
    this.scrubber = new SecretScrubber(secrets);
    this.shownUrl = showUrl(url);
    this.client = new UpstreamClient({
      trust: ctx.trust,
      timeoutMs: ctx.timeoutMs,
      https: url.protocol === 'https:',
      unsafeSsl,
      tls: tlsMaterial,
      stripOnCrossOrigin,
      clientCertHint: 'see authMode tls',
      fail: (problem) => this.fail(problem),
    });

    if (unsafeSsl && !this.validateOnly) warnUnsafeSslOnce(ctx.log, TYPE, this.shownUrl);
  }

  isActive(value: number): boolean {
    return value > this.activationTargetValue; // KEDA: strictly above the activation target
  }

  async getMetricValue(signal: AbortSignal): Promise<number> {
    if (this.validateOnly) throw this.fail('this scaler was built to validate the trigger only, not to query');
    const res = await this.client.get(this.url, this.headers, signal);
    if (!res.ok) throw this.fail(httpStatusProblem(res.status, res.text));
    let doc: unknown;
    try {
      doc = JSON.parse(res.text.replace(/^\uFEFF/, ''));
    } catch (err) {
      throw this.fail(`the answer is not valid JSON (${(err as Error).message})`);
    }
    return this.extract(doc);
  }

  close(): void {
    this.client.close();
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

  private fail(problem: string): ScalerError {
    return new ScalerError(this.scrubber.scrub(`${TYPE} ${this.shownUrl}: ${problem}`));
  }
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

// --- helpers ------------------------------------------------------------------------------------

function configError(message: string): ScalerConfigError {
  return upstreamConfigError(TYPE, message);
}

function parseNumber(name: string, raw: string): number {
  return upstreamParseNumber(TYPE, name, raw);
}
