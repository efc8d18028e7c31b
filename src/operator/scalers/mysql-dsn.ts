// The Go MySQL DSN (go-sql-driver/mysql's, which KEDA's mysql scaler takes as connectionString),
// cut and checked as that driver reads it, and the target it names.
import { parseDuration } from '../../config/duration.js';
import type { ScalerConfigError } from './scaler.js';
import { configError as upstreamConfigError, truncate, type TlsMaterial } from './upstream.js';

const TYPE = 'mysql';
export const DEFAULT_PORT = 3306;

export type TlsMode = 'false' | 'true' | 'skip-verify';

/** Where and how to connect: everything that shapes a connection. */
export interface Target {
  /** TCP host and port, or a Unix socket. */
  host?: string;
  port?: number;
  socketPath?: string;
  user: string;
  password: string | undefined;
  database: string | undefined;
  tls: TlsMode;
  material: TlsMaterial;
  connectTimeoutMs: number;
  cleartextPasswords: boolean;
}

export interface Dsn {
  target: Omit<Target, 'material' | 'tls' | 'connectTimeoutMs'>;
  password: string | undefined;
  tls: TlsMode | undefined;
  timeoutMs: number | undefined;
}

/** go-sql-driver/mysql parameters that change nothing about reading one number here. */
const INERT_PARAMS = new Set([
  'allowAllFiles', 'allowFallbackToPlaintext', 'allowNativePasswords', 'allowOldPasswords', 'charset', 'checkConnLiveness', 'clientFoundRows',
  'collation', 'columnsWithAlias', 'compress', 'connectionAttributes', 'interpolateParams', 'loc', 'maxAllowedPacket', 'multiStatements',
  'parseTime', 'readTimeout', 'rejectReadOnly', 'serverPubKey', 'timeTruncate', 'writeTimeout',
]);

/**
 * `[user[:password]@][net[(addr)]]/dbname[?param1=value1&paramN=valueN]`, cut as
 * go-sql-driver/mysql's ParseDSN cuts it: the last '/' ends the address, the last '@' before it
 * ends the credentials, the first ':' in them ends the user. Messages never quote the string.
 */
export function parseDsn(dsn: string): Dsn {
  const slash = dsn.lastIndexOf('/');
  if (slash < 0) throw configError('connectionString is not a Go MySQL DSN: there is no "/" before the database name (the form is user:password@tcp(host:3306)/dbname)');
  const left = dsn.slice(0, slash);
  const at = left.lastIndexOf('@');
  let user = '';
  let password: string | undefined;
  if (at >= 0) {
    const creds = left.slice(0, at);
    const colon = creds.indexOf(':');
    user = colon < 0 ? creds : creds.slice(0, colon);
    password = colon < 0 ? undefined : creds.slice(colon + 1);
  }
  const netAddr = left.slice(at + 1);
  const paren = netAddr.indexOf('(');
  let net = netAddr;
  let addr = '';
  if (paren >= 0) {
    if (!netAddr.endsWith(')')) throw configError('connectionString: the address must be in parentheses right before the "/", as in tcp(host:3306)/dbname');
    net = netAddr.slice(0, paren);
    addr = netAddr.slice(paren + 1, -1);
  }
  net ||= 'tcp';
  const rest = dsn.slice(slash + 1);
  const q = rest.indexOf('?');
  const rawDb = q < 0 ? rest : rest.slice(0, q);
  let database: string;
  try {
    database = decodeURIComponent(rawDb);
  } catch {
    database = rawDb;
  }

  let tls: TlsMode | undefined;
  let timeoutMs: number | undefined;
  let cleartextPasswords = false;
  for (const entry of q < 0 ? [] : rest.slice(q + 1).split('&')) {
    const eq = entry.indexOf('=');
    if (eq < 0) continue; // Go skips these too
    const name = entry.slice(0, eq);
    const value = entry.slice(eq + 1);
    if (name === 'tls') tls = readTls(value, 'connectionString parameter tls');
    else if (name === 'timeout') {
      timeoutMs = parseDuration(value);
      if (timeoutMs === undefined || timeoutMs <= 0) throw configError(`connectionString parameter timeout "${truncate(value, 32)}" is not a positive Go duration (e.g. 5s, 500ms)`);
    } else if (name === 'allowCleartextPasswords') {
      const b = goBool(value);
      if (b === undefined) throw configError(`connectionString parameter allowCleartextPasswords "${truncate(value, 16)}" is not a boolean`);
      cleartextPasswords = b;
    } else if (!INERT_PARAMS.has(name)) {
      throw configError(`connectionString parameter "${truncate(name, 64)}": session variables set through the DSN are not supported (set it in the query, or on the user)`);
    }
  }

  const target: Dsn['target'] = { user, password, database: database === '' ? undefined : database, cleartextPasswords };
  if (net === 'unix') {
    if (addr === '') throw configError('connectionString: unix needs the socket\'s path, as in unix(/run/mysqld/mysqld.sock)/dbname');
    target.socketPath = addr;
  } else if (net === 'tcp' || net === 'tcp4' || net === 'tcp6') {
    const { host, port } = splitAddr(addr === '' ? '127.0.0.1:3306' : addr);
    target.host = host;
    target.port = port;
  } else {
    throw configError(`connectionString: the protocol "${truncate(net, 32)}" is not supported (tcp or unix)`);
  }
  return { target, password, tls, timeoutMs };
}

/** Go's net.SplitHostPort, with 3306 where no port is given (as go-sql-driver adds it). */
function splitAddr(addr: string): { host: string; port: number } {
  let host = addr;
  let portText: string | undefined;
  if (addr.startsWith('[')) {
    const close = addr.indexOf(']');
    if (close < 0) throw configError('connectionString: the address has a "[" without its "]"');
    host = addr.slice(1, close);
    const after = addr.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw configError('connectionString: the address is not host:port');
      portText = after.slice(1);
    }
  } else if (addr.indexOf(':') >= 0 && addr.indexOf(':') === addr.lastIndexOf(':')) {
    host = addr.slice(0, addr.indexOf(':'));
    portText = addr.slice(addr.indexOf(':') + 1);
  }
  const port = portText === undefined ? DEFAULT_PORT : /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw configError(`connectionString: the port "${truncate(portText ?? '', 16)}" is not a TCP port (1 to 65535)`);
  if (host === '') throw configError('connectionString: the address has no host');
  return { host, port };
}

/** go-sql-driver's readBool. */
function goBool(s: string): boolean | undefined {
  if (['1', 'true', 'TRUE', 'True'].includes(s)) return true;
  if (['0', 'false', 'FALSE', 'False'].includes(s)) return false;
  return undefined;
}

/** go-sql-driver's `tls` values, less the two that cannot be honoured here. */
export function readTls(raw: string, what: string): TlsMode {
  const s = raw.trim();
  const b = goBool(s);
  if (b !== undefined) return b ? 'true' : 'false';
  if (s.toLowerCase() === 'skip-verify') return 'skip-verify';
  if (s.toLowerCase() === 'preferred') throw configError(`${what} preferred (TLS only if the server offers it, unverified) is not supported: use true (verified; the CA through --ca-dir or ca) or skip-verify`);
  throw configError(`${what} "${truncate(s, 32)}" is not supported (true, false or skip-verify; named TLS configurations do not exist here)`);
}


function configError(message: string): ScalerConfigError {
  return upstreamConfigError(TYPE, message);
}
