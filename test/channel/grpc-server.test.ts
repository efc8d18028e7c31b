// The channel's gRPC server (src/channel/grpc-server.ts, on node:http2) at the protocol's edges,
// driven by a bare node:http2 client over mutual TLS 1.3: what a well-behaved gRPC client never
// sends (not POST, not gRPC, no message, a compressed or oversized one, a malformed deadline),
// status details percent-encoded as the protocol says, the maximum connection age (GOAWAY, the
// call in flight finishes, then the connection goes), clients that ping too often, a certificate
// change taking effect for new connections, and shutdown within its grace.
import t from 'tap';
import { connect, constants as h2, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { copyFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { status } from '../../src/channel/status.js';
import { ChannelError, type MetricsHandler } from '../../src/channel/server.js';
import { parseTimeout } from '../../src/channel/grpc-protocol.js';
import { GET_METRICS_PATH, metricsServiceDefinition, toWireTime } from '../../src/channel/service.js';
import { createTestPki } from '../helpers/pki.js';
import { startTestChannelServer, type TestChannelServerOptions } from '../helpers/channel.js';
import { eventually } from '../helpers/loop.js';

const pki = await createTestPki(t.testdir());
const codec = metricsServiceDefinition.GetMetrics!;

const held: { release: () => void; signal: AbortSignal }[] = [];
const handler: MetricsHandler = {
  async getMetrics(ref, signal) {
    if (ref.metricName === 'held') await new Promise<void>((release) => held.push({ release, signal }));
    if (ref.metricName === 'odd') throw new ChannelError(status.NOT_FOUND, 'no metric "odd" in shop/web: 100% gone, naïve');
    return { metadata: {}, items: [{ metricName: ref.metricName, metricLabels: {}, timestamp: toWireTime(new Date()), value: { string: '7' } }] };
  },
};

const start = (options: TestChannelServerOptions = {}) => startTestChannelServer(t, pki, handler, options);

function dial(port: number): ClientHttp2Session {
  const session = connect(`https://localhost:${port}`, { ca: pki.ca.cert, cert: pki.tls.cert, key: pki.tls.key, minVersion: 'TLSv1.3' });
  session.on('error', () => undefined);
  t.teardown(() => session.destroy());
  return session;
}

const framed = (message: Uint8Array, flag = 0) => {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flag;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
};
const request = (metricName: string) => framed(codec.requestSerialize({ name: 'web', namespace: 'shop', metricName }));

interface Answer {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
  /** grpc-status and grpc-message, from the trailers or a trailers-only answer. */
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
}

function send(session: ClientHttp2Session, body: Buffer | undefined, headers: OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': GET_METRICS_PATH, 'content-type': 'application/grpc', te: 'trailers', ...headers }, { endStream: false });
    const chunks: Buffer[] = [];
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('trailers', (h) => (trailers = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('close', () => {
      const pick = (name: string) => (trailers[name] ?? responseHeaders[name]) as string | undefined;
      resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks), grpcStatus: pick('grpc-status'), grpcMessage: pick('grpc-message') });
    });
    stream.end(body);
  });
}

t.test('a call: HEADERS, one message, the status in the trailers', async (t) => {
  const server = await start();
  const a = await send(dial(server.port), request('s0-queue'));
  t.equal(a.headers[':status'], 200);
  t.equal(a.headers['content-type'], 'application/grpc');
  t.equal(a.trailers['grpc-status'], '0');
  t.equal(a.body.readUInt32BE(1), a.body.length - 5, 'one framed message');
  t.match(codec.responseDeserialize(a.body.subarray(5)), { items: [{ metricName: 's0-queue', value: { string: '7' } }] });
});

t.test('what a gRPC client never sends gets HTTP or gRPC errors, and the connection serves on', async (t) => {
  const server = await start();
  const session = dial(server.port);
  t.equal((await send(session, request('x'), { ':method': 'GET' })).headers[':status'], 405, 'not POST');
  t.equal((await send(session, request('x'), { 'content-type': 'application/json' })).headers[':status'], 415, 'not gRPC');
  const unknown = await send(session, request('x'), { ':path': '/api.MetricsService/Nope' });
  t.strictSame([unknown.headers[':status'], unknown.grpcStatus, unknown.trailers['grpc-status']], [200, String(status.UNIMPLEMENTED), undefined], 'an unknown method: trailers-only');
  t.equal((await send(session, undefined)).grpcStatus, String(status.INTERNAL), 'no message');
  t.equal((await send(session, Buffer.concat([request('a'), request('b')]))).grpcStatus, String(status.INTERNAL), 'two messages for a unary request');
  t.equal((await send(session, request('x').subarray(0, 8))).grpcStatus, String(status.INTERNAL), 'a cut message');
  t.equal((await send(session, framed(codec.requestSerialize({ name: 'w', namespace: 's', metricName: 'm' }), 1))).grpcStatus, String(status.UNIMPLEMENTED), 'compressed');
  t.equal((await send(session, framed(Buffer.alloc(4 * 1024 * 1024 + 1)))).grpcStatus, String(status.RESOURCE_EXHAUSTED), 'over 4 MiB');
  const badTimeout = await send(session, request('x'), { 'grpc-timeout': '5 seconds' });
  t.strictSame([badTimeout.grpcStatus, badTimeout.grpcMessage], [String(status.INTERNAL), 'malformed grpc-timeout: 5 seconds']);
  t.equal((await send(session, request('x'))).grpcStatus, '0', 'and a good call after all of them, on the same connection');
});

t.test('a burst on one connection, as an adapter without MetricsBatch (KEDA\'s) sends one: every call answered', async (t) => {
  const server = await start();
  const session = dial(server.port);
  const answers = await Promise.all(Array.from({ length: 2_000 }, (_, i) => send(session, request(`m${i}`))));
  t.equal(answers.filter((a) => a.grpcStatus === '0').length, 2_000);
});

t.test('grpc-timeout: each unit; the handler is told when it passes', async (t) => {
  t.strictSame(['1H', '2M', '3S', '4m', '5000u', '6000000n', '123456789S', '1s', ''].map((v) => parseTimeout(v)), [3_600_000, 120_000, 3_000, 4, 5, 6, null, null, null]);
  const server = await start();
  const a = await send(dial(server.port), request('held'), { 'grpc-timeout': '200m' });
  t.strictSame([a.grpcStatus, a.grpcMessage], [String(status.DEADLINE_EXCEEDED), 'Deadline exceeded']);
  t.ok(held.at(-1)?.signal.aborted, 'the handler\'s signal aborted');
  held.at(-1)?.release();
});

t.test('a status message is percent-encoded only where the protocol says (non-ASCII and %)', async (t) => {
  const server = await start();
  const a = await send(dial(server.port), request('odd'));
  t.equal(a.grpcStatus, String(status.NOT_FOUND));
  t.equal(a.grpcMessage, 'no metric "odd" in shop/web: 100%25 gone, na%C3%AFve');
});

t.test('a client that cancels: the handler is told', async (t) => {
  const server = await start();
  const session = dial(server.port);
  const stream = session.request({ ':method': 'POST', ':path': GET_METRICS_PATH, 'content-type': 'application/grpc' });
  stream.on('error', () => undefined);
  stream.end(request('held'));
  const before = held.length;
  await eventually('the call reached the handler', async () => (held.length > before ? true : undefined));
  stream.close(h2.NGHTTP2_CANCEL);
  await eventually('the handler told', async () => (held.at(-1)!.signal.aborted ? true : undefined));
  held.at(-1)!.release();
  t.pass('aborted');
});

t.test('maximum connection age: GOAWAY, the call in flight finishes, then the connection closes', async (t) => {
  const server = await start({ maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 60_000 });
  const session = dial(server.port);
  const goaway = new Promise<number>((resolve) => session.on('goaway', (code: number) => resolve(code)));
  const before = held.length;
  const inFlight = send(session, request('held'));
  await eventually('the call reached the handler', async () => (held.length > before ? true : undefined));
  t.equal(await goaway, h2.NGHTTP2_NO_ERROR, 'GOAWAY (NO_ERROR) at about 300 ms');
  held.at(-1)!.release();
  t.equal((await inFlight).grpcStatus, '0', 'the call in flight was answered');
  await eventually('the connection closed', async () => (session.closed || session.destroyed ? true : undefined));
  t.pass('closed');
});

t.test('maximum connection age: a call still running after the grace is cut off with the connection', async (t) => {
  const server = await start({ maxConnectionAgeMs: 200, maxConnectionAgeGraceMs: 300 });
  const session = dial(server.port);
  const before = held.length;
  const inFlight = send(session, request('held')).catch((err: Error) => err);
  await eventually('the call reached the handler', async () => (held.length > before ? true : undefined));
  await eventually('cut off after the grace', async () => (held.at(-1)!.signal.aborted ? true : undefined), 5_000);
  held.at(-1)!.release();
  const outcome = await inFlight;
  t.not(outcome instanceof Error ? '' : (outcome as Answer).grpcStatus, '0', 'never answered OK');
});

t.test('a client that pings more often than every 10 s with no call in between: GOAWAY ENHANCE_YOUR_CALM', async (t) => {
  const server = await start();
  // Pings sent before the connection is up are cancelled by node:http2, not sent.
  const connected = (session: ClientHttp2Session) => new Promise((resolve) => session.once('connect', resolve));
  const session = dial(server.port);
  await connected(session);
  const goaway = new Promise<{ code: number; data: string }>((resolve) => session.on('goaway', (code: number, _last: number, data?: Buffer) => resolve({ code, data: data?.toString() ?? '' })));
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => session.ping(() => resolve()));
  t.strictSame(await goaway, { code: h2.NGHTTP2_ENHANCE_YOUR_CALM, data: 'too_many_pings' });

  const calm = dial(server.port);
  await connected(calm);
  for (let i = 0; i < 4; i++) {
    await new Promise<void>((resolve) => calm.ping(() => resolve()));
    t.equal((await send(calm, request('x'))).grpcStatus, '0', `ping ${i + 1}, then a call: no strike`);
  }
});

t.test('a new certificate in the cert files: new connections get it, without a restart', async (t) => {
  const dir = t.testdir();
  const files = { certFile: `${dir}/tls.crt`, keyFile: `${dir}/tls.key` };
  await copyFile(pki.tls.certFile, files.certFile);
  await copyFile(pki.tls.keyFile, files.keyFile);
  const server = await start({ identity: { ...pki.tls, ...files } });
  const serial = async () => {
    const session = dial(server.port);
    await new Promise((resolve) => session.once('connect', resolve));
    const peer = (session.socket as unknown as { getPeerX509Certificate(): X509Certificate }).getPeerX509Certificate();
    session.close();
    return peer.serialNumber;
  };
  t.equal(await serial(), new X509Certificate(pki.tls.cert).serialNumber);
  const next = await pki.issue('ca', 'tls-next', { commonName: 'operator', dnsNames: ['localhost'], extendedUsages: ['serverAuth', 'clientAuth'] });
  await copyFile(next.keyFile, files.keyFile);
  await copyFile(next.certFile, files.certFile);
  await eventually('the new certificate served', async () => ((await serial()) === new X509Certificate(next.cert).serialNumber ? true : undefined), 10_000);
  t.pass('served');
});

t.test('shutdown: a call in flight finishes within the grace; after it, what is left is closed', async (t) => {
  const server = await start();
  const session = dial(server.port);
  const before = held.length;
  const inFlight = send(session, request('held'));
  await eventually('the call reached the handler', async () => (held.length > before ? true : undefined));
  const stopping = server.shutdown(10_000);
  setTimeout(() => held.at(-1)!.release(), 100);
  t.equal((await inFlight).grpcStatus, '0', 'answered during the grace');
  await stopping;

  const other = await start();
  const s2 = dial(other.port);
  const before2 = held.length;
  const stuck = send(s2, request('held')).catch((err: Error) => err);
  await eventually('the call reached the handler', async () => (held.length > before2 ? true : undefined));
  await other.shutdown(200);
  t.ok(held.at(-1)!.signal.aborted, 'the handler told when the grace ran out');
  held.at(-1)!.release();
  await stuck;
});
