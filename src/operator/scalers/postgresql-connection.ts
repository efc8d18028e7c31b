// Where and how the postgresql scaler connects: from a libpq connection string (keyword=value or
// URL form) or from KEDA's separate parameters, checked as libpq (and KEDA's pgx) read them.
import type { ScalerConfigError } from './scaler.js';
import { configError as upstreamConfigError, truncate } from './upstream.js';

const TYPE = 'postgresql';
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** Where and how to connect, from `connection` or from the separate parameters. */
export interface Target {
  host: string;
  port: number;
  user: string;
  database: string;
  password: string | undefined;
  sslmode: SslMode;
  applicationName: string | undefined;
  /** Sent as the startup packet's `options`: the connection string's own, then `-c name=value` for each server setting. */
  options: string;
  /** libpq's connect_timeout, in ms (0: none). */
  connectTimeoutMs: number;
}

/** KEDA's separate parameters, checked in KEDA's order; undefined in a validate-only build missing some. */
export function fromParameters(
  host: string | undefined,
  port: string | undefined,
  user: string | undefined,
  database: string | undefined,
  sslmode: SslMode | undefined,
  password: string | undefined,
  validateOnly: boolean,
): Target | undefined {
  // KEDA's checks, in its order; a validate-only build cannot see the authentication, where each may be.
  const missing = ([['host', host], ['port', port], ['userName', user], ['dbName', database], ['sslmode', sslmode]] as const).find(([, v]) => v === undefined);
  const checkedPort = port === undefined ? undefined : parsePort(port, 'port');
  const checkedHost = host === undefined ? undefined : checkHost(host.trim(), 'host');
  if (missing) {
    if (validateOnly) return undefined;
    throw configError(`no connection given, and no ${missing[0]} given (in the trigger authentication or metadata)`);
  }
  return {
    host: checkedHost!,
    port: checkedPort!,
    user: user!,
    database: database!,
    password,
    sslmode: sslmode!,
    applicationName: undefined,
    options: '',
    connectTimeoutMs: 0,
  };
}

/** libpq keywords that only shape the client side, which this scaler does its own way. */
const IGNORED_KEYWORDS = new Set(['keepalives', 'keepalives_idle', 'keepalives_interval', 'keepalives_count', 'tcp_user_timeout', 'sslsni', 'sslcompression', 'ssl_min_protocol_version', 'ssl_max_protocol_version', 'fallback_application_name']);
/** pgx's own keywords (its pool and caches): the pool here is the scaler's. */
const PGX_KEYWORDS = /^(pool_\w+|statement_cache_capacity|description_cache_capacity|default_query_exec_mode|min_read_buffer_size)$/;
/** libpq keywords that name files on the client's disk, and what to use instead. */
const FILE_KEYWORDS: Record<string, string> = {
  sslcert: 'the auth parameter cert',
  sslkey: 'the auth parameter key',
  sslpassword: 'the auth parameter keyPassword',
  sslrootcert: 'the auth parameter ca, or a --ca-dir folder',
  sslcrl: 'nothing (certificate revocation lists are not read)',
  sslcrldir: 'nothing (certificate revocation lists are not read)',
  passfile: 'a password in connection, or the auth parameter password',
  service: 'the settings themselves',
  servicefile: 'the settings themselves',
};
/** libpq keywords with the values that this scaler's behaviour matches; others are refused. */
const LIMITED_KEYWORDS: Record<string, readonly string[]> = {
  target_session_attrs: ['any'],
  load_balance_hosts: ['disable'],
  gssencmode: ['disable', 'prefer'],
  channel_binding: ['disable', 'prefer'],
  sslnegotiation: ['postgres'],
  sslcertmode: ['disable', 'allow'],
  replication: ['false', 'off', 'no', '0'],
};
/** libpq keywords for features this scaler does not have. */
const UNSUPPORTED_KEYWORDS = new Set(['hostaddr', 'krbsrvname', 'gsslib', 'gssdelegation', 'requirepeer', 'require_auth', 'requiressl']);

/**
 * A libpq connection string, as pgx reads one: `key=value` pairs (values in single quotes where
 * they have spaces, backslash escapes) or a `postgres://` / `postgresql://` URL. Messages name
 * keywords only, never a value: the string holds the password.
 */
export function parseConnectionString(text: string): Target {
  const s = text.trim();
  const pairs = /^postgres(ql)?:\/\//i.test(s) ? parseUrl(s) : parseKeywordValue(s);
  const settings = new Map<string, string>();
  for (const [k, v] of pairs) settings.set(k, v);

  let host: string | undefined;
  let port = 5432;
  let user: string | undefined;
  let database: string | undefined;
  let password: string | undefined;
  let sslmode: SslMode | undefined;
  let applicationName: string | undefined;
  let fallbackApplicationName: string | undefined;
  let connectTimeoutMs = 0;
  let rootCertSystem = false;
  const options: string[] = [];
  for (const [key, value] of settings) {
    switch (key) {
      case 'host':
        if (value !== '') host = checkHost(value, 'connection: host');
        break;
      case 'port':
        if (value !== '') port = parsePort(value, 'connection: port');
        break;
      case 'user':
        if (value !== '') user = value;
        break;
      case 'dbname':
      case 'database':
        if (value !== '') database = value;
        break;
      case 'password':
        password = value;
        break;
      case 'sslmode':
        if (!(SSL_MODES as readonly string[]).includes(value)) throw configError(`connection: sslmode "${truncate(value, 32)}" is not supported (one of: ${SSL_MODES.join(', ')})`);
        sslmode = value as SslMode;
        break;
      case 'application_name':
        applicationName = value;
        break;
      case 'fallback_application_name':
        fallbackApplicationName = value;
        break;
      case 'connect_timeout': {
        if (!/^\d+$/.test(value.trim())) throw configError('connection: connect_timeout is not a whole number of seconds');
        const seconds = Number(value.trim());
        // libpq: 0 is no limit, and less than 2 seconds is 2.
        connectTimeoutMs = seconds === 0 ? 0 : Math.max(seconds, 2) * 1000;
        break;
      }
      case 'options':
        if (value.trim() !== '') options.push(value.trim());
        break;
      case 'client_encoding':
        if (!/^(utf-?8|unicode)$/i.test(value.trim())) throw configError('connection: client_encoding must be UTF8');
        break;
      case 'sslrootcert':
        // libpq 16: the system's roots, and then only verify-full makes sense.
        if (value === 'system') {
          rootCertSystem = true;
          break;
        }
        throw configError(`connection: sslrootcert names a file on the operator's disk; use ${FILE_KEYWORDS.sslrootcert} instead`);
      default:
        if (IGNORED_KEYWORDS.has(key) || PGX_KEYWORDS.test(key)) break;
        if (FILE_KEYWORDS[key] !== undefined) throw configError(`connection: ${key} names a file on the operator's disk; use ${FILE_KEYWORDS[key]} instead`);
        if (LIMITED_KEYWORDS[key] !== undefined) {
          if (!LIMITED_KEYWORDS[key].includes(value.trim().toLowerCase())) throw configError(`connection: ${key} "${truncate(value, 32)}" is not supported (only ${LIMITED_KEYWORDS[key].join(', ')})`);
          break;
        }
        if (UNSUPPORTED_KEYWORDS.has(key)) throw configError(`connection: ${key} is not supported`);
        // Anything else is a server setting: pgx sends it as a run-time parameter, libpq's
        // equivalent is `options=-c name=value`.
        if (!/^[A-Za-z_][\w.]*$/.test(key)) throw configError(`connection: "${truncate(key, 32)}" is not a setting name`);
        options.push(`-c ${key}=${value.replace(/[\\\s]/g, (c) => `\\${c}`)}`);
    }
  }
  if (host === undefined) throw configError('connection: no host given (a Unix-domain socket is not supported)');
  if (user === undefined) throw configError('connection: no user given');
  if (rootCertSystem) {
    if (sslmode !== undefined && sslmode !== 'verify-full') throw configError(`connection: sslrootcert=system requires sslmode verify-full, not ${sslmode} (as in libpq)`);
    sslmode = 'verify-full';
  }
  return {
    host,
    port,
    user,
    database: database ?? user,
    password,
    sslmode: sslmode ?? 'prefer',
    applicationName: applicationName ?? fallbackApplicationName,
    options: options.join(' '),
    connectTimeoutMs,
  };
}

/** libpq's `keyword = value` form. */
function parseKeywordValue(s: string): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  const space = (c: string | undefined) => c !== undefined && /\s/.test(c);
  while (i < s.length) {
    while (space(s[i])) i++;
    if (i >= s.length) break;
    let key = '';
    while (i < s.length && s[i] !== '=' && !space(s[i])) key += s[i++];
    while (space(s[i])) i++;
    if (s[i] !== '=') throw configError(`connection: "${truncate(key, 32)}" is not followed by "=" (the format is key=value ..., or a postgresql:// URL)`);
    i++;
    while (space(s[i])) i++;
    let value = '';
    if (s[i] === "'") {
      i++;
      for (;;) {
        if (i >= s.length) throw configError(`connection: the quoted value of ${truncate(key, 32)} is not closed`);
        const c = s[i++]!;
        if (c === "'") break;
        if (c === '\\' && i < s.length) value += s[i++];
        else value += c;
      }
    } else {
      while (i < s.length && !space(s[i])) {
        const c = s[i++]!;
        if (c === '\\' && i < s.length) value += s[i++];
        else value += c;
      }
    }
    out.push([key.toLowerCase(), value]);
  }
  return out;
}

/** libpq's URI form: postgresql://[user[:password]@][host][:port][/dbname][?key=value&...]. */
function parseUrl(s: string): [string, string][] {
  const decode = (part: string, what: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw configError(`connection: the URL's ${what} has a bad %-escape`);
    }
  };
  const rest = s.replace(/^postgres(ql)?:\/\//i, '');
  const end = rest.search(/[/?]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const tail = end < 0 ? '' : rest.slice(end);
  const out: [string, string][] = [];
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    out.push(['user', decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'user')]);
    if (colon >= 0) out.push(['password', decode(userinfo.slice(colon + 1), 'password')]);
  }
  const hostport = authority.slice(at + 1);
  if (hostport.includes(',')) throw configError('connection: several hosts (failover) are not supported');
  const m = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(hostport);
  if (!m) throw configError('connection: the URL\'s host is not valid');
  const hostPart = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : decode(m[1]!, 'host');
  if (hostPart !== '') out.push(['host', hostPart]);
  if (m[2] !== undefined && m[2] !== '') out.push(['port', m[2]]);
  const q = tail.indexOf('?');
  const path = q < 0 ? tail : tail.slice(0, q);
  if (path.length > 1) out.push(['dbname', decode(path.slice(1), 'database name')]);
  if (q >= 0) {
    for (const param of tail.slice(q + 1).split('&')) {
      if (param === '') continue;
      const eq = param.indexOf('=');
      if (eq < 0) throw configError(`connection: the URL parameter "${truncate(decode(param, 'parameters'), 32)}" has no "="`);
      const key = decode(param.slice(0, eq), 'parameters');
      // pgx and libpq: `ssl=true` is sslmode=require.
      if (key === 'ssl') {
        if (decode(param.slice(eq + 1), 'parameters') === 'true') out.push(['sslmode', 'require']);
        continue;
      }
      out.push([key.toLowerCase(), decode(param.slice(eq + 1), 'parameters')]);
    }
  }
  return out;
}

function parsePort(raw: string, name: string): number {
  const s = raw.trim();
  const n = /^\d{1,5}$/.test(s) ? Number(s) : NaN;
  if (!(n >= 1 && n <= 65535)) throw configError(`${name} "${truncate(s, 32)}" is not a port number (1-65535)`);
  return n;
}

function checkHost(host: string, name: string): string {
  if (host.includes(',')) throw configError(`${name}: several hosts (failover) are not supported`);
  if (host.startsWith('/') || host.startsWith('@')) throw configError(`${name}: a Unix-domain socket is not supported`);
  if (!/^[A-Za-z0-9._:%-]+$/.test(host)) throw configError(`${name} "${truncate(host, 64)}" is not a host name or IP address`);
  return host;
}


function configError(message: string): ScalerConfigError {
  return upstreamConfigError(TYPE, message);
}
