// The rabbitmq scaler over AMQP 0-9-1 (protocol amqp): the queue's ready messages from a passive
// queue declare, as KEDA reads them.
//
// One connection per broker identity (address, vhost, credentials, TLS material), shared by every
// scaler through SharedClients, opened at the first check and again at the first check after it
// dropped (the broker restarted, a heartbeat was missed). Each check runs on a channel of its own,
// taken from a few idle ones: a passive declare of a missing queue makes the broker close the
// channel it ran on, and that must not fail the checks of other scalers running on it.
import { isIP } from 'node:net';
import type { Channel, ChannelModel } from 'amqplib';
import type { CustomCaTrust } from '../../tls/custom-ca.js';
import type { QueueReader, QueueStatus } from './rabbitmq.js';
import { ScalerError } from './scaler.js';
import { SharedClients, TrustedLease, connectionIdentity, loadOnFirstUse } from './shared-clients.js';
import { configError, describeNetworkError, truncate, upstreamSecureContext, type TlsMaterial } from './upstream.js';

/** Seconds: a broker gone silent is noticed within two to three of these. */
const HEARTBEAT_SECONDS = 15;
/** Idle channels kept per connection for the next checks. */
const MAX_IDLE_CHANNELS = 4;
/** How the connection is named in the broker's connection list. */
const CONNECTION_NAME = 'keda-ts rabbitmq scaler';

export interface AmqpTarget {
  secure: boolean;
  hostname: string;
  port: number;
  vhost: string;
  username: string;
  password: string;
  /** SASL EXTERNAL (`?auth_mechanism=external`): the client certificate is the identity. */
  external: boolean;
  unsafeSsl: boolean;
  tls: TlsMaterial;
  /** `amqp(s)://host:port/<vhost>`, without credentials: for messages. */
  shown: string;
}

/**
 * host as amqp091-go (KEDA's client) reads it: port 5672 or 5671 by default, the vhost from the
 * path (`/` when there is none), guest/guest when no credentials are written; vhostName and
 * username/password replace those. Of the URI's query, auth_mechanism (plain or external) is
 * read; the certificate file parameters are refused (certificates come from the authentication).
 */
export function parseAmqpHost(
  type: string,
  host: URL,
  o: { vhostName: string | undefined; username: string | undefined; password: string | undefined; unsafeSsl: boolean; tls: TlsMaterial },
): AmqpTarget {
  const secure = host.protocol === 'amqps:';
  const hostname = host.hostname.replace(/^\[|\]$/g, '');
  if (hostname === '') throw configError(type, 'host has no host name');
  const port = host.port === '' ? (secure ? 5671 : 5672) : Number(host.port);
  let vhost = '/';
  let username = 'guest';
  let password = 'guest';
  try {
    if (host.pathname.length > 1) vhost = decodeURIComponent(host.pathname.slice(1));
    if (host.username !== '' || host.password !== '') {
      username = decodeURIComponent(host.username);
      if (host.password !== '') password = decodeURIComponent(host.password);
    }
  } catch {
    throw configError(type, 'host has a malformed percent-encoding');
  }
  if (o.vhostName !== undefined) vhost = o.vhostName;
  if (o.username !== undefined && o.password !== undefined) {
    username = o.username;
    password = o.password;
  }
  let external = false;
  for (const [name, value] of host.searchParams) {
    if (name === 'auth_mechanism') {
      const v = value.toLowerCase();
      if (v !== 'plain' && v !== 'external') throw configError(type, `host: auth_mechanism "${truncate(value, 32)}" is not supported (plain or external)`);
      external = v === 'external';
    } else if (['cacertfile', 'certfile', 'keyfile'].includes(name)) {
      throw configError(type, `host: ${name} is not read; give ca, cert and key in the trigger authentication, with tls enable`);
    }
    // heartbeat, connection_timeout, channel_max, frame_size: not needed for a check, ignored.
  }
  if (external && !secure) throw configError(type, 'host: auth_mechanism external needs amqps:// (the client certificate is the identity)');
  const shownHost = isIP(hostname) === 6 ? `[${hostname}]` : hostname;
  return { secure, hostname, port, vhost, username, password, external, unsafeSsl: o.unsafeSsl, tls: o.tls, shown: `${host.protocol}//${shownHost}:${port}/${encodeURIComponent(vhost)}` };
}

/** amqplib, loaded by the first AMQP check (an operator with no AMQP trigger never loads it). */
const amqplib = loadOnFirstUse(() => import('amqplib'));
type Amqplib = Pick<Awaited<ReturnType<typeof amqplib>>, 'connect' | 'credentials'>;

/** One connection to a broker, (re)opened on use; the checks of every scaler sharing it. */
export class AmqpBroker {
  private model: ChannelModel | undefined;
  private connecting: Promise<ChannelModel> | undefined;
  private readonly idle: Channel[] = [];
  private closed = false;

  constructor(
    private readonly lib: Amqplib,
    private readonly target: AmqpTarget,
    private readonly trustBundle: string,
    private readonly connectTimeoutMs: number,
  ) {}

  /** The ready messages of a queue: a passive declare, on a channel no other check uses meanwhile. */
  async messageCount(queue: string): Promise<number> {
    const model = await this.connection();
    const channel = this.idle.pop() ?? (await this.openChannel(model));
    let reply;
    try {
      reply = await channel.checkQueue(queue);
    } catch (err) {
      // A missing queue closed the channel; whatever else failed, it is not trusted again.
      void Promise.resolve()
        .then(() => channel.close())
        .catch(() => undefined);
      throw err;
    }
    if (this.model === model && this.idle.length < MAX_IDLE_CHANNELS) this.idle.push(channel);
    else void channel.close().catch(() => undefined);
    return reply.messageCount;
  }

  close(): void {
    this.closed = true;
    const model = this.model;
    this.model = undefined;
    this.idle.length = 0;
    void model?.close().catch(() => undefined);
  }

  private connection(): Promise<ChannelModel> {
    if (this.closed) return Promise.reject(new Error('the scaler is closed'));
    if (this.model) return Promise.resolve(this.model);
    // Checks arriving while the connection opens wait for the same attempt; a failed attempt is
    // forgotten, so the next check tries again.
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<ChannelModel> {
    const t = this.target;
    const model = await this.lib.connect(
      // amqplib unescapes the vhost: escaped here, any vhost name arrives as it is.
      { protocol: t.secure ? 'amqps' : 'amqp', hostname: t.hostname, port: t.port, vhost: encodeURIComponent(t.vhost), heartbeat: HEARTBEAT_SECONDS },
      {
        timeout: this.connectTimeoutMs,
        noDelay: true,
        clientProperties: { connection_name: CONNECTION_NAME },
        credentials: t.external ? this.lib.credentials.external() : this.lib.credentials.plain(t.username, t.password),
        ...(t.secure ? { secureContext: upstreamSecureContext(this.trustBundle, t.tls), rejectUnauthorized: !t.unsafeSsl } : {}),
      },
    );
    // The close that follows an error is what counts: the next check reconnects.
    model.on('error', () => undefined);
    model.on('close', () => {
      if (this.model !== model) return;
      this.model = undefined;
      this.idle.length = 0;
    });
    if (this.closed) {
      void model.close().catch(() => undefined);
      throw new Error('the scaler is closed');
    }
    this.model = model;
    return model;
  }

  private async openChannel(model: ChannelModel): Promise<Channel> {
    const channel = await model.createChannel();
    // The check's own promise says why a channel closed; without a listener, an error would throw.
    channel.on('error', () => undefined);
    channel.on('close', () => {
      const i = this.idle.indexOf(channel);
      if (i >= 0) this.idle.splice(i, 1);
    });
    return channel;
  }
}

/** Connections by identity, shared by every scaler (a connection whose last scaler left lingers 10 s). */
const brokers = new SharedClients<AmqpBroker>({ close: (b) => b.close() });

export interface AmqpReaderOptions {
  target: AmqpTarget;
  queueName: string;
  trust: CustomCaTrust;
  timeoutMs: number;
  fail: (problem: string) => ScalerError;
}

export class RabbitmqAmqpReader implements QueueReader {
  private readonly lease: TrustedLease<AmqpBroker, Awaited<ReturnType<typeof amqplib>>>;

  constructor(private readonly o: AmqpReaderOptions) {
    const t = o.target;
    const identity = connectionIdentity('amqp', t.secure, t.hostname, t.port, t.vhost, t.username, t.password, t.external, t.unsafeSsl, t.tls.ca, t.tls.cert, t.tls.key, t.tls.passphrase);
    // amqplib's own connect timeout is only a backstop, set later: the check's bound (and its
    // clear message) wins, while the attempt goes on for the next check.
    this.lease = new TrustedLease(brokers, o.trust, identity, (bundle, lib) => new AmqpBroker(lib, t, bundle, o.timeoutMs + 1000), amqplib);
  }

  async read(signal: AbortSignal): Promise<QueueStatus> {
    const { fail, timeoutMs } = this.o;
    if (signal.aborted) throw fail('request aborted');
    let broker: AmqpBroker;
    try {
      broker = await this.lease.get();
    } catch (err) {
      throw fail((err as Error).message === 'the scaler is closed' ? 'the scaler is closed' : `cannot load amqplib: ${(err as Error).message}`);
    }
    const check = broker.messageCount(this.o.queueName);
    // A check given up on below still ends (its channel is then kept or dropped): not an unhandled rejection.
    check.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const bounds = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(fail(`no answer within ${timeoutMs} ms`)), timeoutMs);
      onAbort = () => reject(fail('request aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const messages = await Promise.race([check, bounds]);
      return { messages, publishRate: 0 };
    } catch (err) {
      if (err instanceof ScalerError) throw err;
      throw fail(this.describe(err));
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort!);
    }
  }

  close(): void {
    this.lease.close();
  }

  /** amqplib's and Node's errors, in words that say what to check. */
  private describe(err: unknown): string {
    const t = this.o.target;
    const e = err as Error & { code?: unknown };
    const message = e?.message ?? String(err);
    if (e?.code === 404 || /\b404 \(NOT-FOUND\)/.test(message)) {
      return `no queue "${truncate(this.o.queueName, 64)}" in vhost "${truncate(t.vhost, 64)}" (404 NOT_FOUND): check queueName, and vhostName or the vhost in host's path`;
    }
    if (/Handshake terminated by server: 403|ACCESS-REFUSED/.test(message)) {
      const check =
        !t.external ? `check the username and password (the trigger authentication, or host's)`
        : t.tls.cert ? `is there a user named as the client certificate's common name?`
        : 'auth_mechanism external needs a client certificate: give cert and key in the trigger authentication, with tls enable';
      return `the broker refused the login (${quoteBrokerMessage(message)}): ${check}`;
    }
    if (/Expected ConnectionOpenOk; got <ConnectionClose/.test(message)) {
      return `the broker refused to open vhost "${truncate(t.vhost, 64)}": it does not exist, or user "${truncate(t.username, 64)}" has no access to it`;
    }
    if (/SASL mechanism EXTERNAL is not provided/.test(message)) {
      return 'the broker does not offer EXTERNAL authentication (auth_mechanism external needs its rabbitmq_auth_mechanism_ssl plugin)';
    }
    if (message === 'connect ETIMEDOUT') return 'connect timed out (no AMQP handshake in time)';
    const notAmqpPort = 'is host\'s port the broker\'s AMQP port? (5672; the TLS port, 5671, needs amqps://)';
    if (/Socket closed abruptly during opening handshake/.test(message)) {
      if (!t.secure) return `the server closed the connection during the AMQP handshake: ${notAmqpPort}`;
      return `the broker closed the connection during the AMQP handshake (${
        t.tls.cert ? 'it may refuse our client certificate: does it trust the CA that issued the auth parameter cert?' : 'a broker that requires a client certificate does this: give cert and key in the trigger authentication, with tls enable'
      })`;
    }
    if (/Connection closed|Channel ended|Channel closed|Unexpected close|Heartbeat timeout/i.test(message)) {
      return `the connection to the broker was lost during the check (${quoteBrokerMessage(message)}); the next check reconnects`;
    }
    if (!t.secure && e?.code === 'ECONNRESET') return `the server closed the connection (${message}): ${notAmqpPort}`;
    if (t.tls.cert && /^ERR_SSL_(TLSV1_ALERT_UNKNOWN_CA|SSLV3_ALERT_BAD_CERTIFICATE)/.test(String(e?.code))) {
      return `the broker refused our client certificate (${String(e.code)}): does it trust the CA that issued the auth parameter cert?`;
    }
    if (typeof e?.code === 'string') {
      return describeNetworkError(err, t.secure && !t.tls.cert ? 'give cert and key in the trigger authentication, with tls enable' : undefined, t.secure ? 'does it trust the CA that issued the auth parameter cert?' : undefined);
    }
    return `AMQP: ${truncate(message, 300)}`;
  }
}

/** The broker's own words from an amqplib message (`... with message "ACCESS_REFUSED - ..."`), else the message. */
function quoteBrokerMessage(message: string): string {
  const m = /with message "([^"]*)"/.exec(message);
  return truncate(m ? m[1]! : message, 200);
}
