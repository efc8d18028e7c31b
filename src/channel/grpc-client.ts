// A gRPC client connection on node:http2, the counterpart of grpc-server.ts. bench/channel-transports.ts
// put most of the adapter's CPU per query, and most of the channel's p99, in grpc-js's client;
// what it adds beyond the protocol (name resolution with load balancing, interceptors, channelz,
// service configs) is unused here. What a gRPC channel owes its caller is kept:
// - connectivity states (IDLE, CONNECTING, READY, TRANSIENT_FAILURE, SHUTDOWN). READY means the
//   operator's SETTINGS arrived: under TLS 1.3 the server judges our certificate after the
//   handshake, so only its first frame says it accepted us;
// - reconnection with gRPC's connection backoff (×1.6, ±20%; from 200 ms, up to 5 s here), reset by a
//   connection that became READY; a connection that stops being READY is replaced at once;
// - calls fail fast with UNAVAILABLE in TRANSIENT_FAILURE and wait while CONNECTING (gRPC's
//   default, not wait-for-ready), and UNAVAILABLE is retried with the retry policy's backoff;
// - keepalive pings (20 s, 5 s to answer; the operator allows one per 10 s without calls);
// - GOAWAY (the operator's maximum connection age): new calls on a new connection, calls in
//   flight finish on the old one;
// - new TLS material: a new connection for new calls; the old one drains.
import { constants as h2, connect as http2Connect, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { isIP } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, createSecureContext, type PeerCertificate } from 'node:tls';
import { status } from './status.js';
import { parseBindAddress } from '../config/bind-address.js';
import type { LiveTls } from '../tls/live-tls.js';
import { MAX_MESSAGE_BYTES, frame, fromHttpStatus, percentDecode } from './grpc-protocol.js';

export const CONNECTIVITY_STATES = ['IDLE', 'CONNECTING', 'READY', 'TRANSIENT_FAILURE', 'SHUTDOWN'] as const;
export type ConnectivityState = (typeof CONNECTIVITY_STATES)[number];

/** A call's status other than OK, as grpc-js's ServiceError carries it. */
export class CallError extends Error {
  override readonly name = 'CallError';
  constructor(
    readonly code: status,
    readonly details: string,
  ) {
    super(`${code} ${status[code]}: ${details}`);
  }
}

export interface CallHandlers {
  /** What it throws ends the call with INTERNAL. */
  onMessage(message: Buffer): void;
  /** Exactly once, last. */
  onStatus(code: status, details: string): void;
}

export interface ClientCall {
  /** Ends the call with CANCELLED (and RST_STREAM CANCEL to the server); nothing after its status. */
  cancel(): void;
}

export interface GrpcConnectionOptions {
  /** host:port or [v6]:port. */
  address: string;
  /** The name the server's certificate must cover, and the :authority (default: the address's host, and the address). */
  authority?: string;
  tls: LiveTls;
  trust: readonly string[];
  onState?(state: ConnectivityState, reason: string): void;
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
}

const CONNECT_TIMEOUT_MS = 20_000;
const BACKOFF = { initialMs: 200, maxMs: 5_000, multiplier: 1.6, jitter: 0.2 };
// The retry policy KEDA's client declares (and grpc-js applied for us): UNAVAILABLE only.
const RETRY = { maxAttempts: 4, initialMs: 100, maxMs: 1_000, multiplier: 2 };
/** How long a replaced connection may finish its calls before it is cut (streams such as Watch never end). */
const DRAIN_MS = 30_000;

export class GrpcConnection {
  private readonly host: string;
  private readonly port: number;
  /** The :authority of every call. */
  readonly authority: string;
  /** The name checked against the server's certificate. */
  private readonly verifyName: string;
  private current: ClientHttp2Session | undefined;
  private stateValue: ConnectivityState = 'IDLE';
  private reason = '';
  private backoffMs = BACKOFF.initialMs;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly sessions = new Set<ClientHttp2Session>();
  private readonly waiting = new Set<Attempt>();
  private readonly keepalive: NodeJS.Timeout;

  constructor(private readonly o: GrpcConnectionOptions) {
    const { host, port } = parseBindAddress(o.address, 'the operator\'s address');
    if (host === undefined || host === '') throw new Error(`the operator's address ${JSON.stringify(o.address)}: expected host:port`);
    this.host = host;
    this.port = port;
    this.authority = o.authority ?? o.address;
    this.verifyName = o.authority ?? host;
    o.tls.onChange(() => this.replace());
    const keepaliveMs = o.keepaliveMs ?? 20_000;
    this.keepalive = setInterval(() => this.ping(o.keepaliveTimeoutMs ?? 5_000), keepaliveMs);
    this.keepalive.unref();
    this.connect();
  }

  get state(): ConnectivityState {
    return this.stateValue;
  }

  /** Why the connection last failed ('' when it never did). */
  get lastError(): string {
    return this.reason;
  }

  /**
   * A call: one request message, any number of answers, a status. `deadline` is a Date.now()
   * time (Infinity: none). `retry`: UNAVAILABLE before any answer is retried within the deadline.
   */
  call(path: string, request: Buffer, deadline: number, handlers: CallHandlers, retry = false): ClientCall {
    const spec = { path, request, deadline, handlers };
    return retry ? new RetryingCall(this, spec).begin() : new Attempt(this, spec).begin();
  }

  /** Stops: no new calls; calls in flight end with UNAVAILABLE. */
  close(): void {
    this.setState('SHUTDOWN', 'closed');
    clearInterval(this.keepalive);
    clearTimeout(this.reconnectTimer);
    for (const session of this.sessions) session.destroy();
    this.wake();
  }

  /** Where a new attempt goes: a READY connection, the wait for one, or failing fast. @internal */
  dispatch(a: Attempt): void {
    const s = this.stateValue;
    if (s === 'READY' && this.current) {
      this.waiting.delete(a);
      a.open(this.current);
    } else if (s === 'TRANSIENT_FAILURE' || s === 'SHUTDOWN') {
      this.waiting.delete(a);
      a.end(status.UNAVAILABLE, s === 'SHUTDOWN' ? 'the channel is closed' : this.reason);
    } else {
      this.waiting.add(a);
    }
  }

  /** @internal */
  forget(a: Attempt): void {
    this.waiting.delete(a);
  }

  private connect(): void {
    if (this.stateValue === 'SHUTDOWN') return;
    this.setState('CONNECTING', '');
    const context = createSecureContext(this.o.tls.secureContextOptions(this.o.trust));
    const servername = isIP(this.verifyName) ? undefined : this.verifyName;
    let handshaken = false;
    const session = http2Connect(`https://${this.authority}`, {
      createConnection: () => {
        const socket = tlsConnect({
          host: this.host,
          port: this.port,
          ...(servername ? { servername } : {}),
          secureContext: context,
          ALPNProtocols: ['h2'],
          checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(this.verifyName, cert),
        });
        // A call is HEADERS and DATA: the second would wait for the server's delayed ACK.
        socket.setNoDelay(true);
        socket.once('secureConnect', () => (handshaken = true));
        return socket;
      },
      settings: { enablePush: false },
      // As grpc-js: node:http2 refuses new streams once a session's buffered data passes 10 MB.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    this.current = session;
    this.sessions.add(session);
    let failure = '';
    const timeout = setTimeout(() => session.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    session.once('remoteSettings', () => {
      clearTimeout(timeout);
      if (this.current !== session) return;
      this.backoffMs = BACKOFF.initialMs;
      this.setState('READY', '');
      this.wake();
    });
    session.on('error', (err: Error) => (failure ||= describe(err)));
    // The server's GOAWAY (its maximum connection age, its shutdown): new calls need a new connection.
    session.on('goaway', () => this.lost(session, 'the operator closed the connection (GOAWAY)'));
    session.once('close', () => {
      clearTimeout(timeout);
      this.sessions.delete(session);
      // A Node server refuses a client certificate by closing the socket after the handshake, with no alert.
      const closed = this.stateValue === 'READY' ? 'the connection closed' : handshaken ? 'the operator closed the connection after the TLS handshake (does it trust our client certificate?)' : 'the connection closed during the TLS handshake';
      this.lost(session, failure || closed);
    });
  }

  /** The current connection is gone or going: a READY one is replaced at once, a failed attempt after the backoff. */
  private lost(session: ClientHttp2Session, reason: string): void {
    if (this.current !== session || this.stateValue === 'SHUTDOWN') return;
    this.current = undefined;
    if (!session.closed && !session.destroyed) drain(session);
    if (this.stateValue === 'READY') {
      this.setState('IDLE', reason);
      this.connect();
      return;
    }
    this.reason = reason;
    this.setState('TRANSIENT_FAILURE', reason);
    this.wake();
    const delay = this.backoffMs * (1 - BACKOFF.jitter + Math.random() * 2 * BACKOFF.jitter);
    this.backoffMs = Math.min(this.backoffMs * BACKOFF.multiplier, BACKOFF.maxMs);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** New TLS material: new calls on a new connection, the old one finishes what it has. */
  private replace(): void {
    const old = this.current;
    if (!old || this.stateValue === 'SHUTDOWN') return;
    this.current = undefined;
    drain(old);
    clearTimeout(this.reconnectTimer);
    this.connect();
  }

  private ping(timeoutMs: number): void {
    const session = this.current;
    if (!session || this.stateValue !== 'READY' || session.closed || session.destroyed) return;
    const timer = setTimeout(() => session.destroy(new Error(`keepalive ping not answered within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    session.ping((err) => {
      clearTimeout(timer);
      if (err && !session.destroyed) session.destroy(err);
    });
  }

  private wake(): void {
    for (const a of [...this.waiting]) this.dispatch(a);
  }

  private setState(state: ConnectivityState, reason: string): void {
    if (this.stateValue === state) return;
    this.stateValue = state;
    this.o.onState?.(state, reason);
  }
}

/** No new streams; the streams open finish, or are cut after DRAIN_MS. */
function drain(session: ClientHttp2Session): void {
  session.close();
  setTimeout(() => session.destroy(), DRAIN_MS).unref();
}

interface CallSpec {
  path: string;
  request: Buffer;
  /** Date.now() time; Infinity: none. */
  deadline: number;
  handlers: CallHandlers;
}

/** One attempt of a call on one connection. @internal */
class Attempt implements ClientCall {
  private stream: ClientHttp2Stream | undefined;
  private session: ClientHttp2Session | undefined;
  private done = false;
  private timer: NodeJS.Timeout | undefined;
  private chunks: Buffer[] = [];
  private size = 0;
  /** Status from grpc-status, or from the HTTP response when it is not gRPC. */
  private result: [status, string] | undefined;
  private streamError = '';
  received = false;

  constructor(
    private readonly connection: GrpcConnection,
    private readonly spec: CallSpec,
  ) {}

  /** Separate from the constructor: the status may come at once (a failed connection, a past deadline). */
  begin(): this {
    const left = this.spec.deadline - Date.now();
    if (left <= 0) {
      this.end(status.DEADLINE_EXCEEDED, 'Deadline exceeded');
      return this;
    }
    if (Number.isFinite(left)) this.timer = setTimeout(() => this.end(status.DEADLINE_EXCEEDED, 'Deadline exceeded'), left);
    this.connection.dispatch(this);
    return this;
  }

  cancel(): void {
    this.end(status.CANCELLED, 'Cancelled on client');
  }

  open(session: ClientHttp2Session): void {
    if (this.done) return;
    const headers: Record<string, string> = {
      ':method': 'POST',
      ':scheme': 'https',
      ':authority': this.connection.authority,
      ':path': this.spec.path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': 'identity',
      'user-agent': 'keda-ts-channel/1',
    };
    const left = this.spec.deadline - Date.now();
    if (Number.isFinite(left)) headers['grpc-timeout'] = `${Math.max(1, Math.ceil(left))}m`;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: false });
    } catch (err) {
      // The connection began closing since it was READY: as a refused stream, safe to retry.
      this.end(status.UNAVAILABLE, describe(err as Error));
      return;
    }
    this.stream = stream;
    this.session = session;
    stream.on('response', (h: IncomingHttpHeaders) => this.response(h));
    stream.on('data', (chunk: Buffer) => this.data(chunk));
    stream.on('trailers', (h: IncomingHttpHeaders) => this.trailers(h));
    stream.on('error', (err: Error) => (this.streamError ||= describe(err)));
    stream.on('close', () => this.closed(stream));
    stream.end(frame(this.spec.request));
  }

  end(code: status, details: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.connection.forget(this);
    if (this.stream && !this.stream.closed) this.stream.close(h2.NGHTTP2_CANCEL);
    this.chunks = [];
    this.spec.handlers.onStatus(code, details);
  }

  private response(headers: IncomingHttpHeaders): void {
    const httpStatus = Number(headers[h2.HTTP2_HEADER_STATUS]);
    const contentType = String(headers[h2.HTTP2_HEADER_CONTENT_TYPE] ?? '');
    if (headers['grpc-status'] !== undefined) this.trailers(headers);
    else if (httpStatus !== 200) this.result = [fromHttpStatus(httpStatus), `the operator answered HTTP ${httpStatus}, not gRPC`];
    else if (!contentType.startsWith('application/grpc')) this.result = [status.UNKNOWN, `the operator answered ${contentType || 'no content-type'}, not application/grpc`];
  }

  private trailers(headers: IncomingHttpHeaders): void {
    const code = Number(headers['grpc-status']);
    const message = headers['grpc-message'];
    this.result = [Number.isInteger(code) && code >= 0 && code <= 16 ? code : status.UNKNOWN, typeof message === 'string' ? percentDecode(message) : ''];
  }

  private data(chunk: Buffer): void {
    // Set before the body only when the answer is not gRPC: its body is not framed.
    if (this.done || this.result) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size >= 5) {
      const head = this.chunks[0]!.length >= 5 ? this.chunks[0]! : this.flatten();
      if (head[0] !== 0) return this.end(status.INTERNAL, 'a compressed answer, though only identity was offered');
      const length = head.readUInt32BE(1);
      if (length > MAX_MESSAGE_BYTES) return this.end(status.RESOURCE_EXHAUSTED, `an answer of ${length} bytes, more than ${MAX_MESSAGE_BYTES}`);
      if (this.size < 5 + length) return;
      const all = this.flatten();
      const message = all.subarray(5, 5 + length);
      const rest = all.subarray(5 + length);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.size = rest.length;
      this.received = true;
      try {
        this.spec.handlers.onMessage(message);
      } catch (err) {
        // Thrown from a stream's 'data' event it would be uncaught: the call ends instead.
        return this.end(status.INTERNAL, `the answer could not be read: ${(err as Error).message}`);
      }
      if (this.done) return;
    }
  }

  private flatten(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0]!;
  }

  private closed(stream: ClientHttp2Stream): void {
    if (this.done) return;
    if (this.result) {
      if (this.size > 0 && this.result[0] === status.OK) return this.end(status.INTERNAL, 'the answer ended in the middle of a message');
      return this.end(...this.result);
    }
    const session = this.session;
    if (stream.rstCode === h2.NGHTTP2_REFUSED_STREAM) return this.end(status.UNAVAILABLE, 'the operator refused the stream (it is closing the connection)');
    if (session?.destroyed || (session?.closed && this.streamError)) return this.end(status.UNAVAILABLE, `connection lost: ${this.streamError || 'closed'}`);
    if (stream.rstCode === h2.NGHTTP2_CANCEL) return this.end(status.CANCELLED, 'the operator cancelled the call');
    this.end(status.INTERNAL, `the operator ended the call without a status (HTTP/2 code ${stream.rstCode ?? 'none'}${this.streamError ? `: ${this.streamError}` : ''})`);
  }
}

/** UNAVAILABLE before any answer is tried again: gRPC's retry policy, its backoff jittered, within the deadline. */
class RetryingCall implements ClientCall {
  private attempt: Attempt | undefined;
  private attempts = 1;
  private backoffMs = RETRY.initialMs;
  private retryTimer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    private readonly connection: GrpcConnection,
    private readonly spec: CallSpec,
  ) {}

  begin(): this {
    this.start();
    return this;
  }

  cancel(): void {
    if (this.retryTimer === undefined) return this.attempt?.cancel();
    clearTimeout(this.retryTimer);
    this.finish(status.CANCELLED, 'Cancelled on client');
  }

  private start(): void {
    const { deadline, handlers } = this.spec;
    const onStatus = (code: status, details: string) => {
      if (code === status.UNAVAILABLE && !attempt.received && this.attempts < RETRY.maxAttempts) {
        const delay = Math.random() * this.backoffMs;
        if (Date.now() + delay < deadline) {
          this.attempts++;
          this.backoffMs = Math.min(this.backoffMs * RETRY.multiplier, RETRY.maxMs);
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.start();
          }, delay);
          return;
        }
      }
      this.finish(code, details);
    };
    const attempt: Attempt = new Attempt(this.connection, { ...this.spec, handlers: { onMessage: (m) => handlers.onMessage(m), onStatus } });
    this.attempt = attempt;
    attempt.begin();
  }

  private finish(code: status, details: string): void {
    if (this.done) return;
    this.done = true;
    this.spec.handlers.onStatus(code, details);
  }
}

/** An error's reason without OpenSSL's prefix (`tlsv13 alert certificate required`). */
function describe(err: Error): string {
  const e = err as Error & { reason?: unknown; code?: unknown };
  const text = typeof e.reason === 'string' && e.reason !== '' ? e.reason : e.message;
  return typeof e.code === 'string' && !text.includes(e.code) ? `${text} (${e.code})` : text;
}
