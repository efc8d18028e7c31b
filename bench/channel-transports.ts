// The adapter <-> operator channel's transport, compared (issue: "a lean unary path"): KEDA's
// GetMetrics over mutual TLS 1.3, the same request and answer bytes, through
//   grpc-js        the library the channel used at both ends before its own (devDependency, here only);
//   connect        Connect's Node packages (@connectrpc/connect-node, gRPC protocol over
//                  node:http2), a maintained alternative, with @bufbuild/protobuf messages built
//                  from the same metrics.proto (the descriptor protoc-gen-es would embed);
//   bare http2     gRPC framing written by hand on node:http2, nothing else: the floor any
//                  node:http2-based implementation could reach;
//   ours           the channel's own ends on node:http2: the operator's server (src/channel/server.ts
//                  on grpc-server.ts), with its deadlines, cancellation, metrics and live
//                  certificates; the adapter's connection (grpc-client.ts), with its states,
//                  keepalive, retries and live certificates.
// Each client against each server (the server in a child process of its own), with the bench's
// own load generator: 1,000 calls/s open loop (CPU per call on each side, p50/p99), then a closed
// loop of 32 concurrent calls (calls/s, and both sides' CPU per call at saturation). Prints a
// table and writes bench/results/channel-transports.json. About 100 s.
import { fork } from 'node:child_process';
import { createSecureServer, connect as http2Connect, type ClientHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, Server, ServerCredentials, credentials, loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { fileDesc, serviceDesc } from '@bufbuild/protobuf/codegenv2';
import { createClient as createConnectClient } from '@connectrpc/connect';
import { connectNodeAdapter, createGrpcTransport } from '@connectrpc/connect-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createCA, issueCertificate } from '../src/certs/x509.js';
import { GrpcConnection } from '../src/channel/grpc-client.js';
import { frame } from '../src/channel/grpc-protocol.js';
import { startChannelServer } from '../src/channel/server.js';
import { GET_METRICS_PATH, metricsServiceDefinition } from '../src/channel/service.js';
import { CertificateMetrics, GrpcMetrics } from '../src/observability/metrics.js';
import { LiveTls } from '../src/tls/live-tls.js';
import { tlsPolicy } from '../src/tls/policy.js';
import type { Client, Reply } from './client.js';
import { closedLoop, openLoop, type RunResult } from './load.js';

// The contract in the repository (dist-bench/bench -> src/channel).
const PROTO = fileURLToPath(new URL('../../src/channel/metrics.proto', import.meta.url));
const RESULTS = new URL('../../bench/results/', import.meta.url);
const SETTINGS = { openRate: 1_000, openMs: 5_000, warmupMs: 1_000, closedMs: 4_000, concurrency: 32 };
const REQUEST = { name: 'so-1', namespace: 'bench', metricName: 's0-metric-api-throughput' };
const VALUE = '1500m';
const ANSWER = { metadata: {}, items: [{ metricName: REQUEST.metricName, metricLabels: {}, timestamp: { seconds: '1700000000', nanos: 0 }, value: { string: VALUE } }] };

type Side = 'grpc-js' | 'connect' | 'bare http2' | 'ours';
interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

// --- the message shapes, three ways from one .proto ---------------------------------------------

const root = protobuf.loadSync(PROTO);
const RequestType = root.lookupType('api.ScaledObjectRef');
const AnswerType = root.lookupType('api.ExternalMetricValueList');

function grpcJsService(): ServiceClientConstructor {
  const def = loadPackageDefinition(loadSync(PROTO, { keepCase: true, longs: String, defaults: true, oneofs: true }));
  return (def.api as GrpcObject).MetricsService as ServiceClientConstructor;
}

/** The service as protoc-gen-es would describe it: the FileDescriptorProto, serialized. */
function connectService() {
  const file = (root.toDescriptor('proto3') as unknown as { file: DescriptorFile[] }).file[0]!;
  // protobufjs names types relative to the package; descriptors want them fully qualified.
  const qualify = (m: DescriptorMessage, scope: string) => {
    const nested = new Set((m.nestedType ?? []).map((n) => n.name));
    for (const f of m.field ?? []) {
      if (f.typeName && !f.typeName.startsWith('.')) f.typeName = nested.has(f.typeName) ? `${scope}.${m.name}.${f.typeName}` : `.api.${f.typeName}`;
    }
    for (const n of m.nestedType ?? []) qualify(n, `${scope}.${m.name}`);
  };
  for (const m of file.messageType) qualify(m, '.api');
  for (const s of file.service) for (const m of s.method) Object.assign(m, { inputType: `.${m.inputType.replace(/^\./, '')}`, outputType: `.${m.outputType.replace(/^\./, '')}` });
  const bytes = descriptor.FileDescriptorProto.encode(file as unknown as descriptor.IFileDescriptorProto).finish();
  return serviceDesc(fileDesc(Buffer.from(bytes).toString('base64')), 0);
}
interface DescriptorMessage {
  name: string;
  field?: { typeName?: string }[];
  nestedType?: DescriptorMessage[];
}
interface DescriptorFile {
  messageType: DescriptorMessage[];
  service: { method: { inputType: string; outputType: string }[] }[];
}

// --- servers (in a child) -----------------------------------------------------------------------

/** Live TLS material from files, as the components load it. */
async function liveTls(cert: string, key: string, ca: string): Promise<LiveTls> {
  const dir = await mkdtemp(join(tmpdir(), 'channel-bench-'));
  const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), caFile: join(dir, 'ca.crt') };
  await Promise.all([writeFile(files.certFile, cert), writeFile(files.keyFile, key), writeFile(files.caFile, ca)]);
  const live = new LiveTls({ certFile: files.certFile, keyFile: files.keyFile, caFiles: { ca: files.caFile } }, tlsPolicy('VersionTLS13', []), pino({ level: 'silent' }), new CertificateMetrics(new Registry()));
  await live.start();
  return live;
}

async function serve(kind: Side, pki: Pki): Promise<number> {
  let calls = 0;
  process.on('message', (m: { type: string }) => {
    if (m.type === 'cpu') process.send!({ type: 'cpu', usage: process.cpuUsage(), calls });
  });
  const tls = { ca: pki.ca, cert: pki.serverCert, key: pki.serverKey, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' as const };
  if (kind === 'ours') {
    const silent = pino({ level: 'silent' });
    const live = await liveTls(pki.serverCert, pki.serverKey, pki.ca);
    const handler = {
      getMetrics: async () => {
        calls++;
        return ANSWER;
      },
    };
    const server = await startChannelServer({ bindAddress: '127.0.0.1:0', tls: live, trust: ['ca'], handler, batch: false, metrics: new GrpcMetrics(new Registry(), 'server'), log: silent, maxConnectionAgeMs: 3_600_000, maxConnectionAgeGraceMs: 10_000 });
    return server.port;
  }
  if (kind === 'grpc-js') {
    // Configured as src/channel/server.ts configures it: no channelz, Nagle off.
    const server = new Server({ 'grpc.enable_channelz': 0 });
    server.addService(grpcJsService().service, {
      GetMetrics: (_call: unknown, cb: (err: null, answer: typeof ANSWER) => void) => {
        calls++;
        cb(null, ANSWER);
      },
    });
    const creds = new NoDelayCredentials(tls);
    return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
  }
  const server =
    kind === 'connect'
      ? createSecureServer(
          tls,
          connectNodeAdapter({
            routes: (router) => {
              // The descriptor is built at run time, so its method types are not known to TypeScript.
              const impl = {
                getMetrics: () => {
                  calls++;
                  return ANSWER;
                },
              };
              router.service(connectService(), impl as never);
            },
          }),
        )
      : createSecureServer(tls).on('stream', (stream: ServerHttp2Stream) => {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            calls++;
            RequestType.decode(Buffer.concat(chunks).subarray(5));
            stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
            stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
            stream.end(frame(AnswerType.encode(AnswerType.fromObject(ANSWER)).finish()));
          });
        });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

class NoDelayCredentials extends ServerCredentials {
  constructor(tls: { ca: string; cert: string; key: string; minVersion: 'TLSv1.3' }) {
    super({ requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', noDelay: true }, tls);
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

// --- clients (here, behind the load generator's Client interface) --------------------------------

const ok = (value: string | undefined): Reply => ({ status: value === VALUE ? 200 : 500, contentType: 'application/grpc', body: value ?? '' });

async function client(kind: Side, port: number, pki: Pki): Promise<Client> {
  const tls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, minVersion: 'TLSv1.3' as const };
  if (kind === 'ours') {
    const live = await liveTls(pki.clientCert, pki.clientKey, pki.ca);
    const connection = new GrpcConnection({ address: `localhost:${port}`, tls: live, trust: ['ca'] });
    const codec = metricsServiceDefinition.GetMetrics!;
    const request = codec.requestSerialize(REQUEST);
    return {
      get: () =>
        new Promise((resolve, reject) => {
          let answer: typeof ANSWER | undefined;
          connection.call(GET_METRICS_PATH, request, Date.now() + 10_000, {
            onMessage: (m) => (answer = codec.responseDeserialize(m) as typeof ANSWER),
            onStatus: (code, details) => (code === 0 ? resolve(ok(answer?.items[0]?.value.string)) : reject(new Error(`${code} ${details}`))),
          }, true);
        }),
      close: async () => {
        connection.close();
        await live.close();
      },
    };
  }
  if (kind === 'grpc-js') {
    const Ctor = grpcJsService();
    const c = new Ctor(`localhost:${port}`, credentials.createSsl(Buffer.from(pki.ca), Buffer.from(pki.clientKey), Buffer.from(pki.clientCert)));
    type Answer = typeof ANSWER;
    const getMetrics = c.GetMetrics as unknown as (req: typeof REQUEST, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null, answer?: Answer) => void) => void;
    return {
      get: () => new Promise((resolve, reject) => getMetrics.call(c, REQUEST, new Metadata(), { deadline: Date.now() + 10_000 }, (err, a) => (err ? reject(err) : resolve(ok(a?.items[0]?.value.string))))),
      close: async () => c.close(),
    };
  }
  if (kind === 'connect') {
    const transport = createGrpcTransport({ baseUrl: `https://localhost:${port}`, nodeOptions: tls });
    const c = createConnectClient(connectService(), transport) as unknown as { getMetrics(req: typeof REQUEST, o: { timeoutMs: number }): Promise<{ items: { value?: { string: string } }[] }> };
    return { get: async () => ok((await c.getMetrics(REQUEST, { timeoutMs: 10_000 })).items[0]?.value?.string), close: async () => undefined };
  }
  let session: ClientHttp2Session | undefined;
  const open = () => {
    if (session && !session.closed && !session.destroyed) return session;
    session = http2Connect(`https://localhost:${port}`, tls);
    session.on('error', () => undefined);
    return session;
  };
  const body = frame(RequestType.encode(RequestType.fromObject(REQUEST)).finish());
  return {
    get: () =>
      new Promise((resolve, reject) => {
        const stream = open().request({ ':method': 'POST', ':path': '/api.MetricsService/GetMetrics', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '10S' });
        const chunks: Buffer[] = [];
        let status: string | undefined;
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('trailers', (t) => (status = String(t['grpc-status'])));
        stream.on('error', reject);
        stream.on('end', () => {
          if (status !== '0') return reject(new Error(`grpc-status ${status}`));
          const answer = AnswerType.toObject(AnswerType.decode(Buffer.concat(chunks).subarray(5))) as typeof ANSWER;
          resolve(ok(answer.items[0]?.value.string));
        });
        stream.end(body);
      }),
    close: async () => void session?.close(),
  };
}

// --- the comparison -----------------------------------------------------------------------------

interface ServerChild {
  port: number;
  cpuUs(): Promise<{ us: number; calls: number }>;
  stop(): void;
}

async function forkServerSide(kind: Side, pki: Pki): Promise<ServerChild> {
  const child = fork(fileURLToPath(import.meta.url), ['serve', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.send({ type: 'pki', pki });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { type: string; port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return {
    port,
    cpuUs: () =>
      new Promise((resolve) => {
        child.once('message', (m: { usage: NodeJS.CpuUsage; calls: number }) => resolve({ us: m.usage.user + m.usage.system, calls: m.calls }));
        child.send({ type: 'cpu' });
      }),
    stop: () => child.kill(),
  };
}

interface Pair {
  client: Side;
  server: Side;
  open: RunResult & { clientCpuUsPerCall: number; serverCpuUsPerCall: number };
  /** At saturation: both sides' CPU per call (the client's includes the load generator's). */
  closed: RunResult & { cpuUsPerCall: number };
}

async function measure(clientKind: Side, serverKind: Side, pki: Pki): Promise<Pair> {
  const server = await forkServerSide(serverKind, pki);
  const c = await client(clientKind, server.port, pki);
  try {
    const check = (r: Reply) => (r.status === 200 ? (true as const) : `value ${r.body}`);
    const loop = { path: '', check, concurrency: SETTINGS.concurrency, maxRequests: Number.MAX_SAFE_INTEGER };
    await closedLoop(c, { ...loop, durationMs: SETTINGS.warmupMs });
    await sleep(200);
    const [cpu0, s0] = [process.cpuUsage(), await server.cpuUs()];
    const open = await openLoop(c, { path: '', check, rate: SETTINGS.openRate, durationMs: SETTINGS.openMs });
    const [cpu1, s1] = [process.cpuUsage(cpu0), await server.cpuUs()];
    const cpu2 = process.cpuUsage();
    const closed = await closedLoop(c, { ...loop, durationMs: SETTINGS.closedMs });
    const [cpu3, s3] = [process.cpuUsage(cpu2), await server.cpuUs()];
    const calls = open.ok + open.errors;
    return {
      client: clientKind,
      server: serverKind,
      open: { ...open, clientCpuUsPerCall: (cpu1.user + cpu1.system) / calls, serverCpuUsPerCall: (s1.us - s0.us) / (s1.calls - s0.calls) },
      closed: { ...closed, cpuUsPerCall: (cpu3.user + cpu3.system + s3.us - s1.us) / (closed.ok + closed.errors) },
    };
  } finally {
    await c.close();
    server.stop();
  }
}

async function makePki(): Promise<Pki> {
  const ca = await createCA({ commonName: 'channel bench CA' });
  const server = await issueCertificate(ca, { commonName: 'operator', dnsNames: ['localhost'], extendedUsages: ['serverAuth'] });
  const client = await issueCertificate(ca, { commonName: 'adapter', extendedUsages: ['clientAuth'] });
  return { ca: ca.certPem, serverCert: server.certPem, serverKey: server.keyPem, clientCert: client.certPem, clientKey: client.keyPem };
}

async function main(): Promise<void> {
  if (process.argv[2] === 'serve') {
    const pki = await new Promise<Pki>((resolve) => process.once('message', (m: { pki: Pki }) => resolve(m.pki)));
    process.send!({ type: 'listening', port: await serve(process.argv[3] as Side, pki) });
    process.on('disconnect', () => process.exit(0));
    return;
  }
  const pki = await makePki();
  const pairs: Pair[] = [];
  const combos: [Side, Side][] = [
    ['grpc-js', 'grpc-js'],
    ['connect', 'connect'],
    ['connect', 'grpc-js'],
    ['grpc-js', 'connect'],
    ['bare http2', 'grpc-js'],
    ['grpc-js', 'bare http2'],
    ['bare http2', 'bare http2'],
    ['grpc-js', 'ours'],
    ['bare http2', 'ours'],
    ['ours', 'grpc-js'],
    ['ours', 'ours'],
  ];
  console.log(`gRPC GetMetrics over mTLS 1.3: open loop ${SETTINGS.openRate} calls/s for ${SETTINGS.openMs} ms, then ${SETTINGS.concurrency} concurrent calls for ${SETTINGS.closedMs} ms`);
  for (const [c, s] of combos) {
    const p = await measure(c, s, pki);
    pairs.push(p);
    console.log(`  ${c} -> ${s}: client ${p.open.clientCpuUsPerCall.toFixed(0)} µs/call, server ${p.open.serverCpuUsPerCall.toFixed(0)} µs/call, p99 ${p.open.latency.p99Ms} ms, ${p.closed.rps.toFixed(0)} calls/s, ${p.open.errors + p.closed.errors} failed`);
  }
  const header = 'client -> server               client µs/call  server µs/call  p50 ms  p99 ms  calls/s (32 conc.)  µs/call (32 conc.)  failed';
  console.log(`\n${header}\n${'-'.repeat(header.length)}`);
  for (const p of pairs) {
    console.log(
      [
        `${p.client} -> ${p.server}`.padEnd(29),
        p.open.clientCpuUsPerCall.toFixed(1).padStart(15),
        p.open.serverCpuUsPerCall.toFixed(1).padStart(15),
        p.open.latency.p50Ms.toFixed(2).padStart(7),
        p.open.latency.p99Ms.toFixed(2).padStart(7),
        p.closed.rps.toFixed(0).padStart(19),
        p.closed.cpuUsPerCall.toFixed(1).padStart(19),
        String(p.open.errors + p.closed.errors).padStart(7),
      ].join(' '),
    );
  }
  const of = (c: Side, s: Side) => pairs.find((p) => p.client === c && p.server === s)!;
  const [today, alternative] = [of('grpc-js', 'grpc-js'), of('connect', 'connect')];
  const cost = (p: Pair) => p.open.clientCpuUsPerCall + p.open.serverCpuUsPerCall;
  const keep = cost(alternative) < cost(today) && alternative.open.errors + alternative.closed.errors === 0 ? 'connect' : 'grpc-js';
  console.log(`\nCPU per call, both sides at ${SETTINGS.openRate}/s: grpc-js ${cost(today).toFixed(0)} µs, connect ${cost(alternative).toFixed(0)} µs (${alternative.open.errors + alternative.closed.errors} failed calls); the numbers favour ${keep}`);
  const adopted = of('ours', 'ours');
  console.log(
    `the channel as it is (both ends ours, on node:http2): ${cost(adopted).toFixed(0)} µs per call, p99 ${adopted.open.latency.p99Ms} ms, ${adopted.closed.rps.toFixed(0)} calls/s; ` +
      `grpc-js at both ends: ${cost(today).toFixed(0)} µs, p99 ${today.open.latency.p99Ms} ms, ${today.closed.rps.toFixed(0)} calls/s`,
  );
  await mkdir(RESULTS, { recursive: true });
  await writeFile(new URL('channel-transports.json', RESULTS), JSON.stringify({ timestamp: new Date().toISOString(), settings: SETTINGS, pairs, favoured: keep }, null, 2));
  console.log('written to bench/results/channel-transports.json');
}

main().catch((err: unknown) => {
  console.error('channel transport comparison failed:', err);
  process.exit(1);
});
