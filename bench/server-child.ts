// Entry of a server child process (forked by servers.ts): `baseline`, `adapter`, `operator`, the
// upstream or the floor chain's two ends, told what to serve in argv, reporting its port and its
// own CPU/memory over IPC. Each role loads only its own modules, so that a child's memory is its
// server's, as in its own container.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { getHeapSpaceStatistics } from 'node:v8';
import type { ChildMessage, ChildSpec, ParentMessage } from './servers.js';

/** The baseline: Fastify, TLS 1.3, verified client certificates, one route with fixed bytes. Nothing else. */
async function startBaseline(spec: Extract<ChildSpec, { role: 'baseline' }>) {
  const app = await baselineApp(spec);
  app.get(spec.route, (_req, reply) => reply.header('content-type', spec.contentType).send(spec.body));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
}

async function baselineApp(spec: { pkiDir: string }) {
  const { default: Fastify } = await import('fastify');
  return Fastify({
    logger: false,
    https: {
      cert: readFileSync(join(spec.pkiDir, 'tls.crt')),
      key: readFileSync(join(spec.pkiDir, 'tls.key')),
      ca: readFileSync(join(spec.pkiDir, 'ca.crt')),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: true,
    },
  });
}

const FLOOR_REF = { namespace: 'default', name: 'so-throughput', metricName: 's0-metric-api-throughput' };

/** The adapter's hops with nothing of ours but the codecs: Fastify route -> one bare gRPC call -> answer. */
async function startFloorFront(spec: Extract<ChildSpec, { role: 'floor-front' }>) {
  const { connect } = await import('node:http2');
  const { connect: tlsConnect } = await import('node:tls');
  const { frame } = await import('../src/channel/grpc-protocol.js');
  const { GET_METRICS_PATH, metricsServiceDefinition } = await import('../src/channel/service.js');
  const codec = metricsServiceDefinition.GetMetrics;
  const pem = (name: string) => readFileSync(join(spec.clientCertDir, name));
  const tls = { host: 'localhost', port: spec.backPort, ca: pem('ca.crt'), cert: pem('tls.crt'), key: pem('tls.key'), minVersion: 'TLSv1.3' as const, ALPNProtocols: ['h2'] };
  // Nagle off, as the adapter's client has it (a node:http2 session's socket cannot be set after).
  const session = connect(`https://localhost:${spec.backPort}`, { createConnection: () => tlsConnect(tls).setNoDelay(true) });
  session.on('error', (err) => console.error('floor-front: channel failed:', err));
  const request = frame(codec.requestSerialize(FLOOR_REF));
  const call = () =>
    new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': GET_METRICS_PATH, 'content-type': 'application/grpc', te: 'trailers' });
      const chunks: Buffer[] = [];
      let grpcStatus: unknown;
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('trailers', (t) => (grpcStatus = t['grpc-status']));
      stream.on('error', reject);
      stream.on('end', () => {
        if (grpcStatus !== '0') return reject(new Error(`grpc-status ${String(grpcStatus)}`));
        resolve(codec.responseDeserialize(Buffer.concat(chunks).subarray(5)).items[0]?.value?.string ?? '');
      });
      stream.end(request);
    });
  const app = await baselineApp(spec);
  app.get(spec.route, async (_req, reply) => {
    if ((await call()) !== '1500m') throw new Error('floor-back answered another value');
    return reply.header('content-type', spec.contentType).send(spec.body);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as AddressInfo).port, close: async () => void (await app.close(), session.close()) };
}

/** The operator's hops with nothing of ours but the codecs: bare gRPC server -> one upstream GET -> answer. */
async function startFloorBack(spec: Extract<ChildSpec, { role: 'floor-back' }>) {
  const { createSecureServer } = await import('node:http2');
  const { Pool } = await import('undici');
  const { frame } = await import('../src/channel/grpc-protocol.js');
  const { metricsServiceDefinition } = await import('../src/channel/service.js');
  const codec = metricsServiceDefinition.GetMetrics;
  const pem = (name: string) => readFileSync(join(spec.certDir, name));
  const upstream = new Pool(`http://127.0.0.1:${spec.upstreamPort}`, { connections: 32 });
  const server = createSecureServer({ ca: pem('ca.crt'), cert: pem('tls.crt'), key: pem('tls.key'), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
  server.on('secureConnection', (socket: { setNoDelay(on: boolean): void }) => socket.setNoDelay(true));
  server.on('stream', (stream) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const ref = codec.requestDeserialize(Buffer.concat(chunks).subarray(5));
      upstream
        .request({ path: '/throughput', method: 'GET' })
        .then((r) => r.body.json() as Promise<{ throughput: number }>)
        .then((answer) => {
          const value = { string: `${Math.round(answer.throughput * 1000)}m` };
          const seconds = String(Math.floor(Date.now() / 1e3));
          const list = { metadata: null, items: [{ metricName: ref.metricName, metricLabels: {}, timestamp: { seconds, nanos: 0 }, value }] };
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(frame(codec.responseSerialize(list)));
        })
        .catch((err: unknown) => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': encodeURIComponent(String(err)) }, { endStream: true }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await upstream.close();
    },
  };
}

async function startBenchAdapter(spec: Extract<ChildSpec, { role: 'adapter' }>) {
  const { parseAdapterConfig } = await import('../src/adapter/config.js');
  const { startAdapter } = await import('../src/adapter/main.js');
  const pki = spec.pkiDir;
  const source =
    spec.source.kind === 'file'
      ? ['--metrics-source=file', `--metrics-source-file=${spec.source.file}`]
      : ['--metrics-source=operator', `--metrics-service-address=${spec.source.address}`];
  const config = parseAdapterConfig(
    [
      ...source,
      `--cert-dir=${spec.certDir}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      `--requestheader-client-ca-file=${join(pki, 'front-proxy-ca.crt')}`,
      '--bind-address=127.0.0.1',
      `--metrics-port=${spec.metricsPort}`,
      '--metrics-bind-address=127.0.0.1',
      '--log-level=warn',
    ],
    {},
  );
  if (config === 'help') throw new Error('unexpected help');
  // --secure-port accepts 1..65535 only; 0 (any free port) is set here, on the validated config.
  const adapter = await startAdapter({ ...config, securePort: 0 });
  return { port: (adapter.app.server.address() as AddressInfo).port, close: () => adapter.shutdown() };
}

/** The metrics-api scalers' upstream, a process of its own (as it would be in a cluster). */
async function startUpstream(spec: Extract<ChildSpec, { role: 'upstream' }>) {
  const upstream = createServer((req, res) => {
    const body = `{${JSON.stringify((req.url ?? '/').slice(1))}:1.5}`;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    upstream.once('error', reject);
    upstream.listen(spec.port, '127.0.0.1', () => resolve());
  });
  return {
    port: spec.port,
    close: async () => {
      upstream.closeAllConnections();
      await new Promise<void>((r) => upstream.close(() => r()));
    },
  };
}

async function startBenchOperator(spec: Extract<ChildSpec, { role: 'operator' }>) {
  const { parseOperatorConfig } = await import('../src/operator/config.js');
  const { startOperator } = await import('../src/operator/main.js');
  const config = parseOperatorConfig(
    [
      '--metrics-service-bind-address=127.0.0.1:0',
      `--cert-dir=${spec.certDir}`,
      ...(spec.kubeconfig
        ? [`--kubeconfig=${spec.kubeconfig}`, '--namespace=keda', '--webhook-port=0', '--enable-apiservice-patching=false', '--enable-webhook-patching=false']
        : [`--scaled-objects-file=${spec.scaledObjectsFile}`]),
      `--ca-dir=${spec.caDir}`,
      '--enable-cert-rotation=false',
      `--metrics-port=${spec.metricsPort}`,
      '--metrics-bind-address=127.0.0.1',
      '--shutdown-grace-period=2s',
      '--log-level=warn',
    ],
    {},
  );
  if (config === 'help') throw new Error('unexpected help');
  // An empty environment, whatever KUBERNETES_SERVICE_HOST the bench runs under: the cluster, if
  // any, is the kubeconfig's.
  const operator = await startOperator(config, undefined, {});
  return { port: operator.channel.port, close: () => operator.shutdown() };
}

const send = (m: ChildMessage) => process.send?.(m);

/** A CPU profile of this process over a window (not its whole life, as --cpu-prof gives). */
async function cpuProfile(durationMs: number, file: string): Promise<void> {
  // Loaded only when asked for: the inspector alone adds ~13 MB to a process's RSS.
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  await new Promise((r) => setTimeout(r, durationMs));
  const { profile } = await session.post('Profiler.stop');
  await writeFile(file, JSON.stringify(profile));
  session.disconnect();
}

async function main() {
  const spec = JSON.parse(process.argv[2] ?? '') as ChildSpec;
  const server =
    spec.role === 'baseline' ? await startBaseline(spec)
    : spec.role === 'adapter' ? await startBenchAdapter(spec)
    : spec.role === 'upstream' ? await startUpstream(spec)
    : spec.role === 'floor-front' ? await startFloorFront(spec)
    : spec.role === 'floor-back' ? await startFloorBack(spec)
    : await startBenchOperator(spec);
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'stats') {
      const mem = process.memoryUsage();
      // Where the RSS is: V8's heap spaces as reserved (space_size) besides what is live in them.
      const heapSpaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
      send({ type: 'stats', id: m.id, cpu: process.cpuUsage(), rss: mem.rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, heapSpaces, external: mem.external, arrayBuffers: mem.arrayBuffers, maxRss: process.resourceUsage().maxRSS * 1024 });
    } else if (m.type === 'profile') {
      void cpuProfile(m.durationMs, m.file).then(() => send({ type: 'profiled', id: m.id }));
    } else if (m.type === 'stop') {
      // A normal exit, so that --cpu-prof gets written.
      server.close().finally(() => process.exit(0));
    }
  });
  send({ type: 'listening', port: server.port });
}

// Never outlive the bench.
process.on('disconnect', () => process.exit(0));
main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
