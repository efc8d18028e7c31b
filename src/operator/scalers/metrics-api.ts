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
  UpstreamClient,
  setBasicAuth,
  setBearerAuth,
  httpStatusProblem,
  showUrl,
  moveUrlCredentialsToBasicAuth,
} from './http-upstream.js';
import {
  SecretScrubber,
  checkCa,
  checkClientPair,
  configError as upstreamConfigError,
  truncate,
  warnUnsafeSslOnce,
  type TlsMaterial,
} from './upstream.js';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { readParameters, type ParamSpec } from './parameters.js';
import { ScalerError, type Scaler, type ScalerConfigError, type ScalerContext, type ScalerFactory } from './scaler.js';

const TYPE = 'metrics-api';
const AUTH_MODES = ['bearer', 'basic', 'tls', 'apiKey'] as const;
type AuthMode = (typeof AUTH_MODES)[number];

/** What the metrics-api scaler reads (the README's table is generated from this). */
export const METRICS_API_PARAMETERS: readonly ParamSpec[] = [
  { name: 'url', type: 'url', from: 'metadata', required: true, doc: 'The JSON endpoint. Credentials written in it (`https://user:pass@host`) are sent as basic auth and never shown.' },
  { name: 'valueLocation', type: 'string', from: 'metadata', required: true, doc: 'Where the number is in the answer: dotted keys and array indices (`data.items.0.value`), the subset of GJSON paths KEDA users write.' },
  { name: 'format', type: 'enum', values: ['json'], from: 'metadata', default: 'json', doc: 'KEDA\'s `prometheus`, `xml` and `yaml` formats are not implemented.' },
  { name: 'targetValue', type: 'number', from: 'metadata', required: (ctx) => ctx.trigger.metricType !== 'Utilization', doc: 'The HPA target. Required, except with metricType Utilization.' },
  { name: 'activationTargetValue', type: 'number', from: 'metadata', default: 0, doc: 'Active (scaled from zero) strictly above this value.' },
  { name: 'unsafeSsl', type: 'bool', from: 'metadata', default: false, doc: 'Skips verifying the upstream\'s certificate (warned about once). Put its CA in `--ca-dir` instead.' },
  { name: 'authMode', type: 'enum', values: AUTH_MODES, from: 'metadata, then auth', doc: 'How to authenticate; each mode\'s parameters below.' },
  { name: 'token', type: 'string', from: 'auth, then metadata', requiredWith: { param: 'authMode', value: 'bearer' }, secret: true, doc: 'Sent as `Authorization: Bearer`.' },
  { name: 'username', type: 'string', from: 'auth, then metadata', requiredWith: { param: 'authMode', value: 'basic' }, doc: 'Basic auth user.' },
  { name: 'password', type: 'string', from: 'auth, then metadata', secret: true, doc: 'Basic auth password (optional, as in KEDA).' },
  { name: 'cert', type: 'string', from: 'auth, then metadata', requiredWith: { param: 'authMode', value: 'tls' }, doc: 'Client certificate (PEM) for authMode tls.' },
  { name: 'key', type: 'string', from: 'auth, then metadata', requiredWith: { param: 'authMode', value: 'tls' }, secret: true, doc: 'Its private key (PEM).' },
  { name: 'ca', type: 'string', from: 'auth, then metadata', doc: 'With authMode tls: a CA (PEM) trusted for this upstream, besides the system roots and `--ca-dir` (optional here; KEDA requires it).' },
  { name: 'apiKey', type: 'string', from: 'auth, then metadata', requiredWith: { param: 'authMode', value: 'apiKey' }, secret: true, doc: 'The key for authMode apiKey.' },
  { name: 'method', type: 'enum', values: ['header', 'query'], from: 'metadata, then auth', default: 'header', doc: 'authMode apiKey: send the key as a header or a query parameter.' },
  { name: 'keyParamName', type: 'string', from: 'metadata, then auth', doc: 'authMode apiKey: the header (default `X-API-KEY`) or query parameter (default `api_key`) name.' },
];

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
    // Validation only (an admission webhook, which cannot read Secrets): the metadata is checked
    // in full, missing credentials are not an error, and the scaler never sends a request.
    this.validateOnly = ctx.validateOnly === true;
    const p = readParameters(TYPE, METRICS_API_PARAMETERS, ctx);

    // --- what to read --------------------------------------------------------------------------
    const url = p.url('url')!;
    this.valueLocation = p.string('valueLocation')!;
    this.path = parseValueLocation(this.valueLocation);
    this.targetValue = p.number('targetValue') ?? 0;
    this.activationTargetValue = p.number('activationTargetValue')!;
    const unsafeSsl = p.bool('unsafeSsl');
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`metric-api-${this.valueLocation}`));

    // --- how to authenticate -------------------------------------------------------------------
    const headers: Record<string, string> = { accept: 'application/json' };
    const secrets: string[] = [];
    const tlsMaterial: TlsMaterial = {};
    const stripOnCrossOrigin: string[] = [];
    switch (p.string('authMode') as AuthMode | undefined) {
      case 'bearer': {
        const token = p.string('token')?.trim();
        if (token !== undefined) setBearerAuth(headers, secrets, token); // undefined: validate-only
        break;
      }
      case 'basic': {
        const username = p.string('username');
        // The password is optional, as in KEDA: some APIs take the key as user name and nothing else.
        const password = p.string('password') ?? '';
        secrets.push(password);
        if (username !== undefined) setBasicAuth(headers, secrets, username, password);
        break;
      }
      case 'tls': {
        const cert = p.string('cert');
        const key = p.string('key');
        if (cert !== undefined && key !== undefined) Object.assign(tlsMaterial, checkClientPair(TYPE, 'authMode tls', cert, key));
        // KEDA requires ca here; we accept its absence (the system roots and --ca-dir still apply).
        const ca = p.string('ca');
        if (ca !== undefined) tlsMaterial.ca = checkCa(TYPE, 'authMode tls', ca);
        break;
      }
      case 'apiKey': {
        const param = p.string('keyParamName');
        const apiKey = p.string('apiKey');
        if (apiKey === undefined) break;
        secrets.push(apiKey);
        if (p.string('method') === 'query') {
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
