// What every scaler with an upstream shares, whatever it speaks (HTTP, Redis, PostgreSQL,
// MySQL, AMQP): metadata values read exactly as KEDA (Go) reads them, secrets removed from every
// message, the client certificate and CA checks, TLS contexts trusting the system roots plus the
// --ca-dir folders, and network errors told in words a user can act on.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { parseDuration } from '../../config/duration.js';
import { MaterialError, parseCertificates, parsePrivateKey } from '../../tls/pem.js';
import { ScalerConfigError } from './scaler.js';

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

/** A duration as KEDA's typed config reads one: whole milliseconds (`2500`) or Go's form (`2.5s`); in milliseconds. */
export function parseKedaDuration(s: string): number | undefined {
  return /^\d+$/.test(s) ? Number(s) : parseDuration(s);
}

/** Go's strconv.ParseBool. */
export function parseBool(type: string, name: string, raw: string): boolean {
  const s = raw.trim();
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  throw configError(type, `${name} "${raw}" is not a boolean (true or false)`);
}

/** `host:port` for messages, an IPv6 address (any host with a colon) in brackets. */
export function showHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
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

/** What was already warned about: once per process, not at every scaler rebuild. */
const warned = new Set<string>();

/** A warning logged once per `key` in this process (an upstream whose certificate is not verified, say). */
export function warnOnce(log: Logger | undefined, key: string, fields: Record<string, unknown>, message: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  log?.warn(fields, message);
}

/** The one warning that `unsafeSsl: true` is in use for this upstream. */
export function warnUnsafeSslOnce(log: Logger | undefined, type: string, shownUrl: string): void {
  warnOnce(log, `unsafeSsl ${type} ${shownUrl}`, { scaler: type, url: shownUrl }, `${type} ${shownUrl}: unsafeSsl is true, the upstream's certificate is NOT verified`);
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

/**
 * The TLS context for connecting to an upstream: `trust` (the system roots plus --ca-dir), plus
 * the scaler's own CA and client certificate when it has them. Upstreams are third-party servers
 * we do not control: TLS 1.2 is the floor, not 1.3 as for our own endpoints.
 *
 * Parsing the system roots costs milliseconds and most of a megabyte per context: every scaler
 * with no material of its own uses one shared context, rebuilt when the bundle changes.
 */
export function upstreamSecureContext(trust: string, material: TlsMaterial = {}): SecureContext {
  const own = material.ca !== undefined || material.cert !== undefined;
  if (!own && shared?.trust === trust) return shared.context;
  const context = createSecureContext({
    ca: material.ca ? `${trust}\n${material.ca}` : trust,
    ...(material.cert ? { cert: material.cert, key: material.key, ...(material.passphrase !== undefined ? { passphrase: material.passphrase } : {}) } : {}),
    minVersion: 'TLSv1.2',
  });
  if (!own) shared = { trust, context };
  return context;
}

let shared: { trust: string; context: SecureContext } | undefined;

// --- network errors --------------------------------------------------------------------------

/** OpenSSL's `<hex>:error:<hex>:SSL routines:<function>:<reason>:<file>:<line>:...` as its reason alone. */
export function withoutOpenSslNoise(err: NodeJS.ErrnoException): NodeJS.ErrnoException {
  const m = /^[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):/.exec(err?.message ?? '');
  if (!m) return err;
  return Object.assign(new Error(m[1]!.trim()), { code: err.code });
}

/** OpenSSL's verification failures: the answer to these is trust (a CA in --ca-dir, or `ca`). */
const VERIFY_CODES = /^(UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|CERT_)/;
/** The certificate is trusted but names another host: the answer is the address, not trust. */
const NAME_CODES = /^(HOSTNAME_MISMATCH|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/**
 * A failed request in words: what went wrong and, where there is one, what to do about it.
 * When an HTTPS upstream closed the connection, `clientCertHint` is added if we sent no client
 * certificate (e.g. `see authMode tls`), `clientCertRefusedHint` if we did.
 */
export function describeNetworkError(err: unknown, clientCertHint: string | undefined, clientCertRefusedHint?: string): string {
  const e = err as NodeJS.ErrnoException & { errors?: unknown[]; cause?: unknown };
  // Happy eyeballs reports an AggregateError with an empty message; the first attempt says it.
  const inner = withoutOpenSslNoise((e?.message === '' && Array.isArray(e.errors) && e.errors.length > 0 ? e.errors[0] : e) as NodeJS.ErrnoException);
  const code = inner?.code ?? e?.code;
  // Node appends advice about --use-system-ca to verification errors; ours is the one that applies.
  const message = (inner?.message || String(err)).replace(/; if the root CA is installed locally.*$/s, '');
  if (code && NAME_CODES.test(code)) {
    return `TLS: the upstream's certificate is not for this host: ${message} (${code}); connect by a name (or IP address) its certificate lists`;
  }
  if (code && VERIFY_CODES.test(code)) {
    return `TLS: the upstream's certificate is not trusted: ${message} (${code}); put its CA in a --ca-dir folder or the trigger's ca`;
  }
  if (code && /^ERR_(SSL|TLS)_/.test(code)) return `TLS handshake failed: ${message} (${code})`;
  if (code === 'ECONNREFUSED') return `connection refused (${message})`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve the host (${message})`;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return `connect timed out (${message})`;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return `the upstream went silent (${message})`;
  if (code === 'UND_ERR_MAX_REDIRECTIONS') return 'more than 10 redirects (Go\'s limit, which KEDA has too)';
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

