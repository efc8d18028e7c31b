// `npm start`: the whole stack on this machine, no cluster. Creates the development PKI when it
// is missing, starts the components as child processes (as they would run in pods), and prints
// kubectl commands that read a live metric with the development admin certificate.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { generateDevPki } from './certs/dev-pki.js';

const ROOT = join(import.meta.dirname, '..');
const PKI = join(ROOT, 'certs-dev', 'generated');
const CLI = join(ROOT, 'dist', 'cli.js');
const SECURE_PORT = Number(process.env.ADAPTER_SECURE_PORT ?? 6443);
const METRICS_PORT = Number(process.env.ADAPTER_METRICS_PORT ?? 8080);

async function main(): Promise<void> {
  if (!existsSync(join(PKI, 'ca.crt'))) {
    await generateDevPki({ outDir: PKI });
    console.log(`created the development PKI in ${relative(process.cwd(), PKI)}/`);
  }
  const adapter = start('adapter', [
    'adapter',
    `--cert-dir=${PKI}`,
    `--client-ca-file=${join(PKI, 'ca.crt')}`,
    `--requestheader-client-ca-file=${join(PKI, 'front-proxy-ca.crt')}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--bind-address=127.0.0.1',
    '--metrics-bind-address=127.0.0.1',
    `--secure-port=${SECURE_PORT}`,
    `--metrics-port=${METRICS_PORT}`,
    '--metrics-source=demo',
  ]);
  const children = [adapter];

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping...');
    for (const c of children) c.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  for (const c of children) {
    c.on('exit', (code) => {
      if (!stopping) {
        console.error(`${c.spawnargs[2]} exited with code ${code}; stopping the rest`);
        stop();
        process.exitCode = 1;
      }
    });
  }

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
  ${kubectl} get --raw "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/demo-sine?labelSelector=scaledobject.keda.sh%2Fname%3Ddemo"
  watch -n 2 '${kubectl} get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/default/demo-sine'

An unprivileged user is refused (403):

  kubectl --server https://127.0.0.1:${SECURE_PORT} --certificate-authority ${p}/ca.crt --client-certificate ${p}/user.crt --client-key ${p}/user.key get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/default/demo-sine

Prometheus metrics: curl http://127.0.0.1:${METRICS_PORT}/metrics
Readiness:          curl "http://127.0.0.1:${METRICS_PORT}/readyz?verbose"

Ctrl-C stops everything.
`);
}

main().catch((err: unknown) => {
  console.error(`error: ${(err as Error).message}`);
  process.exit(1);
});
