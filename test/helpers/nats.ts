// Real NATS servers for tests: Debian's nats-server (2.9) with JetStream on, listening on a
// loopback address, its monitoring endpoint on plain HTTP or on HTTPS (with the client port then
// TLS too, as nats-server wants a `tls` block for either), stopped and started again on the same
// ports and JetStream store (a server that goes away and comes back), and clusters of three
// servers on three loopback addresses (127.0.0.2, .3, .4) sharing one set of ports, so that each
// server's monitoring endpoint is `<its address>:<the same port>` as in a Kubernetes StatefulSet.
//
// No NATS client package is installed, so this file holds a minimal one (NatsConnection): the
// text protocol (INFO, CONNECT, PUB, SUB, MSG/HMSG, PING/PONG), request/reply through an inbox,
// the TLS upgrade that follows the server's INFO, and the few JetStream API calls the tests need
// (streams, durable pull consumers, publishing with acks, fetching and acking). It is test code,
// not a client to build on: one connection, no reconnects.
//
// Every server is stopped at the test's teardown through ./daemon.ts, whose watchdog stops it
// even when the test process is killed outright; its folder is removed after it.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { findProgram, freePort, startDaemon, withFreePort, type Daemon, type Teardown } from './daemon.js';

/** Debian's package puts it in /usr/sbin (not on every PATH); scripts/require-system-tools.mjs installs it. */
export const NATS_BIN = process.env.NATS_SERVER_BIN ?? findProgram('nats-server', ['/usr/sbin']) ?? 'nats-server';

export interface NatsTls {
  /** The server's certificate and key (for the monitoring endpoint and the client port). */
  cert: string;
  key: string;
  /** The CA that issued `cert`: what the helper's own connections trust. */
  ca: string;
  /**
   * `tls { verify: true }`: clients of the client port must show a certificate signed by this CA
   * (the helper's own client shows `client`). The monitoring endpoint does not ask for one
   * (nats-server 2.9 serves it with the same certificate but never requests client certificates).
   */
  verifyClients?: { ca: string; client: { cert: string; key: string } };
}

export interface NatsOptions {
  tls?: NatsTls;
  /**
   * Accounts with JetStream, each with one user (the server then has no `$G` for anonymous
   * clients); the helper's connections log in as the first one's user.
   */
  accounts?: Record<string, { user: string; password: string }>;
  /** The address to listen on (default 127.0.0.1). */
  host?: string;
  /** Default `n1`. */
  serverName?: string;
}

export interface NatsServer {
  readonly name: string;
  readonly host: string;
  readonly clientPort: number;
  readonly monitorPort: number;
  /** `<host>:<monitor port>`: what a trigger's natsServerMonitoringEndpoint is. */
  readonly monitor: string;
  /** http(s)://<host>:<monitor port> */
  readonly monitorUrl: string;
  readonly daemon: Daemon;
  /** A connection to the client port (TLS when the server has it); closed at teardown. */
  connect(): Promise<NatsConnection>;
  /** GET a monitoring path (`/varz`, `/jsz?...`): the parsed JSON. */
  monitoring<T = Record<string, unknown>>(path: string): Promise<T>;
  logs(): string;
}

/** Starts one server with JetStream on, and waits until it is healthy. */
export async function startNats(t: Teardown, o: NatsOptions = {}): Promise<NatsServer> {
  const dir = await mkdtemp(join(tmpdir(), 'keda-ts-nats-'));
  const host = o.host ?? '127.0.0.1';
  let server: NatsServer | undefined;
  // The server stopped first, then its folder removed: at teardown, and at once if start-up fails.
  const cleanUp = async () => {
    await server?.daemon.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    server = await withFreePort(async (monitorPort) => launch(t, { ...o, host, serverName: o.serverName ?? 'n1', dir, clientPort: await freePort(), monitorPort }));
  } catch (err) {
    await cleanUp();
    throw err;
  }
  t.teardown(cleanUp);
  return server;
}

export interface NatsCluster {
  readonly servers: NatsServer[];
  /** The server named so. */
  byName(name: string): NatsServer;
}

/**
 * Three servers n1, n2, n3 on 127.0.0.2, 127.0.0.3 and 127.0.0.4, each with the same client,
 * cluster and monitoring ports, routed to each other; JetStream clustered. Waits until all three
 * see a JetStream meta leader.
 */
export async function startNatsCluster(t: Teardown, o: { hosts?: string[] } = {}): Promise<NatsCluster> {
  const hosts = o.hosts ?? ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
  const dir = await mkdtemp(join(tmpdir(), 'keda-ts-nats-cluster-'));
  let servers: NatsServer[] = [];
  // The servers stopped first, then their folder removed: at teardown, and at once if start-up fails.
  const cleanUp = async () => {
    await Promise.all(servers.map((s) => s.daemon.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    servers = await startCluster(t, hosts, dir);
  } catch (err) {
    await cleanUp();
    throw err;
  }
  t.teardown(cleanUp);
  return {
    servers,
    byName(name) {
      const s = servers.find((x) => x.name === name);
      if (!s) throw new Error(`no NATS server named ${name}`);
      return s;
    },
  };
}

function startCluster(t: Teardown, hosts: string[], dir: string): Promise<NatsServer[]> {
  return withFreePort(async (monitorPort) => {
    const clientPort = await freePort();
    const clusterPort = await freePort();
    const routes = hosts.map((h) => `nats://${h}:${clusterPort}`);
    // Side by side: a cluster only becomes healthy once its servers see each other.
    const started = await Promise.allSettled(
      hosts.map((host, i) =>
        launch(t, { host, serverName: `n${i + 1}`, dir: join(dir, `n${i + 1}`), clientPort, monitorPort, cluster: { port: clusterPort, routes } }),
      ),
    );
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) {
      await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.daemon.stop() : undefined)));
      throw failed.reason;
    }
    return started.map((s) => (s as PromiseFulfilledResult<NatsServer>).value);
  });
}

interface LaunchOptions extends NatsOptions {
  host: string;
  serverName: string;
  dir: string;
  clientPort: number;
  monitorPort: number;
  cluster?: { port: number; routes: string[] };
}

async function launch(t: Teardown, o: LaunchOptions): Promise<NatsServer> {
  const { host, dir, tls } = o;
  await mkdir(join(dir, 'jetstream'), { recursive: true });
  const q = (s: string) => JSON.stringify(s);
  const conf = [
    `server_name: ${q(o.serverName)}`,
    `host: ${q(host)}`,
    `port: ${o.clientPort}`,
    `${tls ? 'https' : 'http'}: ${q(`${host}:${o.monitorPort}`)}`,
    `jetstream { store_dir: ${q(join(dir, 'jetstream'))} }`,
  ];
  if (tls) {
    await writeFile(join(dir, 'server.crt'), tls.cert);
    await writeFile(join(dir, 'server.key'), tls.key, { mode: 0o600 });
    const block = [`cert_file: ${q(join(dir, 'server.crt'))}`, `key_file: ${q(join(dir, 'server.key'))}`];
    if (tls.verifyClients) {
      await writeFile(join(dir, 'client-ca.crt'), tls.verifyClients.ca);
      block.push(`ca_file: ${q(join(dir, 'client-ca.crt'))}`, 'verify: true');
    }
    conf.push(`tls { ${block.join(', ')} }`);
  }
  if (o.accounts) {
    const blocks = Object.entries(o.accounts).map(([name, a]) => `${q(name)}: { jetstream: enabled, users: [{ user: ${q(a.user)}, password: ${q(a.password)} }] }`);
    conf.push(`accounts { ${blocks.join(', ')} }`);
  }
  if (o.cluster) {
    conf.push(`cluster { name: "c1", listen: ${q(`${host}:${o.cluster.port}`)}, routes: [${o.cluster.routes.map(q).join(', ')}] }`);
  }
  const confFile = join(dir, 'nats.conf');
  await writeFile(confFile, `${conf.join('\n')}\n`);

  const scheme = tls ? 'https' : 'http';
  const monitoring = async <T>(path: string): Promise<T> => {
    const res = await getText(`${scheme}://${host}:${o.monitorPort}${path}`, tls?.ca);
    if (res.status !== 200) throw new Error(`NATS monitoring ${path} answered HTTP ${res.status}: ${res.text.slice(0, 200)}`);
    return JSON.parse(res.text) as T;
  };
  const daemon = await startDaemon(t, {
    name: `NATS ${o.serverName}`,
    bin: NATS_BIN,
    args: ['-c', confFile],
    // Ready: the monitoring endpoint answers, and JetStream is on (a clustered one knows its meta leader).
    ready: async () => {
      const jsz = await monitoring<{ disabled?: boolean; meta_cluster?: { leader?: string } }>('/jsz');
      if (jsz.disabled === true) return false;
      return o.cluster === undefined || (jsz.meta_cluster?.leader ?? '') !== '';
    },
    stopGraceMs: 10_000,
  });
  const server: NatsServer = {
    name: o.serverName,
    host,
    clientPort: o.clientPort,
    monitorPort: o.monitorPort,
    monitor: `${host}:${o.monitorPort}`,
    monitorUrl: `${scheme}://${host}:${o.monitorPort}`,
    daemon,
    connect: async () => {
      const login = o.accounts ? Object.values(o.accounts)[0] : undefined;
      const c = await NatsConnection.connect({
        host,
        port: o.clientPort,
        ...(login ? { user: login.user, password: login.password } : {}),
        ...(tls ? { tls: { ca: tls.ca, ...(tls.verifyClients ? tls.verifyClients.client : {}) } } : {}),
      });
      t.teardown(() => c.close());
      return c;
    },
    monitoring,
    logs: () => daemon.logs(),
  };
  return server;
}

function getText(url: string, ca: string | undefined): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { method: 'GET', timeout: 5000, ...(ca ? { ca } : {}), agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

// --- a minimal NATS client ---------------------------------------------------------------------

export interface NatsMessage {
  subject: string;
  reply: string | undefined;
  data: string;
  /** From an HMSG's `NATS/1.0 <code> <text>` status line (no responders, no messages, ...). */
  status?: number;
}

interface ConnectOptions {
  host: string;
  port: number;
  /** TLS after INFO: trust `ca`, show `cert`/`key` when given. */
  tls?: { ca: string; cert?: string; key?: string };
  user?: string;
  password?: string;
  timeoutMs?: number;
}

type Handler = (m: NatsMessage) => void;

/**
 * One NATS connection over the text protocol (https://docs.nats.io/reference/reference-protocols/nats-protocol):
 * the server greets with `INFO {json}`; we answer `CONNECT {json}` and `PING`, and the `PONG`
 * says we are in. `SUB <subject> <sid>` subscribes, `PUB <subject> [reply] <bytes>` publishes,
 * and messages arrive as `MSG <subject> <sid> [reply] <bytes>` (or `HMSG` with a header block
 * first, for status messages). Requests subscribe to a unique inbox subject for the reply.
 */
export class NatsConnection {
  private buf: Buffer = Buffer.alloc(0);
  private readonly subs = new Map<number, Handler>();
  private nextSid = 1;
  private readonly pongs: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private closed = false;
  private lastError: string | undefined;
  private readonly inboxPrefix = `_INBOX.${Math.random().toString(36).slice(2)}`;
  private inboxSeq = 0;

  private constructor(private socket: Socket | TLSSocket) {}

  static async connect(o: ConnectOptions): Promise<NatsConnection> {
    const timeoutMs = o.timeoutMs ?? 5000;
    const raw = netConnect({ host: o.host, port: o.port });
    raw.setNoDelay(true);
    const deadline = setTimeout(() => raw.destroy(new Error(`NATS ${o.host}:${o.port}: no greeting within ${timeoutMs} ms`)), timeoutMs);
    try {
      // The INFO line comes in plain text, whether or not TLS follows.
      const info = await new Promise<{ tls_required?: boolean }>((resolve, reject) => {
        let pending = Buffer.alloc(0);
        const onData = (d: Buffer) => {
          pending = Buffer.concat([pending, d]);
          const end = pending.indexOf('\r\n');
          if (end < 0) return;
          raw.off('data', onData);
          raw.off('error', reject);
          const line = pending.subarray(0, end).toString();
          if (!line.startsWith('INFO ')) reject(new Error(`NATS ${o.host}:${o.port}: expected INFO, got ${line.slice(0, 80)}`));
          else resolve(JSON.parse(line.slice(5)) as { tls_required?: boolean });
        };
        raw.on('data', onData);
        raw.once('error', reject);
      });
      let socket: Socket | TLSSocket = raw;
      if (info.tls_required) {
        if (!o.tls) throw new Error(`NATS ${o.host}:${o.port} requires TLS`);
        const tlsOpts = o.tls;
        socket = await new Promise<TLSSocket>((resolve, reject) => {
          const s = tlsConnect({ socket: raw, host: o.host, ca: tlsOpts.ca, ...(tlsOpts.cert ? { cert: tlsOpts.cert, key: tlsOpts.key } : {}) }, () => resolve(s));
          s.once('error', reject);
        });
      }
      const c = new NatsConnection(socket);
      socket.on('data', (d: Buffer) => c.onData(d));
      socket.on('error', (e) => {
        c.lastError = e.message;
      });
      socket.on('close', () => c.failAll(new Error(`NATS connection closed${c.lastError ? `: ${c.lastError}` : ''}`)));
      c.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, headers: true, no_responders: true, protocol: 1, name: 'keda-ts test helper', lang: 'node', version: '0', ...(o.user !== undefined ? { user: o.user, pass: o.password ?? '' } : {}) })}\r\n`);
      await c.flush(timeoutMs);
      return c;
    } catch (err) {
      raw.destroy();
      throw err;
    } finally {
      clearTimeout(deadline);
    }
  }

  /** A PING answered by a PONG: everything sent before it was read by the server. */
  flush(timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.reject(new Error('NATS connection closed'));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`NATS: no PONG within ${timeoutMs} ms${this.lastError ? ` (${this.lastError})` : ''}`)), timeoutMs);
      this.pongs.push({
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.write('PING\r\n');
    });
  }

  publish(subject: string, data: string, reply?: string): void {
    const payload = Buffer.from(data);
    this.write(Buffer.concat([Buffer.from(`PUB ${subject}${reply ? ` ${reply}` : ''} ${payload.length}\r\n`), payload, Buffer.from('\r\n')]));
  }

  subscribe(subject: string, handler: Handler): number {
    const sid = this.nextSid++;
    this.subs.set(sid, handler);
    this.write(`SUB ${subject} ${sid}\r\n`);
    return sid;
  }

  unsubscribe(sid: number): void {
    this.subs.delete(sid);
    if (!this.closed) this.write(`UNSUB ${sid}\r\n`);
  }

  newInbox(): string {
    return `${this.inboxPrefix}.${++this.inboxSeq}`;
  }

  /** Publishes with a reply inbox and waits for the first answer. */
  async request(subject: string, data: string, timeoutMs = 5000): Promise<NatsMessage> {
    const inbox = this.newInbox();
    let sid = 0;
    try {
      return await new Promise<NatsMessage>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`NATS request ${subject}: no answer within ${timeoutMs} ms`)), timeoutMs);
        sid = this.subscribe(inbox, (m) => {
          clearTimeout(timer);
          if (m.status === 503) reject(new Error(`NATS request ${subject}: no responders (is JetStream on?)`));
          else resolve(m);
        });
        this.publish(subject, data, inbox);
      });
    } finally {
      this.unsubscribe(sid);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.failAll(new Error('NATS connection closed'));
  }

  // --- JetStream (https://docs.nats.io/reference/reference-protocols/nats_api_reference) --------

  /** A JetStream API request: JSON in, JSON out; `{"error": ...}` answers are thrown. */
  async jsApi<T = Record<string, unknown>>(subject: string, body: unknown = {}, timeoutMs = 5000): Promise<T> {
    // A cluster's JetStream answers "temporarily unavailable" while it elects leaders: retried.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const m = await this.request(`$JS.API.${subject}`, body === undefined ? '' : JSON.stringify(body), timeoutMs);
      const answer = JSON.parse(m.data) as T & { error?: { code: number; err_code?: number; description: string } };
      if (answer.error) {
        if (answer.error.code === 503 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        throw new Error(`JetStream ${subject}: ${answer.error.description} (${answer.error.code}${answer.error.err_code ? `/${answer.error.err_code}` : ''})`);
      }
      return answer;
    }
  }

  createStream(config: { name: string; subjects: string[]; num_replicas?: number; storage?: 'file' | 'memory' }): Promise<Record<string, unknown>> {
    return this.jsApi(`STREAM.CREATE.${config.name}`, { storage: 'file', num_replicas: 1, ...config });
  }

  deleteStream(name: string): Promise<Record<string, unknown>> {
    return this.jsApi(`STREAM.DELETE.${name}`);
  }

  /** A durable pull consumer with explicit acks, from the first message. */
  createConsumer(stream: string, durable: string, config: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.jsApi(`CONSUMER.DURABLE.CREATE.${stream}.${durable}`, {
      stream_name: stream,
      config: { durable_name: durable, ack_policy: 'explicit', deliver_policy: 'all', ack_wait: 600_000_000_000, ...config },
    });
  }

  deleteConsumer(stream: string, consumer: string): Promise<Record<string, unknown>> {
    return this.jsApi(`CONSUMER.DELETE.${stream}.${consumer}`);
  }

  consumerInfo(stream: string, consumer: string): Promise<{ num_pending: number; num_ack_pending: number; cluster?: { leader?: string } }> {
    return this.jsApi(`CONSUMER.INFO.${stream}.${consumer}`);
  }

  /** Publishes to a stream's subject and waits for JetStream's ack: `{stream, seq}`. */
  async jsPublish(subject: string, data: string): Promise<{ stream: string; seq: number }> {
    const m = await this.request(subject, data);
    const ack = JSON.parse(m.data) as { stream: string; seq: number; error?: { description: string } };
    if (ack.error) throw new Error(`JetStream publish ${subject}: ${ack.error.description}`);
    return ack;
  }

  async jsPublishMany(subject: string, n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.jsPublish(subject, `message ${i}`);
  }

  /**
   * Pulls up to `batch` messages from a pull consumer (waiting at most `expiresMs` for them);
   * each is delivered but not acked until its `ack()` (which waits for the server's confirmation).
   */
  async fetch(stream: string, consumer: string, batch: number, expiresMs = 2000): Promise<{ data: string; ack(): Promise<void> }[]> {
    const inbox = this.newInbox();
    const got: { data: string; ack(): Promise<void> }[] = [];
    let sid = 0;
    try {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, expiresMs + 1000);
        sid = this.subscribe(inbox, (m) => {
          if (m.status !== undefined) {
            // 404 no messages, 408 request expired: the batch is over.
            clearTimeout(timer);
            resolve();
            return;
          }
          const reply = m.reply;
          got.push({
            data: m.data,
            ack: async () => {
              if (!reply) throw new Error('a JetStream message without a reply subject cannot be acked');
              // An ack sent as a request is confirmed once the server has processed it.
              await this.request(reply, '+ACK');
            },
          });
          if (got.length >= batch) {
            clearTimeout(timer);
            resolve();
          }
        });
        this.publish(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`, JSON.stringify({ batch, expires: expiresMs * 1_000_000 }), inbox);
      });
    } finally {
      this.unsubscribe(sid);
    }
    return got;
  }

  // --- the protocol ------------------------------------------------------------------------------

  private write(data: string | Buffer): void {
    if (this.closed) throw new Error('NATS connection closed');
    this.socket.write(data);
  }

  private failAll(err: Error): void {
    this.closed = true;
    for (const p of this.pongs.splice(0)) p.reject(err);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    for (;;) {
      const end = this.buf.indexOf('\r\n');
      if (end < 0) return;
      const line = this.buf.subarray(0, end).toString();
      const op = line.split(' ', 1)[0]!.toUpperCase();
      if (op === 'MSG' || op === 'HMSG') {
        // MSG <subject> <sid> [reply] <bytes> / HMSG <subject> <sid> [reply] <header bytes> <total bytes>
        const parts = line.split(' ').filter((p) => p !== '');
        const total = Number(parts.at(-1));
        const headerBytes = op === 'HMSG' ? Number(parts.at(-2)) : 0;
        const fixed = op === 'HMSG' ? 5 : 4;
        if (this.buf.length < end + 2 + total + 2) return; // the payload is not all here yet
        const body = this.buf.subarray(end + 2, end + 2 + total);
        this.buf = this.buf.subarray(end + 2 + total + 2);
        const message: NatsMessage = {
          subject: parts[1]!,
          reply: parts.length > fixed ? parts[3] : undefined,
          data: body.subarray(headerBytes).toString(),
        };
        if (op === 'HMSG') {
          const status = /^NATS\/1\.0 (\d{3})/.exec(body.subarray(0, headerBytes).toString());
          if (status) message.status = Number(status[1]);
        }
        this.subs.get(Number(parts[2]))?.(message);
        continue;
      }
      this.buf = this.buf.subarray(end + 2);
      if (op === 'PING') this.socket.write('PONG\r\n');
      else if (op === 'PONG') this.pongs.shift()?.resolve();
      else if (op === '-ERR') {
        this.lastError = line;
        // Most -ERRs close the connection; the close handler fails what waits.
      }
      // INFO (cluster updates) and +OK: nothing to do.
    }
  }
}
