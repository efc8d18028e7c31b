// What KEDA's `redis` and `redis-streams` scalers share: where the server is (address, or host and
// port), how to log in (username/password, KEDA's order: metadata, then the trigger's
// authentication), the database, TLS (enableTLS in the metadata or `tls: enable` in the
// authentication, unsafeSsl, cert/key/keyPassword/ca), and the connection itself.
//
// The connection: one ioredis client per upstream identity (address, database, user, password,
// TLS material, unsafeSsl) and trust bundle, shared by every scaler that reads that server the
// same way (SharedClients/TrustedLease). It connects when first used and again at the first use
// after it was lost, never in the background: ioredis' own reconnection and offline queue are off,
// so while the server is away every call fails at once with the reason (connection refused, the
// TLS problem, the server's error) instead of queueing, and the first call after it is back
// reconnects. Every call is bounded by the scaler's timeout and its AbortSignal; a call that times
// out drops the connection (a silent server must not collect unanswered commands), and the next
// call opens a new one. An idle connection does not keep the process alive (its socket is unref'd;
// a call in flight is held by its own timer), and close() leaves no timer behind.
//
// Standalone servers only: KEDA's redis-cluster, redis-sentinel and their -streams variants are
// other trigger types, not implemented here.
import { isIP } from 'node:net';
import type { Redis, RedisOptions } from 'ioredis';
import type { ParamSpec, Parameters } from './parameters.js';
import { ScalerError, type ScalerContext } from './scaler.js';
import { SharedClients, TrustedLease, connectionIdentity, loadOnFirstUse } from './shared-clients.js';
import {
  SecretScrubber,
  checkCa,
  checkClientPair,
  configError,
  describeNetworkError,
  nonEmpty,
  oneLine,
  showHostPort,
  withoutOpenSslNoise,
  truncate,
  upstreamSecureContext,
  warnUnsafeSslOnce,
  type TlsMaterial,
} from './upstream.js';

/** Where the server is and who logs in: first in each scaler's table. */
export const REDIS_SERVER_PARAMETERS: readonly ParamSpec[] = [
  { name: 'address', type: 'string', from: 'metadata, then auth, then env', doc: 'The server, `host:port` (`[::1]:6379` for IPv6). Required unless host and port are given; wins over them.' },
  { name: 'host', type: 'string', from: 'metadata, then env, then auth', doc: 'The server\'s host name or IP address, with port, instead of address.' },
  { name: 'port', type: 'number', from: 'metadata, then env, then auth', doc: 'The server\'s port, with host.' },
  { name: 'username', type: 'string', from: 'metadata, then env, then auth', doc: 'An ACL user (Redis 6+); without it, the `default` user.' },
  { name: 'password', type: 'string', from: 'metadata, then env, then auth', secret: true, doc: 'The password (`requirepass`, or the ACL user\'s). KEDA reads the metadata first, as here.' },
];

/** The database and TLS: last in each scaler's table. */
export const REDIS_CONNECTION_PARAMETERS: readonly ParamSpec[] = [
  { name: 'databaseIndex', type: 'number', from: 'metadata', default: 0, doc: 'The database (`SELECT`), a whole number; a server without it is an error, not database 0.' },
  { name: 'enableTLS', type: 'bool', from: 'metadata', doc: 'Connect over TLS (default false). Not together with the auth parameter `tls`.' },
  { name: 'unsafeSsl', type: 'bool', from: 'metadata', default: false, doc: 'With TLS: skips verifying the server\'s certificate (warned about once). Put its CA in `--ca-dir` or `ca` instead.' },
  { name: 'tls', type: 'enum', values: ['enable', 'disable'], from: 'auth', doc: 'KEDA\'s TriggerAuthentication switch for TLS; not together with the metadata `enableTLS`.' },
  { name: 'cert', type: 'string', from: 'auth', doc: 'With TLS: a client certificate (PEM), for servers with `tls-auth-clients yes`.' },
  { name: 'key', type: 'string', from: 'auth', secret: true, doc: 'Its private key (PEM; encrypted with keyPassword, or not).' },
  { name: 'keyPassword', type: 'string', from: 'auth', secret: true, doc: 'The key\'s passphrase.' },
  { name: 'ca', type: 'string', from: 'auth', doc: 'With TLS: a CA (PEM) trusted for this server, besides the system roots and `--ca-dir`.' },
];

/** The name every connection gives itself (CLIENT SETNAME): what `CLIENT LIST` shows. */
export const REDIS_CONNECTION_NAME = 'keda-ts';

/** Read a whole-number parameter (KEDA parses these as Go integers). */
export function wholeNumber(type: string, p: Parameters, name: string, min?: number): number | undefined {
  const n = p.number(name);
  if (n === undefined) return undefined;
  if (!Number.isSafeInteger(n)) throw configError(type, `${name} "${n}" is not a whole number`);
  if (min !== undefined && n < min) throw configError(type, `${name} "${n}" must be ${min} or more`);
  return n;
}

// --- the endpoint, from the trigger -------------------------------------------------------------

interface Endpoint {
  host: string;
  port: number;
  db: number;
  username: string | undefined;
  password: string | undefined;
  tls: { material: TlsMaterial; unsafeSsl: boolean } | undefined;
}

/** `host:port` or `[v6]:port`; undefined when it is not that. */
function splitHostPort(s: string): { host: string; port: string } | undefined {
  const v6 = /^\[([^\]\s]+)\]:(\d+)$/.exec(s);
  if (v6) return { host: v6[1]!, port: v6[2]! };
  const m = /^([^\s:/[\]@,]+):(\d+)$/.exec(s);
  return m ? { host: m[1]!, port: m[2]! } : undefined;
}

function checkPort(type: string, what: string, raw: number | string): number {
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw configError(type, `${what} "${raw}" is not a port (1 to 65535)`);
  return port;
}

function endpointFrom(type: string, p: Parameters, ctx: ScalerContext): Endpoint {
  // --- where ---------------------------------------------------------------------------------
  let host: string;
  let port: number;
  const address = p.string('address')?.trim();
  if (address !== undefined) {
    if (address.includes(',')) {
      throw configError(type, `address "${truncate(address, 100)}" lists several servers: this scaler reads one standalone Redis (KEDA's redis-cluster and redis-sentinel types are not supported)`);
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) {
      throw configError(type, `address "${truncate(address, 100)}" is a URL: give host:port (TLS is chosen by enableTLS or the auth parameter tls)`);
    }
    const hp = splitHostPort(address);
    if (!hp) throw configError(type, `address "${truncate(address, 100)}" is not host:port (e.g. redis.default.svc:6379, [::1]:6379)`);
    host = hp.host;
    port = checkPort(type, 'address port', hp.port);
  } else {
    const h = p.string('host')?.trim();
    const rawPort = p.number('port');
    // A validate-only build may not see them (a trigger authentication, the environment).
    const missing = (name: string) => !p.unseen(name) && !p.unseen('address');
    if (h === undefined && rawPort === undefined && missing('host')) throw configError(type, 'no address given (host:port), nor host and port');
    if (h === undefined && rawPort !== undefined && missing('host')) throw configError(type, 'port given without host (or give address, host:port)');
    if (h !== undefined && rawPort === undefined && missing('port')) throw configError(type, 'host given without port (or give address, host:port)');
    if (h !== undefined && (/[\s/@,]/.test(h) || (h.includes(':') && isIP(h.replace(/^\[|\]$/g, '')) !== 6))) throw configError(type, `host "${truncate(h, 100)}" is not a host name or IP address`);
    host = h?.replace(/^\[|\]$/g, '') ?? '';
    port = rawPort === undefined ? 0 : checkPort(type, 'port', rawPort);
  }

  // --- who -------------------------------------------------------------------------------------
  const username = p.string('username');
  // A user without a password: AUTH with an empty one (what a `nopass` ACL user accepts).
  const password = p.string('password') ?? (username !== undefined ? '' : undefined);
  const db = wholeNumber(type, p, 'databaseIndex', 0)!;

  // --- TLS: KEDA's enableTLS (metadata) or tls (auth), not both -----------------------------------
  const enableTLS = p.string('tls') === undefined ? undefined : p.string('tls') === 'enable';
  // Given or not matters (both given is an error), so its presence is looked at, as readParameters does.
  const metadataTls = nonEmpty(ctx.trigger.metadata?.enableTLS) !== undefined ? p.bool('enableTLS') : undefined;
  if (enableTLS !== undefined && metadataTls !== undefined) {
    throw configError(type, 'TLS is set twice: enableTLS in the metadata and tls in the trigger authentication (give one)');
  }
  let tls: Endpoint['tls'];
  if ((enableTLS ?? metadataTls) === true) {
    const material: TlsMaterial = {};
    const cert = p.string('cert');
    const key = p.string('key');
    if (cert !== undefined && key === undefined) throw configError(type, 'TLS: auth parameter cert given without key');
    if (key !== undefined && cert === undefined) throw configError(type, 'TLS: auth parameter key given without cert');
    if (cert !== undefined && key !== undefined) Object.assign(material, checkClientPair(type, 'TLS', cert, key, { value: p.string('keyPassword') }));
    const ca = p.string('ca');
    if (ca !== undefined) material.ca = checkCa(type, 'TLS', ca);
    tls = { material, unsafeSsl: p.bool('unsafeSsl') };
  }
  // Without TLS, KEDA ignores cert, key, ca and unsafeSsl; so do we.
  return { host, port, db, username, password, tls };
}


// --- the scaler's side: a lease on the shared connection, and its messages ----------------------

const pool = new SharedClients<RedisConnection>({ close: (c) => c.close() });
const ioredis = loadOnFirstUse(() => import('ioredis'));

/** One scaler's view of its Redis: the parameters read, the shared connection, and the messages. */
export class RedisUpstream {
  /** host:port, as messages show it. */
  readonly shown: string;
  readonly db: number;
  private readonly lease: TrustedLease<RedisConnection, Awaited<ReturnType<typeof ioredis>>> | undefined;
  private readonly scrubber: SecretScrubber;
  private readonly endpoint: Endpoint;
  private readonly timeoutMs: number;

  /** `p`: the trigger's parameters, read with REDIS_SERVER_PARAMETERS and REDIS_CONNECTION_PARAMETERS among them. */
  constructor(
    private readonly type: string,
    p: Parameters,
    ctx: ScalerContext,
  ) {
    this.timeoutMs = ctx.timeoutMs;
    const e = endpointFrom(type, p, ctx);
    this.endpoint = e;
    this.db = e.db;
    this.shown = showHostPort(e.host, e.port);
    this.scrubber = new SecretScrubber([e.password, e.tls?.material.key, e.tls?.material.passphrase].filter((s): s is string => s !== undefined && s !== ''));
    // Validation only (an admission webhook): checked, never connected.
    if (ctx.validateOnly === true) return;
    if (e.tls?.unsafeSsl) warnUnsafeSslOnce(ctx.log, type, this.shown);
    const identity = connectionIdentity('redis', e.host, e.port, e.db, e.username ?? null, e.password ?? null, e.tls ? [e.tls.unsafeSsl, e.tls.material.cert ?? null, e.tls.material.key ?? null, e.tls.material.passphrase ?? null, e.tls.material.ca ?? null] : null);
    this.lease = new TrustedLease(pool, ctx.trust, identity, (bundle, { Redis: RedisClass }) => new RedisConnection(RedisClass, e, bundle), ioredis);
  }

  /**
   * Runs `fn` on the shared connection, bounded by the timeout and `signal`. Failures become a
   * ScalerError; `explain` may word a server error the scaler knows better (WRONGTYPE, NOGROUP).
   */
  async call<T>(signal: AbortSignal, fn: (client: Redis) => Promise<T>, explain?: (serverError: string) => string | undefined): Promise<T> {
    if (!this.lease) throw this.fail('this scaler was built to validate the trigger only, not to query');
    let connection: RedisConnection;
    try {
      connection = await this.lease.get();
    } catch (err) {
      throw this.fail((err as Error).message);
    }
    try {
      return await connection.run(fn, signal, this.timeoutMs);
    } catch (err) {
      throw this.fail(this.describe(err, explain));
    }
  }

  fail(problem: string): ScalerError {
    return new ScalerError(this.scrubber.scrub(`${this.type} ${this.shown}: ${problem}`));
  }

  close(): void {
    this.lease?.close();
  }

  private describe(err: unknown, explain?: (serverError: string) => string | undefined): string {
    const tls = this.endpoint.tls !== undefined;
    const clientCert = this.endpoint.tls?.material.cert !== undefined;
    if (err instanceof CallStopped) {
      if (err.reason === 'aborted') return 'request aborted';
      if (err.connected) return `no answer within ${this.timeoutMs} ms`;
      // A TLS client at a plain port waits forever for the server's hello.
      return `no answer within ${this.timeoutMs} ms while connecting${tls ? ' (is this port TLS? with enableTLS, give the server\'s tls-port)' : ''}`;
    }
    if (err instanceof ConnectFailed) {
      const cause = err.cause;
      if (cause === undefined) {
        // Closed without a word: with TLS, what a server that wants a client certificate may do.
        const hint = tls && !clientCert ? ' (a server with tls-auth-clients yes does this: give cert and key in the trigger authentication)' : '';
        return `the server closed the connection while connecting${hint}`;
      }
      if (isReplyError(cause)) return this.serverError(cause.message, explain);
      const e = withoutOpenSslNoise(cause as NodeJS.ErrnoException);
      if (e.code === 'ETIMEDOUT') return `connect timed out (${e.message})`;
      if (!tls && e.code === 'ECONNRESET') {
        return `the server closed the connection: ${e.message} (a TLS-only port does this to a plain connection: is enableTLS, or tls: enable, missing?)`;
      }
      if (e.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || e.code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
        return `TLS handshake failed: ${e.message} (${e.code}): does the server speak TLS on this port? (tls-port, not port)`;
      }
      if (/CERTIFICATE_REQUIRED/.test(e.code ?? '') && !clientCert) {
        return `the server requires a client certificate: ${e.message} (${e.code}): give cert and key in the trigger authentication`;
      }
      if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE)$/.test(e.code ?? '') && clientCert) {
        return `the server refused the client certificate: ${e.message} (${e.code}): does it trust the CA that issued the auth parameter cert? (tls-ca-cert-file)`;
      }
      return describeNetworkError(
        e,
        tls && !clientCert ? 'give cert and key in the trigger authentication (tls-auth-clients yes)' : undefined,
        tls && clientCert ? 'does it trust the CA that issued the auth parameter cert? (tls-ca-cert-file)' : undefined,
      );
    }
    if (isReplyError(err)) return this.serverError(err.message, explain);
    const message = (err as Error)?.message ?? String(err);
    if (message === 'Connection is closed.') return 'the connection was closed before the answer came (it is opened again at the next call)';
    if (/Stream isn't writeable/.test(message)) return 'the connection was lost (it is opened again at the next call)';
    return `request failed: ${oneLine(message)}`;
  }

  private serverError(raw: string, explain?: (serverError: string) => string | undefined): string {
    const message = truncate(oneLine(raw), 300);
    const own = explain?.(message);
    if (own !== undefined) return own;
    if (/^NOAUTH/.test(message)) return `the server requires authentication: ${message} (give password, and username for an ACL user, in the trigger authentication)`;
    if (/^WRONGPASS/.test(message)) return `authentication failed: ${message} (check username and password in the trigger authentication)`;
    if (/^ERR (AUTH|invalid password)/i.test(message)) return `authentication failed: ${message}`;
    if (/^NOPERM/.test(message)) return `the user may not do this: ${message} (grant it to the ACL user)`;
    if (/DB index is out of range/i.test(message)) return `databaseIndex ${this.db}: ${message} (the server has fewer databases)`;
    if (/^LOADING/.test(message)) return `the server is loading its data: ${message}`;
    return `the server answered an error: ${message}`;
  }
}

function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

// --- the connection ------------------------------------------------------------------------------

/** A call that ended on its timeout or its AbortSignal. */
class CallStopped extends Error {
  constructor(
    readonly reason: 'timeout' | 'aborted',
    /** Whether the connection was up when it stopped (else it was still connecting). */
    readonly connected = false,
  ) {
    super(reason);
  }
}

/** Connecting failed; `cause` is what the socket or the server said (undefined: closed without a word). */
class ConnectFailed extends Error {
  constructor(override readonly cause: unknown) {
    super('connect failed');
  }
}

/** One ioredis client, connected on demand; shared through the pool. */
export class RedisConnection {
  private readonly client: Redis;
  private connecting: Promise<void> | undefined;
  /** Set while a dropped connection is going away. */
  private ending: Promise<void> | undefined;
  /** The last error the client reported while connecting (the real reason behind "Connection is closed."). */
  private lastError: unknown;
  private closed = false;

  constructor(
    RedisClass: typeof Redis,
    private readonly endpoint: Endpoint,
    trustBundle: string,
  ) {
    const e = endpoint;
    const options: RedisOptions = {
      host: e.host,
      port: e.port,
      ...(e.username !== undefined ? { username: e.username } : {}),
      ...(e.password !== undefined ? { password: e.password } : {}),
      // The database is selected by us after connecting: ioredis' own SELECT only reports a
      // failure as an event and carries on with database 0.
      lazyConnect: true,
      // Never queue while disconnected, never reconnect in the background: see the file comment.
      enableOfflineQueue: false,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      // No INFO at connect: an ACL user allowed only what the scaler runs must still connect.
      enableReadyCheck: false,
      // RESP2 and a plain AUTH, what every Redis (and proxy) since 2.x understands.
      protocol: 2,
      disableClientInfo: true,
      connectionName: REDIS_CONNECTION_NAME,
      ...(e.tls
        ? {
            tls: {
              secureContext: upstreamSecureContext(trustBundle, e.tls.material),
              rejectUnauthorized: !e.tls.unsafeSsl,
              // SNI and the certificate's name: the host from the address (Node checks an IP
              // address against the certificate's IP SANs; SNI must not carry one).
              ...(isIP(e.host) === 0 ? { servername: e.host } : {}),
            },
          }
        : {}),
    };
    this.client = new RedisClass(options);
    this.client.on('error', (err: unknown) => {
      this.lastError = err;
    });
    // An idle pooled connection must not keep the process alive.
    this.client.on('connect', () => this.client.stream?.unref());
  }

  /** Runs `fn` once the connection is up; bounded by `timeoutMs` and `signal`. */
  async run<T>(fn: (client: Redis) => Promise<T>, signal: AbortSignal, timeoutMs: number): Promise<T> {
    if (signal.aborted) throw new CallStopped('aborted');
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    let connected = false;
    const stopped = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new CallStopped('timeout', connected));
        // The server is silent, or the network is: what was sent on this connection may never be
        // answered. Drop it (whatever waits on it fails now); the next call connects again.
        this.drop();
      }, timeoutMs);
      onAbort = () => reject(new CallStopped('aborted', connected));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const work = (async () => {
      await this.ready();
      connected = true;
      return fn(this.client);
    })();
    // When the timeout or the signal wins, the work's own failure is of no interest.
    work.catch(() => undefined);
    try {
      return await Promise.race([work, stopped]);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort!);
    }
  }

  close(): void {
    this.closed = true;
    this.drop();
  }

  private drop(): void {
    if (this.client.status === 'end' || this.client.status === 'wait') return;
    // Calls from now on must not join the attempt being abandoned: they wait until it has ended
    // (at once, the socket being destroyed) and connect anew.
    this.connecting = undefined;
    const ended = new Promise<void>((resolve) => this.client.once('end', () => resolve()));
    this.ending = ended;
    void ended.then(() => {
      if (this.ending === ended) this.ending = undefined;
    });
    this.client.disconnect();
    // disconnect() ends the socket politely and destroys it 2 s later if the server does not
    // answer the FIN (a stopped server): destroy it now, which also clears that timer.
    this.client.stream?.destroy();
  }

  /** Connects when not connected; concurrent callers share one attempt. */
  private async ready(): Promise<void> {
    if (this.closed) throw new Error('the connection is closed');
    if (this.ending) await this.ending;
    if (this.client.status === 'ready' && this.connecting === undefined) return;
    if (this.connecting === undefined) {
      const attempt: Promise<void> = this.connect().finally(() => {
        if (this.connecting === attempt) this.connecting = undefined;
      });
      this.connecting = attempt;
    }
    return this.connecting;
  }

  private async connect(): Promise<void> {
    this.lastError = undefined;
    const status = this.client.status;
    try {
      if (status === 'wait' || status === 'end' || status === 'close') {
        await this.client.connect();
      } else if (status !== 'ready') {
        // Connecting already (only after a drop raced a new call): wait for it to settle.
        await new Promise<void>((resolve, reject) => {
          const onReady = () => {
            this.client.off('end', onEnd);
            resolve();
          };
          const onEnd = () => {
            this.client.off('ready', onReady);
            reject(new Error('Connection is closed.'));
          };
          this.client.once('ready', onReady);
          this.client.once('end', onEnd);
        });
      }
    } catch (err) {
      throw new ConnectFailed(this.lastError ?? (isClosedMessage(err) ? undefined : err));
    }
    if (this.endpoint.db !== 0) {
      try {
        await this.client.select(this.endpoint.db);
      } catch (err) {
        this.drop();
        throw err;
      }
    }
  }
}

function isClosedMessage(err: unknown): boolean {
  return err instanceof Error && err.message === 'Connection is closed.';
}
