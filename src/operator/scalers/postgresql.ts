// KEDA's `postgresql` scaler: one SQL query whose answer is one number.
// https://keda.sh/docs/latest/scalers/postgresql/
//
// Metadata (as KEDA): query, targetQueryValue, activationTargetQueryValue. Where to connect, as
// KEDA reads it: either `connection` (a libpq connection string, from the trigger's
// authentication or `connectionFromEnv`), or host, port, userName, dbName, sslmode
// (authentication, then metadata) and password (authentication, or `passwordFromEnv`). Not in KEDA: the auth parameters cert/key/keyPassword (a client certificate) and ca (a
// CA for this server); KEDA's pgx would read sslcert/sslkey/sslrootcert from files on the
// operator's disk, which a connection string may not name here.
//
// The value is KEDA's: the query's first row, whose single column must be a number (integer,
// numeric, real or double precision). No row, NULL, more than one column, a column of another
// type, NaN or an infinity are each a ScalerError naming the query, never a made-up value.
//
// sslmode is libpq's: disable (no TLS), allow (without TLS; with TLS if the server refuses that),
// prefer (TLS if the server has it, else without), require (TLS, the certificate NOT verified),
// verify-ca (the chain verified, not the host name), verify-full (chain and host name). Verified
// against the system roots, the --ca-dir folders and the auth parameter ca. As libpq does with a
// root certificate, giving `ca` makes require, prefer and allow verify the chain too.
//
// Connections: one small pg.Pool per upstream identity (server, database, user, password, TLS
// material, trust), shared by every trigger that connects the same way, idle connections closed
// after a while. Each query is bounded by the scaler timeout twice: the server's
// statement_timeout, and a client-side deadline that (like the AbortSignal) drops the connection.
import type { Pool, PoolClient, PoolConfig, QueryArrayConfig, QueryArrayResult } from 'pg';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { SSL_MODES, fromParameters, parseConnectionString, type SslMode, type Target } from './postgresql-connection.js';
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
  upstreamSecureContext,
  warnOnce,
  type TlsMaterial,
} from './upstream.js';

const TYPE = 'postgresql';
/** How much of the query is repeated in a message. */
const QUERY_CHARS = 200;
/** Connections per pool: a query at a time per trigger, shared by many triggers. */
const POOL_MAX = 2;
/** An idle pooled connection is closed after this long. */
const IDLE_MS = 30_000;

/** What the postgresql scaler reads (the README's table is generated from this). */
export const POSTGRESQL_PARAMETERS: readonly ParamSpec[] = [
  { name: 'query', type: 'string', from: 'metadata', required: true, doc: 'One SQL statement whose first row has a single numeric column (integer, numeric, real, double precision); later rows are ignored. Use `COALESCE(..., 0)` where it can be NULL.' },
  { name: 'targetQueryValue', type: 'number', from: 'metadata', required: true, doc: 'The HPA target; not 0 (as in KEDA).' },
  { name: 'activationTargetQueryValue', type: 'number', from: 'metadata', default: 0, doc: 'Active (scaled from zero) strictly above this value.' },
  { name: 'connection', type: 'string', from: 'auth, then env', secret: true, doc: 'A libpq connection string: `host=... port=5432 user=... password=... dbname=... sslmode=verify-full`, or `postgresql://user:password@host:5432/dbname?sslmode=verify-full`. When given, host, port, userName, dbName, sslmode and password are not read (as in KEDA). sslmode defaults to `prefer`, as in libpq. Names of files (sslcert, sslkey, sslrootcert) are refused: use cert, key and ca.' },
  { name: 'host', type: 'string', from: 'auth, then metadata', doc: 'Without connection (required then): the server\'s host name or IP address.' },
  { name: 'port', type: 'string', from: 'auth, then metadata', doc: 'Without connection (required then): the server\'s port.' },
  { name: 'userName', type: 'string', from: 'auth, then metadata', doc: 'Without connection (required then): the user to connect as.' },
  { name: 'dbName', type: 'string', from: 'auth, then metadata', doc: 'Without connection (required then): the database.' },
  { name: 'sslmode', type: 'enum', values: SSL_MODES, from: 'auth, then metadata', doc: 'Without connection (required then, as in KEDA): libpq\'s. `require` encrypts without verifying the certificate (unless ca is given); `verify-ca` verifies its chain; `verify-full` its chain and host name.' },
  { name: 'password', type: 'string', from: 'auth, then env', secret: true, doc: 'Without connection: the user\'s password.' },
  { name: 'cert', type: 'string', from: 'auth', doc: 'A client certificate (PEM), sent whenever TLS is used (not in KEDA). With key.' },
  { name: 'key', type: 'string', from: 'auth', secret: true, doc: 'Its private key (PEM; encrypted with keyPassword, or not).' },
  { name: 'keyPassword', type: 'string', from: 'auth', secret: true, doc: 'The key\'s passphrase.' },
  { name: 'ca', type: 'string', from: 'auth', doc: 'A CA (PEM) trusted for this server besides the system roots and `--ca-dir` (not in KEDA). As libpq does with a root certificate, it makes `require`, `prefer` and `allow` verify the chain.' },
];

export const createPostgresqlScaler: ScalerFactory = (ctx) => new PostgresqlScaler(ctx);

/** Every upstream's pools, shared by the scalers that connect the same way. */
const upstreams = new SharedClients<PgUpstream>({ close: (u) => u.close() });
const pgLibrary = loadOnFirstUse(async () => (await import('pg')).default);

class PostgresqlScaler implements Scaler {
  readonly metricName: string;
  readonly targetValue: number;
  private readonly activation: number;
  private readonly query: string;
  private readonly timeoutMs: number;
  private readonly validateOnly: boolean;
  private readonly target: Target | undefined;
  private readonly shown: string;
  private readonly scrubber: SecretScrubber;
  private readonly hasClientCert: boolean;
  private readonly lease: TrustedLease<PgUpstream, Awaited<ReturnType<typeof pgLibrary>>> | undefined;

  constructor(ctx: ScalerContext) {
    // Validation only (an admission webhook, which cannot read Secrets): the metadata is checked,
    // absent auth parameters are not an error, and the scaler never connects.
    this.validateOnly = ctx.validateOnly === true;
    const p = readParameters(TYPE, POSTGRESQL_PARAMETERS, ctx);
    this.query = p.string('query')!;
    this.targetValue = p.number('targetQueryValue')!;
    if (this.targetValue === 0) throw configError('targetQueryValue must not be 0 (KEDA refuses it too)');
    this.activation = p.number('activationTargetQueryValue')!;
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(TYPE));
    this.timeoutMs = ctx.timeoutMs;

    // --- where to connect ------------------------------------------------------------------------
    const secrets: string[] = [];
    const connection = p.string('connection');
    let target: Target | undefined;
    if (connection !== undefined) {
      secrets.push(connection);
      target = parseConnectionString(connection);
    } else {
      target = fromParameters(p.string('host'), p.string('port'), p.string('userName'), p.string('dbName'), p.string('sslmode') as SslMode | undefined, p.string('password'), this.validateOnly);
    }
    if (target?.password !== undefined) secrets.push(target.password);

    // --- TLS material -----------------------------------------------------------------------------
    const material: TlsMaterial = {};
    const cert = p.string('cert');
    const key = p.string('key');
    const keyPassword = p.string('keyPassword');
    if (key !== undefined) secrets.push(key);
    if (keyPassword !== undefined) secrets.push(keyPassword);
    if (cert !== undefined && key !== undefined) Object.assign(material, checkClientPair(TYPE, 'client certificate', cert, key, { value: keyPassword }));
    else if (!this.validateOnly && cert !== undefined) throw configError('cert is given without key');
    else if (!this.validateOnly && key !== undefined) throw configError('key is given without cert');
    const ca = p.string('ca');
    if (ca !== undefined) material.ca = checkCa(TYPE, '', ca);
    if (target?.sslmode === 'disable' && (material.cert !== undefined || material.ca !== undefined)) {
      throw configError(`${material.cert !== undefined ? 'cert and key are' : 'ca is'} for TLS, and sslmode is disable`);
    }
    this.hasClientCert = material.cert !== undefined;

    this.scrubber = new SecretScrubber(secrets);
    this.target = target;
    this.shown = target ? showHostPort(target.host, target.port) : (p.string('host') ?? '(host from the trigger authentication)');
    if (this.validateOnly || !target) return;

    const t = target;
    const identity = connectionIdentity(t.host, t.port, t.user, t.database, t.password ?? null, t.sslmode, t.applicationName ?? null, t.options, t.connectTimeoutMs, this.timeoutMs, material.cert ?? null, material.key ?? null, material.passphrase ?? null, material.ca ?? null);
    const log = ctx.log;
    const shown = this.shown;
    const scrubber = this.scrubber;
    const onIdleError = (err: Error) => log?.debug({ scaler: TYPE, upstream: shown }, scrubber.scrub(`${TYPE} ${shown}: an idle connection ended: ${oneLine(err.message)}`));
    this.lease = new TrustedLease(upstreams, ctx.trust, identity, (bundle, { Pool: PoolClass }) => new PgUpstream(PoolClass, t, bundle, material, this.timeoutMs, onIdleError), pgLibrary);
    if (['allow', 'prefer', 'require'].includes(t.sslmode) && material.ca === undefined) warnUnverifiedOnce(ctx.log, this.shown, t.sslmode);
  }

  isActive(value: number): boolean {
    return value > this.activation; // KEDA: strictly above activationTargetQueryValue
  }

  async getMetricValue(signal: AbortSignal): Promise<number> {
    if (this.validateOnly || !this.lease) throw this.fail('this scaler was built to validate the trigger only, not to query');
    if (signal.aborted) throw this.fail('the query was aborted');
    let upstream: PgUpstream;
    try {
      upstream = await this.lease.get();
    } catch (err) {
      throw this.fail((err as Error).message);
    }

    // One deadline for the whole call (a free pooled connection, or a new one, then the query);
    // the abort signal ends it the same way.
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const interrupted = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Interrupted('deadline')), this.timeoutMs);
      onAbort = () => reject(new Interrupted('abort'));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    interrupted.catch(() => undefined);
    try {
      const connecting = upstream.connect();
      let client: PoolClient;
      try {
        client = await Promise.race([connecting, interrupted]);
      } catch (err) {
        // A connection that arrives too late is healthy: it goes back to the pool.
        if (err instanceof Interrupted) connecting.then((c) => c.release(), () => undefined);
        throw this.fail(this.describe(err, 'connect', upstream.sslmode));
      }
      const querying = client.query({ text: this.query, rowMode: 'array', types: AS_TEXT, queryMode: 'extended' } as QueryArrayConfig);
      let result: QueryArrayResult;
      try {
        result = await Promise.race([querying, interrupted]);
      } catch (err) {
        querying.catch(() => undefined);
        // An error the server answered with leaves the connection usable; anything else (the
        // deadline, an abort, a lost connection) closes it.
        client.release(isStatementError(err) ? undefined : (err as Error));
        throw this.fail(this.describe(err, 'query', upstream.sslmode));
      }
      client.release();
      return this.value(result);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  close(): void {
    this.lease?.close();
  }

  /** KEDA's value: the first row's only column, a number. */
  private value(result: QueryArrayResult): number {
    const q = `(query: ${this.shownQuery()})`;
    if (result.fields.length !== 1) {
      throw this.fail(result.fields.length === 0 ? `the statement returns no columns, expected one number ${q}` : `the query returned ${result.fields.length} columns, expected 1 ${q}`);
    }
    const row = result.rows[0] as unknown[] | undefined;
    if (row === undefined) throw this.fail(`the query returned no rows, expected one number ${q}`);
    const raw = row[0];
    if (raw === null || raw === undefined) throw this.fail(`the query returned NULL, not a number: use COALESCE(<expression>, 0) where it can be NULL ${q}`);
    const oid = result.fields[0]!.dataTypeID;
    if (!NUMERIC_TYPES.has(oid)) {
      throw this.fail(`the query returned a ${typeName(oid)} column, not a number: cast it, e.g. (<expression>)::numeric ${q}`);
    }
    const n = Number(raw);
    if (!Number.isFinite(n)) throw this.fail(`the query returned ${truncate(String(raw), 32)}, not a finite number ${q}`);
    return n;
  }

  private describe(err: unknown, phase: 'connect' | 'query', sslmode: SslMode): string {
    if (err instanceof Interrupted) {
      if (err.kind === 'abort') return 'the query was aborted';
      return phase === 'connect' ? `no connection within ${this.timeoutMs} ms (the server does not answer)` : `no answer within ${this.timeoutMs} ms (query: ${this.shownQuery()})`;
    }
    const e = err as Error & { code?: unknown; severity?: unknown };
    if (isDatabaseError(err)) {
      const text = `${oneLine(e.message)} (SQLSTATE ${String(e.code)})`;
      if (phase === 'query' && e.severity === 'ERROR') return `the query failed: ${text} (query: ${this.shownQuery()})`;
      if (phase === 'query') return `the server ended the connection: ${text}`;
      return `the server refused the connection: ${text}${refusalHint(e.code, e.message, this.hasClientCert)}`;
    }
    const message = e?.message ?? String(err);
    if (message === 'The server does not support SSL connections') {
      return `the server does not support TLS, which sslmode ${sslmode} requires (with sslmode prefer or disable it is used without)`;
    }
    if (/^SASL: .*password must be a (non-empty )?string/.test(message)) {
      return `the server asks for a password and none is given (password, or in connection)`;
    }
    if (message === 'Connection terminated unexpectedly') {
      return phase === 'connect' ? 'the server closed the connection while it was being set up (Connection terminated unexpectedly)' : 'the server closed the connection (Connection terminated unexpectedly)';
    }
    if (message === 'timeout expired' || message === 'timeout exceeded when trying to connect' || message === 'Connection terminated due to connection timeout') {
      const t = this.target!;
      const ms = t.connectTimeoutMs > 0 ? Math.min(t.connectTimeoutMs, this.timeoutMs) : this.timeoutMs;
      return `no connection within ${ms} ms (the server does not answer${ms === t.connectTimeoutMs ? '; connect_timeout' : ''})`;
    }
    if (e?.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return `TLS: the server's certificate does not name this host (${oneLine(message)}): connect to a name it has, or use sslmode verify-ca (the chain only)`;
    }
    return describeNetworkError(err, undefined, this.hasClientCert ? 'does the server\'s ssl_ca_file hold the CA that issued the auth parameter cert?' : undefined);
  }

  private shownQuery(): string {
    return truncate(oneLine(this.query), QUERY_CHARS);
  }

  private fail(problem: string): ScalerError {
    return new ScalerError(this.scrubber.scrub(`${TYPE} ${this.shown}: ${problem}`));
  }
}

/** The deadline or the abort signal won the race. */
class Interrupted extends Error {
  constructor(readonly kind: 'deadline' | 'abort') {
    super(kind);
  }
}

/** An error the server answered with (pg's DatabaseError, told by its fields: pg is loaded on first use). */
function isDatabaseError(err: unknown): err is Error & { severity: string; code: string } {
  const e = err as { severity?: unknown; code?: unknown } | null;
  return err instanceof Error && typeof e?.severity === 'string' && typeof e.code === 'string';
}

/** An error the server answered a statement with: the connection is still good. */
function isStatementError(err: unknown): boolean {
  return isDatabaseError(err) && err.severity === 'ERROR';
}

/** What to do about a connection the server refused, where the SQLSTATE says. */
function refusalHint(code: unknown, message: string, hasClientCert: boolean): string {
  if (code === '28P01') {
    // The server says no more when a client certificate fails clientcert=verify-full.
    return `: check the user name and password (userName and password, or connection)${hasClientCert ? '; with clientcert=verify-full in pg_hba.conf, also that the client certificate\'s CN is the user name' : ''}`;
  }
  if (code === '28000' && /no encryption/.test(message)) return ': the server wants TLS for this connection (sslmode require, verify-ca or verify-full)';
  if (code === '28000' && /certificate/i.test(message)) {
    return hasClientCert ? ': check the auth parameter cert (its CN must be the user name for clientcert=verify-full)' : ': the server wants a client certificate (the auth parameters cert and key)';
  }
  if (code === '3D000') return ': check dbName (or the connection\'s dbname)';
  return '';
}

// --- the pools ----------------------------------------------------------------------------------

type Transport = 'plain' | 'tls';

/** One upstream as a scaler sees it: a pool per transport its sslmode may use. */
class PgUpstream {
  private readonly pools = new Map<Transport, Pool>();
  private closed = false;

  constructor(
    private readonly PoolClass: typeof Pool,
    private readonly target: Target,
    private readonly trustBundle: string,
    private readonly material: TlsMaterial,
    private readonly timeoutMs: number,
    private readonly onIdleError: (err: Error) => void,
  ) {}

  get sslmode(): SslMode {
    return this.target.sslmode;
  }

  /**
   * A connection, as libpq makes one for this sslmode: allow tries without TLS first and with TLS
   * when the server refuses that; prefer tries TLS first and goes without when the server has no
   * TLS. A connection that does not verify (require, prefer, allow without ca) is still TLS.
   */
  async connect(): Promise<PoolClient> {
    const mode = this.target.sslmode;
    if (mode === 'disable') return this.pool('plain').connect();
    if (mode === 'allow') {
      try {
        return await this.pool('plain').connect();
      } catch (err) {
        if (!isDatabaseError(err)) throw err;
        return this.pool('tls').connect();
      }
    }
    if (mode === 'prefer') {
      try {
        return await this.pool('tls').connect();
      } catch (err) {
        if ((err as Error)?.message !== 'The server does not support SSL connections') throw err;
        return this.pool('plain').connect();
      }
    }
    return this.pool('tls').connect();
  }

  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) pool.end().catch(() => undefined);
    this.pools.clear();
  }

  private pool(transport: Transport): Pool {
    if (this.closed) throw new Error('the upstream is closed');
    let pool = this.pools.get(transport);
    if (pool) return pool;
    const t = this.target;
    const connectMs = t.connectTimeoutMs > 0 ? Math.min(t.connectTimeoutMs, this.timeoutMs) : this.timeoutMs;
    const config: PoolConfig = {
      host: t.host,
      port: t.port,
      user: t.user,
      database: t.database,
      // A function: never a PGPASSWORD or ~/.pgpass of the operator's own.
      password: () => t.password ?? '',
      ssl: transport === 'tls' ? this.tlsOptions() : false,
      sslnegotiation: 'postgres',
      ...(t.applicationName !== undefined ? { application_name: t.applicationName } : {}),
      ...(t.options !== '' ? { options: t.options } : {}),
      statement_timeout: this.timeoutMs,
      connectionTimeoutMillis: connectMs,
      keepAlive: true,
      max: POOL_MAX,
      idleTimeoutMillis: IDLE_MS,
      // Idle connections do not keep the process alive.
      allowExitOnIdle: true,
    };
    pool = new this.PoolClass(config);
    // An idle connection the server ends (a restart, a terminated backend) is dropped by the pool;
    // without a listener its error would be thrown.
    pool.on('error', (err) => this.onIdleError(err));
    // A connection in use has no pool listener: the server's goodbye arriving with a result (a
    // shutdown right after the answer) would be thrown. The pool drops such a connection at release.
    pool.on('connect', (client) => client.on('error', () => undefined));
    this.pools.set(transport, pool);
    return pool;
  }

  private tlsOptions(): ConnectionOptions {
    const mode = this.target.sslmode;
    // libpq: a root certificate (here: the auth parameter ca) makes require, prefer and allow
    // verify the chain; verify-ca and verify-full always do.
    const verifyChain = mode === 'verify-ca' || mode === 'verify-full' || this.material.ca !== undefined;
    return {
      secureContext: upstreamSecureContext(this.trustBundle, this.material),
      rejectUnauthorized: verifyChain,
      // The host name: verify-full only (pg gives tls the host, and the SNI for a name).
      ...(mode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
    };
  }
}

// --- values -----------------------------------------------------------------------------------

/** Every column as the server's text, parsed here by type: bigint and numeric keep their digits. */
const AS_TEXT = { getTypeParser: () => (v: string) => v } as unknown as NonNullable<QueryArrayConfig['types']>;

/** int8, int2, int4, oid, float4, float8, numeric: what pgx scans into KEDA's float64. */
const NUMERIC_TYPES = new Set([20, 21, 23, 26, 700, 701, 1700]);

const TYPE_NAMES: Record<number, string> = {
  16: 'boolean',
  17: 'bytea',
  18: 'char',
  19: 'name',
  25: 'text',
  114: 'json',
  790: 'money',
  1042: 'character',
  1043: 'character varying',
  1082: 'date',
  1083: 'time',
  1114: 'timestamp',
  1184: 'timestamp with time zone',
  1186: 'interval',
  2950: 'uuid',
  3802: 'jsonb',
};

function typeName(oid: number): string {
  return TYPE_NAMES[oid] ?? `type OID ${oid}`;
}

// --- small things -------------------------------------------------------------------------------

/** The one warning that this upstream's certificate is not verified. */
function warnUnverifiedOnce(log: Logger | undefined, shown: string, sslmode: SslMode): void {
  warnOnce(log, `${TYPE} ${sslmode} ${shown}`, { scaler: TYPE, upstream: shown, sslmode }, `${TYPE} ${shown}: sslmode ${sslmode} does not verify the server's certificate (use verify-full, or give the auth parameter ca)`);
}

function configError(message: string): ScalerConfigError {
  return upstreamConfigError(TYPE, message);
}
