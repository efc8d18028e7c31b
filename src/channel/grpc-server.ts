// A gRPC server on node:http2, for the channel's methods: one request message, one or more
// answers. bench/channel-transports.ts measured grpc-js's server at about twice the CPU per call
// of gRPC's framing written directly on node:http2, with a p99 several times longer; what grpc-js
// adds (name resolution, load balancing, retries, interceptors, channelz) is client-side or
// unused here. The protocol (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
// POST, content-type application/grpc, messages framed as 1 flag byte + 4 length bytes, status in
// trailers (or, for an error before any answer, in the only HEADERS frame), grpc-timeout as the
// deadline, RST_STREAM as cancellation. Also what grpc-go and grpc-js servers do for a
// connection: a maximum age (GOAWAY, then a grace), and a GOAWAY for clients that ping more often
// than allowed.
import { constants as h2, createSecureServer, type Http2SecureServer, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { status } from './status.js';
import type { Logger } from 'pino';
import type { LiveTls } from '../tls/live-tls.js';
import { MAX_MESSAGE_BYTES, frame, parseTimeout, percentEncode } from './grpc-protocol.js';
import { listenHost } from '../config/bind-address.js';

/** Pings closer together than this, with no call in between, are strikes (grpc-go's policy). */
const MIN_PING_INTERVAL_MS = 10_000;
const MAX_PING_STRIKES = 2;

export interface ServerCall<Req, Res> {
  readonly request: Req;
  /** Aborted when the client cancels, the deadline passes, or the connection goes. */
  readonly signal: AbortSignal;
  /** An answer (streaming methods: one of many); false when the connection wants a pause first ('drain'). */
  write(message: Res): boolean;
  onDrain(listener: () => void): void;
  /** Ends the call with its status; later calls do nothing. */
  end(code?: status, message?: string): void;
  readonly ended: boolean;
}

export interface GrpcMethod<Req = unknown, Res = unknown> {
  decode(bytes: Buffer): Req;
  encode(message: Res): Buffer;
  handle(call: ServerCall<Req, Res>): void;
}

export interface GrpcServerOptions {
  tls: LiveTls;
  trust: readonly string[];
  methods: ReadonlyMap<string, GrpcMethod>;
  log: Logger;
  maxConnectionAgeMs: number;
  maxConnectionAgeGraceMs: number;
}

export interface RunningGrpcServer {
  port: number;
  /** Stops accepting, lets calls in flight finish within graceMs, then closes what is left. */
  shutdown(graceMs: number): Promise<void>;
}

/** `host` undefined (or 0.0.0.0, ::): every interface, both address families. */
export async function startGrpcServer(host: string | undefined, port: number, opts: GrpcServerOptions): Promise<RunningGrpcServer> {
  const contextOptions = () => ({ ...opts.tls.secureContextOptions(opts.trust), requestCert: true, rejectUnauthorized: true });
  const server: Http2SecureServer = createSecureServer({
    ...contextOptions(),
    settings: { enablePush: false },
    // As grpc-js's server: node:http2 refuses new streams (ENHANCE_YOUR_CALM) once a session's
    // buffered data passes maxSessionMemory (10 MB by default), as a slow reader of many answers could.
    maxSessionMemory: Number.MAX_SAFE_INTEGER,
    maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER,
  });
  opts.tls.onChange(() => server.setSecureContext(contextOptions()));
  const sessions = new Set<ServerHttp2Session>();

  // Nagle off: an answer is written as HEADERS, DATA and trailers; the last would wait for the
  // client's delayed ACK.
  server.on('secureConnection', (socket: TLSSocket) => socket.setNoDelay(true));
  server.on('tlsClientError', (err: Error) => opts.log.debug({ reason: err.message }, 'channel: TLS handshake refused'));
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    policeConnection(session, opts);
    session.on('close', () => sessions.delete(session));
    session.on('error', (err: Error) => opts.log.debug({ reason: err.message }, 'channel: connection error'));
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => serveStream(stream, headers, opts.methods));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: listenHost(host) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as { port: number }).port,
    async shutdown(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      let force: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (force = setTimeout(resolve, graceMs)))]);
      clearTimeout(force);
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}

/** Maximum connection age (so rotated certificates reach every connection) and the ping policy. */
function policeConnection(session: ServerHttp2Session, opts: GrpcServerOptions): void {
  // ±10% so connections opened together do not all go at once.
  const ageMs = opts.maxConnectionAgeMs * (0.9 + Math.random() * 0.2);
  const age = setTimeout(() => {
    session.close();
    setTimeout(() => session.destroy(), opts.maxConnectionAgeGraceMs).unref();
  }, ageMs);
  age.unref();
  let lastPing = -Infinity;
  let strikes = 0;
  session.on('stream', () => (strikes = 0));
  session.on('ping', () => {
    const now = performance.now();
    if (now - lastPing < MIN_PING_INTERVAL_MS && ++strikes > MAX_PING_STRIKES) {
      opts.log.warn({ remote: session.socket?.remoteAddress }, 'channel: a client pings too often (ENHANCE_YOUR_CALM)');
      session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from('too_many_pings'));
      session.close();
    }
    lastPing = now;
  });
  session.on('close', () => clearTimeout(age));
}

function serveStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, methods: ReadonlyMap<string, GrpcMethod>): void {
  stream.on('error', () => undefined);
  if (headers[h2.HTTP2_HEADER_METHOD] !== 'POST') return httpError(stream, 405);
  const contentType = String(headers[h2.HTTP2_HEADER_CONTENT_TYPE] ?? '');
  if (contentType !== 'application/grpc' && !contentType.startsWith('application/grpc+') && !contentType.startsWith('application/grpc;')) return httpError(stream, 415);
  const method = methods.get(String(headers[h2.HTTP2_HEADER_PATH]));
  const call = new Http2Call(stream, method);
  if (!method) return call.end(status.UNIMPLEMENTED, `unknown method ${String(headers[h2.HTTP2_HEADER_PATH])}`);
  const timeout = parseTimeout(headers['grpc-timeout']);
  if (timeout === null) return call.end(status.INTERNAL, `malformed grpc-timeout: ${String(headers['grpc-timeout'])}`);
  if (timeout !== undefined) call.deadline(timeout);

  const chunks: Buffer[] = [];
  let size = 0;
  stream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_MESSAGE_BYTES + 5) return call.end(status.RESOURCE_EXHAUSTED, `request larger than ${MAX_MESSAGE_BYTES} bytes`);
    chunks.push(chunk);
  });
  stream.on('end', () => {
    if (call.ended) return;
    const body = Buffer.concat(chunks);
    if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) return call.end(status.INTERNAL, 'expected exactly one request message');
    if (body[0] !== 0) return call.end(status.UNIMPLEMENTED, 'compressed messages are not supported (grpc-accept-encoding: identity)');
    let request: unknown;
    try {
      request = method.decode(body.subarray(5));
    } catch (err) {
      return call.end(status.INTERNAL, `the request does not decode: ${(err as Error).message}`);
    }
    call.request = request;
    method.handle(call);
  });
}

function httpError(stream: ServerHttp2Stream, code: number): void {
  if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': code }, { endStream: true });
}

class Http2Call implements ServerCall<unknown, unknown> {
  request: unknown;
  ended = false;
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly method: GrpcMethod | undefined,
  ) {
    stream.on('close', () => {
      clearTimeout(this.timer);
      if (!this.ended) {
        this.ended = true;
        this.abort.abort();
      }
    });
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  deadline(ms: number): void {
    this.timer = setTimeout(() => {
      this.end(status.DEADLINE_EXCEEDED, 'Deadline exceeded');
      this.abort.abort();
    }, ms);
  }

  write(message: unknown): boolean {
    if (this.ended || this.stream.destroyed) return false;
    this.respond();
    return this.stream.write(frame(this.method!.encode(message)));
  }

  onDrain(listener: () => void): void {
    this.stream.once('drain', listener);
  }

  end(code: status = status.OK, message = ''): void {
    if (this.ended || this.stream.destroyed) return;
    this.ended = true;
    clearTimeout(this.timer);
    const trailers = { 'grpc-status': String(code), ...(message ? { 'grpc-message': percentEncode(message) } : {}) };
    if (!this.stream.headersSent) {
      // Trailers-only: the status in the one HEADERS frame.
      this.stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...trailers }, { endStream: true });
      return;
    }
    this.stream.once('wantTrailers', () => this.stream.sendTrailers(trailers));
    this.stream.end();
  }

  private respond(): void {
    if (!this.stream.headersSent) this.stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': 'identity' }, { waitForTrailers: true });
  }
}
