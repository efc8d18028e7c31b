// The channel's gRPC client (src/channel/grpc-client.ts, on node:http2) over real mutual TLS 1.3.
// Against a bare node:http2 server steered per path: what a gRPC server may answer (trailers-only,
// percent-encoded details, HTTP errors without a gRPC status, answers split across DATA frames),
// what only a broken one sends (compressed or oversized answers, a message cut short, no status),
// the request as it goes out (headers, deadline, :authority and SNI), cancellation and deadlines
// reaching the server as RST_STREAM, and a refused stream retried. Against the operator's real
// channel server: connectivity states, each side refusing the other's certificate, the maximum
// connection age under a stream of calls (no call fails), keepalive finding a dead peer, new TLS
// material (a new connection, with the new certificate), and close().
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { copyFile } from 'node:fs/promises';
import { constants as h2, createSecureServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { status } from '../../src/channel/status.js';
import { GrpcConnection, type ConnectivityState } from '../../src/channel/grpc-client.js';
import { frame } from '../../src/channel/grpc-protocol.js';
import type { MetricsHandler } from '../../src/channel/server.js';
import { GET_METRICS_PATH, metricsServiceDefinition, toWireTime } from '../../src/channel/service.js';
import { startTestChannelServer, type TestChannelServerOptions } from '../helpers/channel.js';
import { eventually } from '../helpers/loop.js';
import { channelTls, createTestPki } from '../helpers/pki.js';

const pki = await createTestPki(t.testdir());
const codec = metricsServiceDefinition.GetMetrics!;
const clientTls = await channelTls(pki.tls, pki.ca.certFile);

interface Outcome {
  code: status;
  details: string;
  messages: Buffer[];
}

/** One call to its status. */
function call(connection: GrpcConnection, path: string, request: Buffer, timeoutMs = 2_000, retry = false, started?: (cancel: () => void) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const messages: Buffer[] = [];
    const c = connection.call(path, request, Date.now() + timeoutMs, { onMessage: (m) => messages.push(Buffer.from(m)), onStatus: (code, details) => resolve({ code, details, messages }) }, retry);
    started?.(() => c.cancel());
  });
}

function connect(port: number, options: { authority?: string; tls?: typeof clientTls; host?: string; keepaliveMs?: number; keepaliveTimeoutMs?: number } = {}) {
  const states: { state: ConnectivityState; reason: string }[] = [];
  const connection = new GrpcConnection({
    address: `${options.host ?? 'localhost'}:${port}`,
    ...(options.authority ? { authority: options.authority } : {}),
    tls: options.tls ?? clientTls,
    trust: ['ca'],
    onState: (state, reason) => states.push({ state, reason }),
    ...(options.keepaliveMs ? { keepaliveMs: options.keepaliveMs } : {}),
    ...(options.keepaliveTimeoutMs ? { keepaliveTimeoutMs: options.keepaliveTimeoutMs } : {}),
  });
  t.teardown(() => connection.close());
  return { connection, states };
}

// --- a bare node:http2 server, steered by :path ------------------------------------------------
interface Seen {
  headers: IncomingHttpHeaders;
  body: Buffer;
  peerSerial: string;
  servername: string | false;
  reset?: number;
}
const seen: Seen[] = [];
const attempts = new Map<string, number>();
const answer = Buffer.from('an answer, long enough to be split across two DATA frames');
const behaviours: Record<string, (stream: ServerHttp2Stream) => void> = {
  '/t/ok': (s) => {
    s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    const framed = frame(answer);
    // The 5-byte prefix split, as a server or proxy may write it.
    s.write(framed.subarray(0, 3));
    setTimeout(() => {
      s.write(framed.subarray(3, 20));
      s.write(Buffer.concat([framed.subarray(20), frame(Buffer.from('second'))]));
      s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end();
    }, 20);
  },
  '/t/trailers-only': (s) => s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'no metric %22x%22: 100%25 gone, na%C3%AFve' }, { endStream: true }),
  '/t/bad-percent': (s) => s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '2', 'grpc-message': 'broken %E2%8 escape' }, { endStream: true }),
  '/t/http503': (s) => s.respond({ ':status': 503 }, { endStream: true }),
  '/t/http404': (s) => s.respond({ ':status': 404 }, { endStream: true }),
  '/t/http401': (s) => s.respond({ ':status': 401 }, { endStream: true }),
  '/t/html': (s) => {
    s.respond({ ':status': 200, 'content-type': 'text/html' });
    s.end('<html></html>');
  },
  '/t/compressed': (s) => {
    s.respond({ ':status': 200, 'content-type': 'application/grpc' });
    const f = frame(answer);
    f[0] = 1;
    s.write(f);
  },
  '/t/huge': (s) => {
    s.respond({ ':status': 200, 'content-type': 'application/grpc' });
    const head = Buffer.alloc(5);
    head.writeUInt32BE(5 * 1024 * 1024, 1);
    s.write(head);
  },
  '/t/cut-short': (s) => {
    s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    s.write(frame(answer).subarray(0, 12));
    s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
    s.end();
  },
  '/t/no-status': (s) => {
    s.respond({ ':status': 200, 'content-type': 'application/grpc' });
    s.end(frame(answer));
  },
  '/t/refused': (s) => s.close(h2.NGHTTP2_REFUSED_STREAM),
  '/t/refused-once': (s) => {
    const n = (attempts.get('refused-once') ?? 0) + 1;
    attempts.set('refused-once', n);
    if (n === 1) return s.close(h2.NGHTTP2_REFUSED_STREAM);
    s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
  },
  '/t/hang': () => undefined,
  '/t/garbage': (s) => {
    s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
    // Field 1 with wire type 3 (a proto2 group): not something the channel's messages contain.
    s.end(frame(Buffer.from([0x0b])));
  },
};

const bare = createSecureServer({ ca: pki.ca.cert, cert: pki.tls.cert, key: pki.tls.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
bare.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
  const socket = stream.session!.socket as unknown as TLSSocket;
  const entry: Seen = { headers, body: Buffer.alloc(0), peerSerial: socket.getPeerX509Certificate()!.serialNumber, servername: socket.servername ?? false };
  seen.push(entry);
  stream.on('error', () => undefined);
  stream.on('data', (chunk: Buffer) => (entry.body = Buffer.concat([entry.body, chunk])));
  stream.on('close', () => (entry.reset = stream.rstCode));
  behaviours[String(headers[':path'])]?.(stream);
});
await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
t.teardown(() => new Promise<void>((resolve) => bare.close(() => resolve())));
bare.on('session', (s) => t.teardown(() => s.destroy()));
const barePort = (bare.address() as AddressInfo).port;

t.test('a call as it goes out, and an answer in pieces', async (t) => {
  const { connection, states } = connect(barePort);
  const request = Buffer.from('the request');
  const ok = await call(connection, '/t/ok', request, 3_000);
  t.equal(ok.code, status.OK, ok.details);
  t.strictSame(ok.messages.map(String), [String(answer), 'second'], 'both answers, whole, in order');
  const out = seen.at(-1)!;
  t.equal(out.headers[':method'], 'POST');
  t.equal(out.headers[':scheme'], 'https');
  t.equal(out.headers[':authority'], `localhost:${barePort}`, 'the address as :authority');
  t.equal(out.headers['content-type'], 'application/grpc');
  t.equal(out.headers.te, 'trailers');
  const timeout = /^(\d+)m$/.exec(String(out.headers['grpc-timeout']));
  t.ok(timeout && Number(timeout[1]) <= 3_000 && Number(timeout[1]) > 2_000, `the deadline as grpc-timeout: ${String(out.headers['grpc-timeout'])}`);
  t.strictSame(out.body, frame(request), 'the request framed once');
  t.equal(out.peerSerial, new X509Certificate(pki.tls.cert).serialNumber, 'our client certificate');
  t.equal(out.servername, 'localhost', 'SNI: the host');
  t.strictSame(states.map((s) => s.state), ['CONNECTING', 'READY']);
  t.equal(connection.state, 'READY');
});

t.test('statuses: trailers-only, percent-encoded details, HTTP errors, answers that are not gRPC', async (t) => {
  const { connection } = connect(barePort);
  const outcome = async (path: string) => {
    const o = await call(connection, path, Buffer.from('x'));
    return [o.code, o.details];
  };
  t.strictSame(await outcome('/t/trailers-only'), [status.NOT_FOUND, 'no metric "x": 100% gone, naïve'], 'the status in the only HEADERS frame; details decoded as UTF-8');
  t.strictSame(await outcome('/t/bad-percent'), [status.UNKNOWN, 'broken %E2%8 escape'], 'a malformed escape kept as it came');
  t.strictSame(await outcome('/t/http503'), [status.UNAVAILABLE, 'the operator answered HTTP 503, not gRPC']);
  t.strictSame(await outcome('/t/http404'), [status.UNIMPLEMENTED, 'the operator answered HTTP 404, not gRPC']);
  t.strictSame(await outcome('/t/http401'), [status.UNAUTHENTICATED, 'the operator answered HTTP 401, not gRPC']);
  t.strictSame(await outcome('/t/html'), [status.UNKNOWN, 'the operator answered text/html, not application/grpc']);
});

t.test('answers a client must refuse: compressed, oversized, cut short, without a status', async (t) => {
  const { connection } = connect(barePort);
  const compressed = await call(connection, '/t/compressed', Buffer.from('x'));
  t.strictSame([compressed.code, compressed.messages.length], [status.INTERNAL, 0], compressed.details);
  await eventually('the compressed call reset', async () => (seen.at(-1)!.reset === h2.NGHTTP2_CANCEL ? true : undefined));
  const huge = await call(connection, '/t/huge', Buffer.from('x'));
  t.strictSame([huge.code, huge.details], [status.RESOURCE_EXHAUSTED, `an answer of ${5 * 1024 * 1024} bytes, more than ${4 * 1024 * 1024}`]);
  await eventually('the oversized call reset', async () => (seen.at(-1)!.reset === h2.NGHTTP2_CANCEL ? true : undefined));
  t.pass('the server was told to stop (RST_STREAM CANCEL)');
  const cut = await call(connection, '/t/cut-short', Buffer.from('x'));
  t.strictSame([cut.code, cut.details], [status.INTERNAL, 'the answer ended in the middle of a message']);
  const none = await call(connection, '/t/no-status', Buffer.from('x'));
  t.equal(none.code, status.INTERNAL);
  t.match(none.details, /ended the call without a status/);
  t.equal((await call(connection, '/t/trailers-only', Buffer.from('x'))).code, status.NOT_FOUND, 'and the connection serves on');
});

t.test('an answer the caller cannot read ends the call with INTERNAL, and nothing is thrown', async (t) => {
  const { connection } = connect(barePort);
  const unreadable = await new Promise<[status, string]>((resolve) =>
    connection.call('/t/garbage', Buffer.from('x'), Date.now() + 2_000, { onMessage: (m) => codec.responseDeserialize(m), onStatus: (code, details) => resolve([code, details]) }),
  );
  t.strictSame(unreadable, [status.INTERNAL, 'the answer could not be read: protobuf: wire type 3 is not supported']);
  await eventually('the call reset', async () => (seen.at(-1)!.reset !== undefined ? true : undefined));
  t.equal((await call(connection, '/t/trailers-only', Buffer.from('x'))).code, status.NOT_FOUND, 'the connection serves on');
});

t.test('deadline and cancel reach the server; a refused stream is UNAVAILABLE, and retried when asked', async (t) => {
  const { connection } = connect(barePort);
  const started = Date.now();
  const late = await call(connection, '/t/hang', Buffer.from('x'), 300);
  t.strictSame([late.code, late.details], [status.DEADLINE_EXCEEDED, 'Deadline exceeded']);
  t.ok(Date.now() - started < 1_500, 'at the deadline');
  await eventually('the server told', async () => (seen.at(-1)!.reset === h2.NGHTTP2_CANCEL ? true : undefined));
  t.pass('RST_STREAM CANCEL at the deadline');

  let cancel: () => void = () => undefined;
  const cancelled = call(connection, '/t/hang', Buffer.from('x'), 5_000, false, (c) => (cancel = c));
  const before = seen.length;
  await eventually('the call on the server', async () => (seen.length > before ? true : undefined));
  cancel();
  t.strictSame(((o) => [o.code, o.details])(await cancelled), [status.CANCELLED, 'Cancelled on client']);
  await eventually('the server told', async () => (seen.at(-1)!.reset === h2.NGHTTP2_CANCEL ? true : undefined));
  t.pass('RST_STREAM CANCEL on cancel');

  t.equal((await call(connection, '/t/refused', Buffer.from('x'))).code, status.UNAVAILABLE, 'REFUSED_STREAM: UNAVAILABLE');
  const retried = await call(connection, '/t/refused-once', Buffer.from('x'), 2_000, true);
  t.equal(retried.code, status.OK, retried.details);
  t.equal(attempts.get('refused-once'), 2, 'the second attempt answered');
  const given = seen.filter((s) => s.headers[':path'] === '/t/refused').length;
  const gaveUp = await call(connection, '/t/refused', Buffer.from('x'), 5_000, true);
  t.equal(gaveUp.code, status.UNAVAILABLE);
  t.equal(seen.filter((s) => s.headers[':path'] === '/t/refused').length - given, 4, 'four attempts, then the status');
});

t.test('--metrics-service-grpc-authority: the :authority, the SNI name and the name checked', async (t) => {
  const { connection } = connect(barePort, { host: '127.0.0.1', authority: 'localhost' });
  t.equal((await call(connection, '/t/trailers-only', Buffer.from('x'))).code, status.NOT_FOUND);
  t.equal(seen.at(-1)!.headers[':authority'], 'localhost');
  t.equal(seen.at(-1)!.servername, 'localhost');
  const wrong = connect(barePort, { host: '127.0.0.1', authority: 'someone-else.example' });
  const refused = await call(wrong.connection, '/t/trailers-only', Buffer.from('x'));
  t.equal(refused.code, status.UNAVAILABLE);
  t.match(refused.details, /someone-else\.example/, `names the name: ${refused.details}`);
  t.equal(wrong.connection.state, 'TRANSIENT_FAILURE');
});

t.test('new TLS material: a new connection with the new certificate; the old one drains', async (t) => {
  const dir = t.testdir();
  const files = { certFile: `${dir}/tls.crt`, keyFile: `${dir}/tls.key` };
  await copyFile(pki.tls.certFile, files.certFile);
  await copyFile(pki.tls.keyFile, files.keyFile);
  const tls = await channelTls({ ...pki.tls, ...files }, pki.ca.certFile);
  t.teardown(() => tls.close());
  const { connection, states } = connect(barePort, { tls });
  t.equal((await call(connection, '/t/trailers-only', Buffer.from('x'))).code, status.NOT_FOUND);
  t.equal(seen.at(-1)!.peerSerial, new X509Certificate(pki.tls.cert).serialNumber);
  const inFlight = call(connection, '/t/ok', Buffer.from('x'), 5_000);
  const next = await pki.issue('ca', 'client-next', { commonName: 'adapter', extendedUsages: ['serverAuth', 'clientAuth'] });
  await copyFile(next.keyFile, files.keyFile);
  await copyFile(next.certFile, files.certFile);
  await eventually('a new connection', async () => (states.filter((s) => s.state === 'READY').length >= 2 ? true : undefined), 10_000);
  t.equal((await inFlight).code, status.OK, 'the call in flight finished on the old connection');
  t.equal((await call(connection, '/t/trailers-only', Buffer.from('x'))).code, status.NOT_FOUND);
  t.equal(seen.at(-1)!.peerSerial, new X509Certificate(next.cert).serialNumber, 'new calls present the new certificate');
});

// --- against the operator's real channel server -----------------------------------------------
const handler: MetricsHandler = {
  async getMetrics(ref) {
    return { metadata: {}, items: [{ metricName: ref.metricName, metricLabels: {}, timestamp: toWireTime(new Date()), value: { string: '7' } }] };
  },
};
const operator = (options: TestChannelServerOptions = {}) => startTestChannelServer(t, pki, handler, { maxConnectionAgeGraceMs: 2_000, ...options });
const getMetrics = async (connection: GrpcConnection, metricName = 's0-x') => {
  const o = await call(connection, GET_METRICS_PATH, codec.requestSerialize({ name: 'web', namespace: 'shop', metricName }), 2_000, true);
  return o.code === status.OK ? (codec.responseDeserialize(o.messages[0]!) as { items: { value: { string: string } }[] }).items[0]!.value.string : `${status[o.code]}: ${o.details}`;
};

t.test('each side refuses the other\'s certificate: TRANSIENT_FAILURE with the reason, calls fail fast', async (t) => {
  const server = await operator();
  const foreign = connect(server.port, { tls: await channelTls(pki.foreignAdmin, pki.ca.certFile) });
  const refused = await call(foreign.connection, GET_METRICS_PATH, codec.requestSerialize({ name: 'a', namespace: 'b', metricName: 'c' }));
  t.equal(refused.code, status.UNAVAILABLE);
  t.match(refused.details, /does it trust our client certificate/, `the operator's refusal: ${refused.details}`);
  t.equal(foreign.connection.state, 'TRANSIENT_FAILURE', 'the operator never sent its SETTINGS: never READY');
  t.notOk(foreign.states.some((s) => s.state === 'READY'));

  const wrongTrust = connect(server.port, { tls: await channelTls(pki.admin, pki.otherCa.certFile) });
  const distrusted = await call(wrongTrust.connection, GET_METRICS_PATH, codec.requestSerialize({ name: 'a', namespace: 'b', metricName: 'c' }));
  t.equal(distrusted.code, status.UNAVAILABLE);
  t.match(distrusted.details, /self[- ]signed|unable to (get|verify)/i, `our refusal: ${distrusted.details}`);
  t.match(wrongTrust.states.find((s) => s.state === 'TRANSIENT_FAILURE')?.reason, distrusted.details, 'the state change says why');
});

t.test('the operator\'s maximum connection age under a stream of calls: new connections, no call fails', async (t) => {
  const server = await operator({ maxConnectionAgeMs: 300 });
  const { connection, states } = connect(server.port);
  const failures: string[] = [];
  let calls = 0;
  const until = Date.now() + 2_500;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (Date.now() < until) {
        const v = await getMetrics(connection);
        calls++;
        if (v !== '7') failures.push(v);
      }
    }),
  );
  const ready = states.filter((s) => s.state === 'READY').length;
  t.ok(ready >= 4, `${ready} connections over 2.5 s with a 300 ms age`);
  t.strictSame(failures, [], `${calls} calls, none failed`);
});

t.test('keepalive: a peer that stops answering is found, and the connection replaced', async (t) => {
  const server = await operator();
  // A proxy that can freeze the connections it has: they stay open, nothing more is forwarded.
  const frozen = new Set<Socket>();
  const sockets = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = connectTcp(server.port, '127.0.0.1');
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from);
      from.on('data', (chunk: Buffer) => void (frozen.has(from) ? undefined : to.write(chunk)));
      from.on('error', () => undefined);
      from.on('close', () => to.destroy());
    }
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    proxy.close(() => resolve());
    for (const s of sockets) s.destroy();
  }));
  const { connection, states } = connect((proxy.address() as AddressInfo).port, { keepaliveMs: 200, keepaliveTimeoutMs: 300 });
  t.equal(await getMetrics(connection), '7');
  for (const s of sockets) frozen.add(s);
  await eventually('the dead peer found', async () => states.find((s) => s.state === 'IDLE' && /keepalive ping not answered within 300 ms/.test(s.reason)) ?? undefined, 5_000);
  t.pass('the ping went unanswered: the connection was dropped');
  await eventually('READY again', async () => (connection.state === 'READY' ? true : undefined), 5_000);
  t.equal(await getMetrics(connection), '7', 'a new connection serves');
});

t.test('a server that accepts and never answers: calls wait while CONNECTING, until their deadline', async (t) => {
  const sockets: Socket[] = [];
  const silent = createServer((s) => void sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    silent.close(() => resolve());
    for (const s of sockets) s.destroy();
  }));
  const { connection } = connect((silent.address() as AddressInfo).port);
  const o = await call(connection, GET_METRICS_PATH, Buffer.alloc(0), 300);
  t.strictSame([o.code, connection.state], [status.DEADLINE_EXCEEDED, 'CONNECTING']);
});

t.test('the operator goes and comes back: TRANSIENT_FAILURE with backoff, then READY by itself', async (t) => {
  const server = await operator();
  const port = server.port;
  const { connection, states } = connect(port);
  t.equal(await getMetrics(connection), '7');
  await server.shutdown(0);
  await eventually('failing', async () => (connection.state === 'TRANSIENT_FAILURE' ? true : undefined));
  t.match(connection.lastError, /ECONNREFUSED/);
  const down = await call(connection, GET_METRICS_PATH, codec.requestSerialize({ name: 'web', namespace: 'shop', metricName: 'x' }));
  t.strictSame([down.code, down.details], [status.UNAVAILABLE, connection.lastError], 'fails fast with the reason');
  const attemptsBefore = states.filter((s) => s.state === 'CONNECTING').length;
  await new Promise((r) => setTimeout(r, 1_000));
  const attemptsInASecond = states.filter((s) => s.state === 'CONNECTING').length - attemptsBefore;
  t.ok(attemptsInASecond >= 1 && attemptsInASecond <= 5, `backoff: ${attemptsInASecond} attempts in a second`);
  await operator({ port });
  await eventually('READY again', async () => (connection.state === 'READY' ? true : undefined), 10_000);
  t.equal(await getMetrics(connection), '7');
});

t.test('close(): calls in flight and later calls end UNAVAILABLE; SHUTDOWN', async (t) => {
  const { connection, states } = connect(barePort);
  const inFlight = call(connection, '/t/hang', Buffer.from('x'), 5_000);
  const before = seen.length;
  await eventually('the call on the server', async () => (seen.length > before ? true : undefined));
  connection.close();
  t.equal((await inFlight).code, status.UNAVAILABLE);
  t.strictSame(((o) => [o.code, o.details])(await call(connection, '/t/ok', Buffer.from('x'))), [status.UNAVAILABLE, 'the channel is closed']);
  t.equal(states.at(-1)!.state, 'SHUTDOWN');
});
