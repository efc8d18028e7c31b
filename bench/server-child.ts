// Entry of a server child process (forked by servers.ts): `baseline`, `adapter` or `operator`,
// told what to serve in argv, reporting its port and its own CPU/memory over IPC. Each role loads
// only its own modules, so that a child's memory is its server's, as in its own container.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { getHeapSpaceStatistics } from 'node:v8';
import type { ChildMessage, ChildSpec, ParentMessage } from './servers.js';

/** The baseline: Fastify, TLS 1.3, verified client certificates, one route with fixed bytes. Nothing else. */
async function startBaseline(spec: Extract<ChildSpec, { role: 'baseline' }>) {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({
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
  app.get(spec.route, (_req, reply) => reply.header('content-type', spec.contentType).send(spec.body));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
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
