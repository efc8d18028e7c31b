// KEDA's `prometheus` scaler: one instant PromQL query against Prometheus' HTTP API (or anything
// that speaks it: Thanos querier, Cortex/Mimir, VictoriaMetrics, an authenticating proxy).
// https://keda.sh/docs/latest/scalers/prometheus/
//
// Metadata (as KEDA): serverAddress, query, threshold, activationThreshold, namespace (sent as the
// `namespace` query parameter, for multi-tenant queriers), customHeaders (`k1=v1,k2=v2`),
// queryParameters (`k1=v1,...`), ignoreNullValues (default true), unsafeSsl, timeout (ms) and
// authModes (comma list of bearer, basic, tls, custom). The secrets come from the trigger's
// authentication only, with KEDA's names: bearerToken; username/password; cert/key/keyPassword/ca;
// customAuthHeader/customAuthValue. An auth parameter `ca` is trusted in every mode.
//
// The request is KEDA's: GET <serverAddress>/api/v1/query?query=<q>&time=<now, RFC 3339>, plus
// namespace and the extra parameters. The answer must be one sample (a one-series vector, or a
// scalar) holding a finite number; anything else is a ScalerError saying what came back. Where
// KEDA differs, we say so rather than return a number nobody asked for: NaN and ±Inf are errors
// (KEDA hands NaN on, and turns ±Inf into 0 under ignoreNullValues).
import { metaTime } from '../../k8s/types.js';
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
  oneLine,
  truncate,
  warnUnsafeSslOnce,
  type TlsMaterial,
} from './upstream.js';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { readParameters, type ParamSpec } from './parameters.js';
import { ScalerError, type Scaler, type ScalerConfigError, type ScalerContext, type ScalerFactory } from './scaler.js';

const TYPE = 'prometheus';
const AUTH_MODES = ['bearer', 'basic', 'tls', 'custom'] as const;
type AuthMode = (typeof AUTH_MODES)[number];
/** How much of the query is repeated in a message. */
const QUERY_CHARS = 200;
/** RFC 7230 token: what a header name may be. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Parameters the scaler sets itself: queryParameters may not replace them. */
const OWN_PARAMETERS = ['query', 'time', 'namespace'];

/** What the prometheus scaler reads (the README's table is generated from this). */
export const PROMETHEUS_PARAMETERS: readonly ParamSpec[] = [
  { name: 'serverAddress', type: 'url', from: 'metadata', required: true, doc: 'Prometheus (or Thanos, Cortex/Mimir, VictoriaMetrics, a proxy). No query or fragment; credentials written in it are sent as basic auth.' },
  { name: 'query', type: 'string', from: 'metadata', required: true, doc: 'An instant PromQL query giving one series or a scalar.' },
  { name: 'threshold', type: 'number', from: 'metadata', required: true, doc: 'The HPA target.' },
  { name: 'activationThreshold', type: 'number', from: 'metadata', default: 0, doc: 'Active (scaled from zero) strictly above this value.' },
  { name: 'namespace', type: 'string', from: 'metadata', doc: 'Sent as the `namespace` query parameter (multi-tenant queriers).' },
  { name: 'customHeaders', type: 'map', from: 'metadata', doc: 'Extra request headers, `k1=v1,k2=v2`; never sent to another origin on a redirect.' },
  { name: 'queryParameters', type: 'map', from: 'metadata', doc: 'Extra query parameters, `k1=v1,k2=v2` (not `query`, `time` or `namespace`).' },
  { name: 'ignoreNullValues', type: 'bool', from: 'metadata', default: true, doc: 'An empty result is 0; false makes it an error. NaN and infinite results are errors either way.' },
  { name: 'unsafeSsl', type: 'bool', from: 'metadata', default: false, doc: 'Skips verifying the server\'s certificate (warned about once). Put its CA in `--ca-dir` instead.' },
  { name: 'timeout', type: 'milliseconds', from: 'metadata', doc: 'Per-query timeout; default `--scaler-timeout`.' },
  { name: 'authModes', type: 'list', values: AUTH_MODES, from: 'metadata', doc: 'Comma list; `tls` combines with one of the others.' },
  { name: 'bearerToken', type: 'string', from: 'auth', requiredWith: { param: 'authModes', value: 'bearer' }, secret: true, doc: 'Sent as `Authorization: Bearer`.' },
  { name: 'username', type: 'string', from: 'auth', requiredWith: { param: 'authModes', value: 'basic' }, doc: 'Basic auth user.' },
  { name: 'password', type: 'string', from: 'auth', secret: true, doc: 'Basic auth password (optional, as in KEDA).' },
  { name: 'cert', type: 'string', from: 'auth', requiredWith: { param: 'authModes', value: 'tls' }, doc: 'Client certificate (PEM).' },
  { name: 'key', type: 'string', from: 'auth', requiredWith: { param: 'authModes', value: 'tls' }, secret: true, doc: 'Its private key (PEM; encrypted with keyPassword, or not).' },
  { name: 'keyPassword', type: 'string', from: 'auth', secret: true, doc: 'The key\'s passphrase.' },
  { name: 'customAuthHeader', type: 'string', from: 'auth', requiredWith: { param: 'authModes', value: 'custom' }, doc: 'authModes custom: the header name.' },
  { name: 'customAuthValue', type: 'string', from: 'auth', requiredWith: { param: 'authModes', value: 'custom' }, secret: true, doc: 'authModes custom: its value.' },
  { name: 'ca', type: 'string', from: 'auth', doc: 'A CA (PEM) trusted for this server in every mode, besides the system roots and `--ca-dir`.' },
];

export const createPrometheusScaler: ScalerFactory = (ctx) => new PrometheusScaler(ctx);

class PrometheusScaler implements Scaler {
  readonly metricName: string;
  readonly targetValue: number;
  private readonly activationThreshold: number;
  /** `<serverAddress>/api/v1/query`, without credentials or query. */
  private readonly endpoint: URL;
  private readonly shownUrl: string;
  private readonly query: string;
  private readonly namespace: string | undefined;
  private readonly queryParameters: [string, string][];
  private readonly ignoreNullValues: boolean;
  private readonly headers: Record<string, string>;
  private readonly scrubber: SecretScrubber;
  private readonly client: UpstreamClient;
  private readonly validateOnly: boolean;

  constructor(ctx: ScalerContext) {
    // Validation only (an admission webhook, which cannot read Secrets): every metadata value is
    // checked, absent auth parameters are not an error, and the scaler never sends a request.
    this.validateOnly = ctx.validateOnly === true;
    const p = readParameters(TYPE, PROMETHEUS_PARAMETERS, ctx);

    // --- what to ask ---------------------------------------------------------------------------
    const server = p.url('serverAddress')!;
    if (server.search !== '' || server.hash !== '') {
      throw configError('serverAddress must not have a query or fragment (use queryParameters for extra parameters)');
    }
    this.query = p.string('query')!;
    this.targetValue = p.number('threshold')!;
    this.activationThreshold = p.number('activationThreshold')!;
    this.namespace = p.string('namespace')?.trim();
    const customHeaders = p.pairs('customHeaders');
    for (const [name, value] of customHeaders) {
      if (!HEADER_NAME.test(name)) throw configError(`customHeaders: "${truncate(name, 64)}" is not a valid header name`);
      if (/[\r\n\0]/.test(value)) throw configError(`customHeaders: the value of "${name}" has a line break`);
    }
    this.queryParameters = p.pairs('queryParameters');
    for (const [name] of this.queryParameters) {
      if (OWN_PARAMETERS.includes(name)) throw configError(`queryParameters: "${name}" is set by the scaler itself${name === 'namespace' ? ' (use the namespace metadata)' : ''}`);
    }
    this.ignoreNullValues = p.bool('ignoreNullValues');
    const unsafeSsl = p.bool('unsafeSsl');
    const timeoutMs = p.number('timeout') ?? ctx.timeoutMs;
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(TYPE));

    // --- how to authenticate -------------------------------------------------------------------
    // customHeaders first: the auth modes set theirs over them, as KEDA does.
    const headers: Record<string, string> = {};
    for (const [name, value] of customHeaders) headers[name.toLowerCase()] = value;
    headers.accept ??= 'application/json';
    const secrets: string[] = [];
    const tlsMaterial: TlsMaterial = {};
    const modes = p.list('authModes') as AuthMode[];
    // Each of these sets the request's credentials header: two would fight over it.
    const headerModes = modes.filter((m) => m !== 'tls');
    if (headerModes.length > 1) throw configError(`authModes: ${headerModes.join(' and ')} cannot be combined (each sets the request's credentials; tls combines with any)`);
    // Absent credentials below only happen in validate-only builds (readParameters insists otherwise).
    for (const mode of modes) {
      switch (mode) {
        case 'bearer': {
          const token = p.string('bearerToken')?.trim();
          if (token !== undefined) setBearerAuth(headers, secrets, token);
          break;
        }
        case 'basic': {
          const username = p.string('username');
          // The password is optional, as in KEDA.
          const password = p.string('password') ?? '';
          secrets.push(password);
          if (username !== undefined) setBasicAuth(headers, secrets, username, password);
          break;
        }
        case 'tls': {
          const cert = p.string('cert');
          const key = p.string('key');
          const keyPassword = p.string('keyPassword');
          if (keyPassword !== undefined) secrets.push(keyPassword);
          if (cert !== undefined && key !== undefined) Object.assign(tlsMaterial, checkClientPair(TYPE, 'authModes tls', cert, key, { value: keyPassword }));
          break;
        }
        case 'custom': {
          const header = p.string('customAuthHeader')?.trim();
          const value = p.string('customAuthValue');
          if (value !== undefined) secrets.push(value);
          if (header !== undefined && !HEADER_NAME.test(header)) throw configError(`authModes custom: customAuthHeader "${truncate(header, 64)}" is not a valid header name`);
          if (header === undefined || value === undefined) break;
          if (/[\r\n\0]/.test(value)) throw configError('authModes custom: customAuthValue has a line break');
          headers[header.toLowerCase()] = value;
          break;
        }
      }
    }
    // A CA for the server: trusted whatever the modes (KEDA builds its TLS config from it alone).
    const ca = p.string('ca');
    if (ca !== undefined) tlsMaterial.ca = checkCa(TYPE, '', ca);

    moveUrlCredentialsToBasicAuth(TYPE, 'serverAddress', server, headers, secrets);
    // KEDA appends the path to the address as written; a trailing slash would make it `//api`.
    server.pathname = `${server.pathname.replace(/\/+$/, '')}/api/v1/query`;
    this.endpoint = server;
    this.headers = headers;
    this.scrubber = new SecretScrubber(secrets);
    this.shownUrl = showUrl(server);
    this.client = new UpstreamClient({
      trust: ctx.trust,
      timeoutMs,
      https: server.protocol === 'https:',
      unsafeSsl,
      tls: tlsMaterial,
      // Custom auth and custom headers are credentials too, for all we know: not for another origin.
      stripOnCrossOrigin: Object.keys(headers).filter((h) => h !== 'accept' && h !== 'authorization'),
      clientCertHint: 'see authModes tls',
      clientCertRefusedHint: 'does it trust the CA that issued the auth parameter cert?',
      fail: (problem) => this.fail(problem),
    });

    if (unsafeSsl && !this.validateOnly) warnUnsafeSslOnce(ctx.log, TYPE, this.shownUrl);
  }

  isActive(value: number): boolean {
    return value > this.activationThreshold; // KEDA: strictly above the activation threshold
  }

  async getMetricValue(signal: AbortSignal): Promise<number> {
    if (this.validateOnly) throw this.fail('this scaler was built to validate the trigger only, not to query');
    const url = new URL(this.endpoint.href);
    url.searchParams.set('query', this.query);
    // Go's time.RFC3339: whole seconds, UTC.
    url.searchParams.set('time', metaTime(new Date()));
    if (this.namespace !== undefined) url.searchParams.set('namespace', this.namespace);
    for (const [k, v] of this.queryParameters) url.searchParams.append(k, v);

    const res = await this.client.get(url, this.headers, signal);
    let doc: unknown;
    try {
      doc = JSON.parse(res.text);
    } catch (err) {
      if (!res.ok) throw this.fail(httpStatusProblem(res.status, res.text) + authHint(res.status));
      throw this.fail(`the answer is not valid JSON (${(err as Error).message}): is serverAddress a Prometheus API?`);
    }
    const body = (doc ?? {}) as PromResponse;
    if (body.status === 'error' || (!res.ok && typeof body.error === 'string')) {
      const kind = typeof body.errorType === 'string' && body.errorType !== '' ? `${body.errorType}: ` : '';
      throw this.fail(`the query failed (HTTP ${res.status}): ${kind}${oneLine(String(body.error ?? 'no error message'))} (query: ${this.shownQuery()})`);
    }
    if (!res.ok) throw this.fail(httpStatusProblem(res.status, res.text) + authHint(res.status));
    if (body.status !== 'success' || body.data === null || typeof body.data !== 'object') {
      throw this.fail('the answer is not a Prometheus query response (no "status": "success" with "data"): is serverAddress a Prometheus API?');
    }
    return this.extract(body.data);
  }

  close(): void {
    this.client.close();
  }

  private extract(data: NonNullable<PromResponse['data']>): number {
    const { resultType, result } = data;
    if (resultType === 'scalar') return this.sampleValue(result, 'the scalar');
    if (resultType !== 'vector') {
      throw this.fail(`the query returned a ${typeof resultType === 'string' ? resultType : 'result of no known type'}, expected an instant vector or a scalar (query: ${this.shownQuery()})`);
    }
    if (!Array.isArray(result)) throw this.fail('the answer\'s vector has no result list');
    if (result.length === 0) {
      if (this.ignoreNullValues) return 0;
      throw this.fail(`query returned no series, and ignoreNullValues is false: the target may be lost (query: ${this.shownQuery()})`);
    }
    if (result.length > 1) {
      throw this.fail(`query returned ${result.length} series, expected 1: aggregate them, e.g. with sum() (query: ${this.shownQuery()})`);
    }
    const series = result[0] as { value?: unknown; metric?: unknown } | null;
    return this.sampleValue(series?.value, 'the sample');
  }

  /** A `[<unix time>, "<value>"]` pair, as the API encodes every sample. */
  private sampleValue(pair: unknown, what: string): number {
    if (!Array.isArray(pair) || pair.length < 2 || typeof pair[1] !== 'string') {
      throw this.fail(`${what} is not a [time, "value"] pair (got ${truncate(JSON.stringify(pair) ?? String(pair), 64)})`);
    }
    const raw = pair[1];
    const n = promFloat(raw);
    if (n === undefined) throw this.fail(`${what} value ${JSON.stringify(truncate(raw, 64))} is not a number`);
    if (!Number.isFinite(n)) throw this.fail(`the query returned ${raw}, not a finite number (query: ${this.shownQuery()})`);
    return n;
  }

  private shownQuery(): string {
    return truncate(oneLine(this.query), QUERY_CHARS);
  }

  private fail(problem: string): ScalerError {
    return new ScalerError(this.scrubber.scrub(`${TYPE} ${this.shownUrl}: ${problem}`));
  }
}

interface PromResponse {
  status?: unknown;
  errorType?: unknown;
  error?: unknown;
  data?: { resultType?: unknown; result?: unknown } | null;
}

/** Prometheus' float encoding (Go's strconv.FormatFloat 'f', -1): decimals, exponents, NaN, ±Inf. */
function promFloat(raw: string): number | undefined {
  const s = raw.trim();
  if (s === 'NaN') return NaN;
  if (/^\+?Inf$/.test(s)) return Infinity;
  if (s === '-Inf') return -Infinity;
  if (!/^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

/** A word on 401 and 403: the answer to those is the trigger's authentication. */
function authHint(status: number): string {
  if (status === 401) return ' (the server wants credentials: check authModes and the trigger authentication)';
  if (status === 403) return ' (the server refused these credentials: check authModes and the trigger authentication)';
  return '';
}

/**
 * KEDA's `k1=v1,k2=v2` lists: entries separated by commas, key and value by the first `=`, both
 * trimmed. An entry without `=` or with an empty key is a configuration error.
 */
function configError(message: string): ScalerConfigError {
  return upstreamConfigError(TYPE, message);
}
