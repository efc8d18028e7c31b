// KEDA's `mysql` scaler: one query against MySQL or MariaDB, whose answer (one row, one numeric
// column) is the metric. https://keda.sh/docs/latest/scalers/mysql/
//
// Metadata and authentication parameters (as KEDA): query, queryValue, activationQueryValue; the
// connection either as connectionString (auth; a Go MySQL DSN, `user:pass@tcp(host:3306)/db?tls=true`,
// parsed as go-sql-driver/mysql parses it) or as host, port, username, dbName (metadata, then auth)
// and password (auth). The metric is KEDA's `s<index>-mysql-<dbName>`, where with a
// connectionString dbName is everything after its last `/`, as KEDA cuts it (parameters included).
//
// TLS: KEDA's only way is the DSN's `tls` parameter (true, false, skip-verify). Ours is the same
// parameter, also accepted as metadata `tls` (for host/port triggers), verified against the
// system roots, the --ca-dir folders and the auth parameter `ca`, with the server's host name
// checked; a client certificate (auth `cert`/`key`/`keyPassword`) for users created REQUIRE X509.
//
// Connections: one small pool per upstream identity (address, user, password, database, TLS
// material), shared by every trigger that connects the same way; an idle connection is closed
// after a minute. Every query (connection included) is bounded by the scaler timeout and the
// caller's AbortSignal; a connection whose query was cut short is closed, never reused.
import type { Pool, PoolConnection, createPool as CreatePool } from 'mysql2/promise';
import type { FieldPacket } from 'mysql2';
import { connect, isIP, type Socket } from 'node:net';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { DEFAULT_PORT, parseDsn, readTls, type Target, type TlsMode } from './mysql-dsn.js';
import { readParameters, type ParamSpec } from './parameters.js';
import { ScalerError, type Scaler, type ScalerConfigError, type ScalerContext, type ScalerFactory } from './scaler.js';
import { SharedClients, TrustedLease, connectionIdentity, loadOnFirstUse } from './shared-clients.js';
import {
  SecretScrubber,
  checkCa,
  checkClientPair,
  configError as upstreamConfigError,
  describeNetworkError,
  oneLine,
  showHostPort,
  truncate,
  warnOnce,
  type TlsMaterial,
} from './upstream.js';

const TYPE = 'mysql';
/** How much of the query is repeated in a message. */
const QUERY_CHARS = 200;
/** Connections per upstream identity: a poll needs one; two lets a slow query not hold up the rest. */
const CONNECTION_LIMIT = 2;
/** A pooled connection unused this long is closed. */
const IDLE_MS = 60_000;

/** What the mysql scaler reads (the README's table is generated from this). */
export const MYSQL_PARAMETERS: readonly ParamSpec[] = [
  { name: 'query', type: 'string', from: 'metadata', required: true, doc: 'A query giving one numeric column; the first row is read (use `COALESCE(..., 0)` where it may be NULL).' },
  { name: 'queryValue', type: 'number', from: 'metadata', required: true, doc: 'The HPA target.' },
  { name: 'activationQueryValue', type: 'number', from: 'metadata', default: 0, doc: 'Active (scaled from zero) strictly above this value.' },
  { name: 'connectionString', type: 'string', from: 'auth, then env', secret: true, doc: 'A Go MySQL DSN, `user:password@tcp(host:3306)/dbname?tls=true`. When given, host, port, username, password and dbName are not read.' },
  { name: 'host', type: 'string', from: 'metadata, then auth', doc: 'The server. Required without a connectionString.' },
  { name: 'port', type: 'number', from: 'metadata, then auth', default: DEFAULT_PORT, doc: 'Its port (KEDA has no default).' },
  { name: 'username', type: 'string', from: 'metadata, then auth, then env', doc: 'The user.' },
  { name: 'password', type: 'string', from: 'auth, then env', secret: true, doc: 'Its password (none if not given).' },
  { name: 'dbName', type: 'string', from: 'metadata, then auth', doc: 'The default database; also in the metric name.' },
  { name: 'tls', type: 'string', from: 'metadata', doc: 'Not in KEDA, which reads only the DSN\'s `tls` parameter: the same values here, for host/port triggers. `true` (verified against the system roots, `--ca-dir` and `ca`), `skip-verify` (not verified; warned about once) or `false` (the default).' },
  { name: 'ca', type: 'string', from: 'auth', doc: 'With TLS: a CA (PEM) trusted for this server, besides the system roots and `--ca-dir`.' },
  { name: 'cert', type: 'string', from: 'auth', doc: 'With TLS: a client certificate (PEM), for users created `REQUIRE X509` (or SUBJECT/ISSUER).' },
  { name: 'key', type: 'string', from: 'auth', secret: true, doc: 'Its private key (PEM; encrypted with keyPassword, or not).' },
  { name: 'keyPassword', type: 'string', from: 'auth', secret: true, doc: 'The key\'s passphrase.' },
];

export const createMysqlScaler: ScalerFactory = (ctx) => new MysqlScaler(ctx);

/** A mysql2 pool, with the idle timers this scaler adds to it. */
interface SharedPool {
  pool: Pool;
  end(): void;
}

const pools = new SharedClients<SharedPool>({ close: (p) => p.end() });
const mysql2 = loadOnFirstUse(() => import('mysql2/promise'));

class MysqlScaler implements Scaler {
  readonly metricName: string;
  readonly targetValue: number;
  private readonly activationQueryValue: number;
  private readonly query: string;
  private readonly timeoutMs: number;
  private readonly shown: string;
  private readonly target: Target | undefined;
  private readonly scrubber: SecretScrubber;
  private readonly lease: TrustedLease<SharedPool, Awaited<ReturnType<typeof mysql2>>> | undefined;
  private readonly validateOnly: boolean;

  constructor(ctx: ScalerContext) {
    this.validateOnly = ctx.validateOnly === true;
    const p = readParameters(TYPE, MYSQL_PARAMETERS, ctx);
    this.query = p.string('query')!;
    this.targetValue = p.number('queryValue')!;
    this.activationQueryValue = p.number('activationQueryValue')!;
    this.timeoutMs = ctx.timeoutMs;

    const metadataTls = p.string('tls') === undefined ? undefined : readTls(p.string('tls')!, 'tls');
    const port = p.number('port')!;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw configError(`port ${port} is not a TCP port (1 to 65535)`);

    const connectionString = p.string('connectionString');
    const secrets = [p.string('password'), p.string('keyPassword'), connectionString].filter((s): s is string => s !== undefined);
    let dbNameForMetric: string;
    let target: Omit<Target, 'material' | 'tls'> & { tls: TlsMode | undefined };
    if (connectionString !== undefined) {
      const dsn = parseDsn(connectionString.trim());
      if (dsn.password !== undefined) secrets.push(dsn.password);
      if (metadataTls !== undefined && dsn.tls !== undefined && metadataTls !== dsn.tls) {
        throw configError(`tls is ${metadataTls} in metadata and ${dsn.tls} in the connectionString: give it once`);
      }
      target = { ...dsn.target, tls: dsn.tls ?? metadataTls, connectTimeoutMs: dsn.timeoutMs ?? connectBackstop(this.timeoutMs) };
      // KEDA's metric name: everything after the connection string's last '/'.
      dbNameForMetric = connectionString.slice(connectionString.lastIndexOf('/') + 1);
    } else {
      const host = p.string('host')?.trim();
      // A validate-only build cannot see the connectionString (it is in a Secret): no verdict.
      if (host === undefined && !this.validateOnly) throw configError('no connectionString given in the trigger authentication, nor a host in metadata');
      const database = p.string('dbName');
      target = {
        host: host ?? '',
        port,
        user: p.string('username') ?? '',
        password: p.string('password'),
        database,
        tls: metadataTls,
        connectTimeoutMs: connectBackstop(this.timeoutMs),
        cleartextPasswords: false,
      };
      dbNameForMetric = database ?? '';
    }
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`${TYPE}-${dbNameForMetric}`));
    // Empty only in a validate-only build without a host (the address is in a Secret).
    this.shown = target.socketPath !== undefined ? `unix(${target.socketPath})` : target.host ? showHostPort(target.host, target.port ?? DEFAULT_PORT) : '';
    this.scrubber = new SecretScrubber(secrets);

    // --- TLS material ----------------------------------------------------------------------------
    const tls = target.tls ?? 'false';
    const material: TlsMaterial = {};
    const cert = p.string('cert');
    const key = p.string('key');
    const ca = p.string('ca');
    if (cert !== undefined && key === undefined) throw configError('cert is given without its key');
    if (key !== undefined && cert === undefined) throw configError('key is given without its cert');
    if (cert !== undefined && key !== undefined) Object.assign(material, checkClientPair(TYPE, 'tls', cert, key, { value: p.string('keyPassword') }));
    if (ca !== undefined) material.ca = checkCa(TYPE, 'tls', ca);
    if (tls === 'false' && (cert !== undefined || ca !== undefined)) {
      throw configError(`${cert !== undefined ? 'cert and key are' : 'ca is'} given but TLS is off: set tls=true in the connectionString, or tls: "true" in metadata`);
    }

    if (this.validateOnly) {
      this.target = undefined;
      this.lease = undefined;
      return;
    }
    if (tls === 'skip-verify') {
      warnOnce(ctx.log, `${TYPE} skip-verify ${this.shown}`, { scaler: TYPE, address: this.shown }, `${TYPE} ${this.shown}: tls is skip-verify, the server's certificate is NOT verified`);
    }
    const full: Target = { ...target, tls, material };
    this.target = full;
    const identity = connectionIdentity(full.host, full.port, full.socketPath, full.user, full.password, full.database, full.tls, material.cert, material.key, material.passphrase, material.ca, full.connectTimeoutMs, full.cleartextPasswords);
    this.lease = new TrustedLease(pools, ctx.trust, identity, (bundle, { createPool }) => openPool(createPool, full, bundle), mysql2);
  }

  isActive(value: number): boolean {
    return value > this.activationQueryValue; // KEDA: strictly above
  }

  async getMetricValue(signal: AbortSignal): Promise<number> {
    if (this.validateOnly || !this.lease) throw this.fail('this scaler was built to validate the trigger only, not to query');
    if (signal.aborted) throw this.fail('request aborted');
    let shared: SharedPool;
    try {
      shared = await this.lease.get();
    } catch (err) {
      // A TLS context that cannot be built from the material (checked already, so rare).
      throw this.fail(`cannot set up the connection: ${(err as Error).message}`);
    }
    const { rows, fields } = await this.run(shared.pool, signal);
    return this.extract(rows, fields);
  }

  close(): void {
    this.lease?.close();
  }

  /** The query on one pooled connection, all of it (connecting included) bounded by the timeout and the signal. */
  private async run(pool: Pool, signal: AbortSignal): Promise<{ rows: unknown; fields: FieldPacket[] | undefined }> {
    let phase: 'connect' | 'query' = 'connect';
    let conn: PoolConnection | undefined;
    let gaveUp = false;
    const attempt = (async () => {
      const c = await pool.getConnection();
      if (gaveUp) {
        // It came too late for this call; healthy, so the next one may use it.
        c.release();
        return undefined;
      }
      conn = c;
      phase = 'query';
      const [rows, fields] = await c.query({ sql: this.query, rowsAsArray: true });
      return { rows, fields: fields as FieldPacket[] | undefined };
    })();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.fail(`no answer within ${this.timeoutMs} ms${phase === 'connect' ? ' (while connecting)' : ` (query: ${this.shownQuery()})`}`)), this.timeoutMs);
      onAbort = () => reject(this.fail('request aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const result = await Promise.race([attempt, stopped]);
      conn?.release();
      return result!;
    } catch (err) {
      gaveUp = true;
      attempt.catch(() => undefined);
      if (err instanceof ScalerError) {
        // Cut short: the connection may still be busy with the query, so it is never reused.
        conn?.destroy();
        throw err;
      }
      const e = err as MysqlError;
      if (conn) {
        if (e.fatal) conn.destroy();
        else conn.release();
      }
      throw this.fail(this.describe(e, phase));
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /** The first column of the first row, as a finite number. */
  private extract(rows: unknown, fields: FieldPacket[] | undefined): number {
    if (!Array.isArray(rows)) throw this.fail(`the query returned no result set: is it a SELECT? (query: ${this.shownQuery()})`);
    const columns = fields?.length ?? (Array.isArray(rows[0]) ? (rows[0] as unknown[]).length : 0);
    // Go's Row.Scan into one value fails on any other number of columns; so does this.
    if (columns !== 1) throw this.fail(`the query returned ${columns} columns, expected 1 (query: ${this.shownQuery()})`);
    if (rows.length === 0) throw this.fail(`the query returned no rows, expected one: aggregate (COUNT, SUM, COALESCE) so that it always returns one (query: ${this.shownQuery()})`);
    const raw = (rows[0] as unknown[])[0];
    if (raw === null || raw === undefined) throw this.fail(`the query returned NULL, not a number: use COALESCE(..., 0) (query: ${this.shownQuery()})`);
    let n: number;
    if (typeof raw === 'number') n = raw;
    else if (typeof raw === 'bigint') n = Number(raw);
    else if (typeof raw === 'string' || Buffer.isBuffer(raw)) {
      const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : raw;
      n = DECIMAL.test(text) ? Number(text) : NaN;
      if (Number.isNaN(n)) throw this.fail(`the query returned ${JSON.stringify(truncate(text, 64))}, not a number (query: ${this.shownQuery()})`);
    } else {
      throw this.fail(`the query returned ${truncate(oneLine(String(raw)), 64)}, not a number (query: ${this.shownQuery()})`);
    }
    if (!Number.isFinite(n)) throw this.fail(`the query returned ${n}, not a finite number (query: ${this.shownQuery()})`);
    return n;
  }

  /** A failure from mysql2 in words a user can act on. */
  private describe(err: MysqlError, phase: 'connect' | 'query'): string {
    const target = this.target!;
    const server = err.sqlMessage !== undefined ? `${oneLine(err.sqlMessage)} (${err.code ?? `error ${err.errno}`})` : undefined;
    if (server !== undefined && phase === 'query') return `the query failed: ${server} (query: ${this.shownQuery()})`;
    if (err.code === 'ER_ACCESS_DENIED_ERROR' || err.code === 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR') {
      const hint =
        target.tls === 'false' ? 'check the username and password; a user created REQUIRE SSL or REQUIRE X509 is refused this way without TLS (see tls)'
        : target.material.cert === undefined ? 'check the username and password; a user created REQUIRE X509 is refused this way without a client certificate (auth parameters cert and key)'
        : 'check the username and password, and that the client certificate matches what the user REQUIREs';
      return `access denied: ${server} (${hint})`;
    }
    if (server !== undefined) return `cannot connect: ${server}`;
    if (err.code === 'HANDSHAKE_SSL_ERROR' || err.code?.startsWith('ERR_SSL_')) {
      // The server's certificate not trusted, or the handshake refused (by either side).
      const code = err.code === 'HANDSHAKE_SSL_ERROR' ? tlsErrorCode(err) : err.code;
      if (!code.startsWith('ERR_SSL_') && code !== 'HANDSHAKE_SSL_ERROR') return describeNetworkError({ message: err.message, code }, undefined);
      const reason = typeof err.reason === 'string' && err.reason !== '' ? err.reason : err.message;
      const refusedCert = /alert (unknown ca|bad certificate|certificate unknown|certificate required|unsupported certificate|certificate revoked|certificate expired)/i.test(reason);
      const hint =
        !refusedCert ? ''
        : target.material.cert !== undefined ? ': the server refused the client certificate (does its ssl_ca hold the CA that issued the auth parameter cert?)'
        : ': the server wants a client certificate (the auth parameters cert and key)';
      return `TLS handshake failed: ${reason} (${code})${hint}`;
    }
    if (err.code === 'HANDSHAKE_NO_SSL_SUPPORT') return 'the server does not offer TLS, and tls is true: enable TLS on the server (ssl_cert, ssl_key), or set tls=false';
    if (err.code === 'PROTOCOL_CONNECTION_LOST') return `the server closed the connection (${err.message})`;
    if (err.code === 'ETIMEDOUT' && phase === 'connect') return `connect timed out after ${target.connectTimeoutMs} ms`;
    return describeNetworkError(
      err,
      target.tls !== 'false' && target.material.cert === undefined ? 'does the server require a client certificate? see the auth parameters cert and key' : undefined,
      'does the server\'s ssl_ca hold the CA that issued the auth parameter cert?',
    );
  }

  private shownQuery(): string {
    return truncate(oneLine(this.query), QUERY_CHARS);
  }

  private fail(problem: string): ScalerError {
    return new ScalerError(this.scrubber.scrub(`${TYPE}${this.shown ? ` ${this.shown}` : ''}: ${problem}`));
  }
}

interface MysqlError extends Error {
  code?: string;
  errno?: number;
  sqlMessage?: string;
  fatal?: boolean;
  /** OpenSSL's short reason, on TLS errors. */
  reason?: unknown;
}

/** OpenSSL's verification messages, by the code Node gives them. */
const VERIFY_MESSAGES: [RegExp, string][] = [
  [/^unable to verify the first certificate/, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  [/^unable to get local issuer certificate/, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'],
  [/^unable to get issuer certificate/, 'UNABLE_TO_GET_ISSUER_CERT'],
  [/^self[- ]signed certificate in certificate chain/, 'SELF_SIGNED_CERT_IN_CHAIN'],
  [/^self[- ]signed certificate/, 'DEPTH_ZERO_SELF_SIGNED_CERT'],
  [/^certificate has expired/, 'CERT_HAS_EXPIRED'],
  [/^certificate is not yet valid/, 'CERT_NOT_YET_VALID'],
  [/^certificate signature failure/, 'CERT_SIGNATURE_FAILURE'],
  [/^certificate revoked/, 'CERT_REVOKED'],
  [/^invalid CA certificate/, 'INVALID_CA'],
  [/^certificate not trusted/, 'CERT_UNTRUSTED'],
  [/^unsupported certificate purpose/, 'INVALID_PURPOSE'],
];

/**
 * mysql2 replaces the code of every TLS failure by HANDSHAKE_SSL_ERROR; Node's own code (what
 * says "not trusted" rather than "handshake failed") is told back from the rest of the error.
 */
function tlsErrorCode(err: MysqlError): string {
  const e = err as MysqlError & { host?: unknown; cert?: unknown };
  if (e.host !== undefined && e.cert !== undefined) return 'ERR_TLS_CERT_ALTNAME_INVALID';
  for (const [re, code] of VERIFY_MESSAGES) if (re.test(err.message)) return code;
  return 'HANDSHAKE_SSL_ERROR';
}

/**
 * mysql2's own connect timeout, without the DSN's `timeout`: a little after the call's deadline,
 * so that the deadline speaks first and this only ends a connection attempt given up on.
 */
function connectBackstop(timeoutMs: number): number {
  return timeoutMs + 1000;
}

const DECIMAL = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/** A pool for one identity; made with the trust bundle current at the time. */
function openPool(createPool: typeof CreatePool, t: Target, trustBundle: string): SharedPool {
  const ssl =
    t.tls === 'true' ? {
        ca: t.material.ca ? `${trustBundle}\n${t.material.ca}` : trustBundle,
        ...(t.material.cert ? { cert: t.material.cert, key: t.material.key, ...(t.material.passphrase !== undefined ? { passphrase: t.material.passphrase } : {}) } : {}),
        rejectUnauthorized: true,
        // mysql2 checks the host name only when asked to.
        verifyIdentity: true,
        minVersion: 'TLSv1.2',
      }
    : t.tls === 'skip-verify' ? {
        ...(t.material.cert ? { cert: t.material.cert, key: t.material.key, ...(t.material.passphrase !== undefined ? { passphrase: t.material.passphrase } : {}) } : {}),
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      }
    : undefined;
  const pool = createPool({
    ...(t.socketPath !== undefined ? { socketPath: t.socketPath } : { host: t.host, port: t.port }),
    ...(t.tls === 'true' && t.host !== undefined && isIP(t.host) ? { stream: ipSocket(t.host, t.port ?? DEFAULT_PORT) } : {}),
    user: t.user,
    ...(t.password !== undefined ? { password: t.password } : {}),
    ...(t.database !== undefined ? { database: t.database } : {}),
    ...(ssl ? { ssl } : {}),
    enableCleartextPlugin: t.cleartextPasswords,
    connectTimeout: t.connectTimeoutMs,
    connectionLimit: CONNECTION_LIMIT,
    // Idle connections are closed by the timers below (unref'd), not by mysql2's reaper, whose
    // timer would keep the process alive.
    maxIdle: CONNECTION_LIMIT,
    queueLimit: 0,
    waitForConnections: true,
    enableKeepAlive: true,
    multipleStatements: false,
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: false,
  });
  const idle = new Map<object, NodeJS.Timeout>();
  const core = pool.pool;
  core.on('connection', (c) => {
    // A connection that breaks while idle emits 'error'; mysql2 drops it from the pool. This
    // listener only keeps a second emission from being an uncaught exception.
    c.on('error', () => undefined);
  });
  core.on('acquire', (c) => {
    clearTimeout(idle.get(c));
    idle.delete(c);
  });
  core.on('release', (c) => {
    clearTimeout(idle.get(c));
    const timer = setTimeout(() => {
      idle.delete(c);
      c.destroy();
    }, IDLE_MS);
    timer.unref();
    idle.set(c, timer);
  });
  return {
    pool,
    end: () => {
      for (const timer of idle.values()) clearTimeout(timer);
      idle.clear();
      pool.end().catch(() => undefined);
    },
  };
}

/**
 * For a server addressed by IP: mysql2 leaves the TLS server name out (SNI takes no IP), and Node
 * then checks the certificate against the socket's `_host`, which net.connect does not set for an
 * IP address, else against "localhost": a certificate for localhost would pass for any address,
 * and one for the address itself would fail. The socket is made here, with that field set.
 */
function ipSocket(host: string, port: number): () => Socket {
  return () => {
    const socket = connect({ host, port });
    (socket as Socket & { _host: string | null })._host = host;
    socket.setNoDelay(true);
    socket.once('connect', () => socket.setKeepAlive(true));
    return socket;
  };
}

function configError(message: string): ScalerConfigError {
  return upstreamConfigError(TYPE, message);
}
