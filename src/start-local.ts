// `npm start`: the whole stack on this machine, no cluster. Creates the development PKI when it
// is missing, starts the components as child processes (as they would run in pods), and prints
// kubectl commands that read a live metric with the development admin certificate.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, relative } from 'node:path';
import { generateDevPki } from './certs/dev-pki.js';

const ROOT = join(import.meta.dirname, '..');
const PKI = process.env.DEV_PKI_DIR ?? join(ROOT, 'certs-dev', 'generated');
const CLI = join(ROOT, 'dist', 'cli.js');
const SECURE_PORT = Number(process.env.ADAPTER_SECURE_PORT ?? 6443);
const METRICS_PORT = Number(process.env.ADAPTER_METRICS_PORT ?? 8080);
const OPERATOR_METRICS_PORT = Number(process.env.OPERATOR_METRICS_PORT ?? 8081);
const GRPC_PORT = Number(process.env.OPERATOR_GRPC_PORT ?? 9666);
const DEMO_PORT = 9180;
const SCALED_OBJECTS = join(ROOT, 'examples', 'local-scaledobjects.yaml');
const METRIC_PATH = '/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-metric-api-queue-depth?labelSelector=scaledobject.keda.sh%2Fname%3Ddemo-worker';

/** The upstream the sample ScaledObject reads: a queue that fills by one a second and is drained every 30 s. */
function startDemoEndpoint(): Promise<void> {
  const started = Date.now();
  const server = createServer((_req, res) => {
    const depth = 2 + (Math.floor((Date.now() - started) / 1000) % 30);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ queue: { depth } }));
  });
  server.unref();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(DEMO_PORT, '127.0.0.1', () => resolve());
  });
}

const children: ChildProcess[] = [];
let stopping = false;

/** Ctrl-C, or one component dying: stop the others, wait for them, then leave. */
function stop(exitCode: number): void {
  if (stopping) return;
  stopping = true;
  process.exitCode = exitCode;
  console.log('\nstopping...');
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of running) c.kill('SIGTERM');
  void Promise.all(running.map((c) => new Promise((r) => c.once('exit', r)))).then(() => process.exit());
}

async function main(): Promise<void> {
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  if (!existsSync(join(PKI, 'ca.crt'))) {
    await generateDevPki({ outDir: PKI });
    console.log(`created the development PKI in ${relative(process.cwd(), PKI)}/`);
  }
  await startDemoEndpoint();
  start('operator', [
    'operator',
    `--cert-dir=${PKI}`,
    `--scaled-objects-file=${SCALED_OBJECTS}`,
    `--ca-dir=${join(ROOT, 'certs-dev', 'custom-ca')}`,
    '--enable-cert-rotation=false',
    `--metrics-service-bind-address=127.0.0.1:${GRPC_PORT}`,
    '--metrics-bind-address=127.0.0.1',
    `--metrics-port=${OPERATOR_METRICS_PORT}`,
  ]);
  await waitReady(`http://127.0.0.1:${OPERATOR_METRICS_PORT}/readyz`);
  start('adapter', [
    'adapter',
    `--cert-dir=${PKI}`,
    `--client-ca-file=${join(PKI, 'ca.crt')}`,
    `--requestheader-client-ca-file=${join(PKI, 'front-proxy-ca.crt')}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--bind-address=127.0.0.1',
    '--metrics-bind-address=127.0.0.1',
    `--secure-port=${SECURE_PORT}`,
    `--metrics-port=${METRICS_PORT}`,
    // By name: the dev certificate covers localhost, and TLS SNI cannot carry an IP address.
    `--metrics-service-address=localhost:${GRPC_PORT}`,
  ]);
  await waitReady(`http://127.0.0.1:${METRICS_PORT}/readyz`);
  printHelp();
}

function start(name: string, args: string[]): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = (stream: NodeJS.ReadableStream, out: NodeJS.WriteStream) =>
    stream.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line) out.write(`[${name}] ${line}\n`);
    });
  prefix(child.stdout!, process.stdout);
  prefix(child.stderr!, process.stderr);
  child.on('exit', (code) => {
    if (!stopping) {
      console.error(`${name} exited with code ${code}; stopping the rest`);
      stop(1);
    }
  });
  children.push(child);
  return child;
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not ready after 30s: ${url}`);
}

function printHelp(): void {
  const p = relative(process.cwd(), PKI) || '.';
  const kubectl = `kubectl --server https://127.0.0.1:${SECURE_PORT} --certificate-authority ${p}/ca.crt --client-certificate ${p}/admin.crt --client-key ${p}/admin.key`;
  console.log(`
The external metrics API is serving on https://127.0.0.1:${SECURE_PORT} (TLS 1.3, client certificates required).

Read the API and a metric that changes over time (paste into another terminal):

  ${kubectl} get --raw /apis/external.metrics.k8s.io/v1beta1
  ${kubectl} get --raw "${METRIC_PATH}"
  watch -n 2 '${kubectl} get --raw "${METRIC_PATH}"'

The path: kubectl -> adapter (TLS 1.3, client certificate) -> operator (gRPC, mutual TLS 1.3)
-> metrics-api scaler -> the demo endpoint http://127.0.0.1:${DEMO_PORT}/api/queue.
The scaled object comes from ${relative(process.cwd(), SCALED_OBJECTS)}: edit it and the operator reloads it.

An unprivileged user is refused (403):

  kubectl --server https://127.0.0.1:${SECURE_PORT} --certificate-authority ${p}/ca.crt --client-certificate ${p}/user.crt --client-key ${p}/user.key get --raw "${METRIC_PATH}"

Prometheus metrics: curl http://127.0.0.1:${METRICS_PORT}/metrics (adapter), curl http://127.0.0.1:${OPERATOR_METRICS_PORT}/metrics (operator)
Readiness:          curl "http://127.0.0.1:${METRICS_PORT}/readyz?verbose"

Ctrl-C stops everything.
`);
}

main().catch((err: unknown) => {
  console.error(`error: ${(err as Error).message}`);
  stop(1);
});
