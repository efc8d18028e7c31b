// Parent side of the server children: fork, learn the port, read CPU/memory, stop.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type ChildSpec =
  | { role: 'baseline'; pkiDir: string; route: string; body: string; contentType: string }
  /** The metrics-api scalers' upstream: plain HTTP on 127.0.0.1:port, `GET /<key>` -> `{"<key>":1.5}`. */
  | { role: 'upstream'; port: number }
  /**
   * The floor of the full path's design: the same hops made of bare parts. `floor-front` is the
   * baseline's route that, before answering, makes one GetMetrics call (bare node:http2, gRPC
   * framing, mutual TLS 1.3) to `floor-back`, which GETs the upstream (an undici Pool) and answers.
   */
  | { role: 'floor-front'; pkiDir: string; route: string; body: string; contentType: string; backPort: number; clientCertDir: string }
  | { role: 'floor-back'; certDir: string; upstreamPort: number }
  | {
      role: 'adapter';
      pkiDir: string;
      /** tls.crt, tls.key, ca.crt (the channel's trust); client CAs come from pkiDir. */
      certDir: string;
      metricsPort: number;
      source: { kind: 'file'; file: string } | { kind: 'operator'; address: string };
    }
  | {
      role: 'operator';
      /** tls.crt, tls.key, ca.crt. */
      certDir: string;
      /** Ignored with kubeconfig. */
      scaledObjectsFile: string;
      caDir: string;
      metricsPort: number;
      /** Watch a cluster (ScaledObjects, HPAs, status) instead of serving scaledObjectsFile. */
      kubeconfig?: string;
    };

export type ParentMessage = { type: 'stats'; id: number } | { type: 'stop' } | { type: 'profile'; id: number; durationMs: number; file: string };
export type ChildMessage =
  | { type: 'listening'; port: number }
  | { type: 'stats'; id: number; cpu: NodeJS.CpuUsage; rss: number; heapUsed: number; heapTotal: number; heapSpaces: Record<string, { size: number; used: number }>; external: number; arrayBuffers: number; maxRss: number }
  | { type: 'profiled'; id: number };

export type ServerStats = Omit<Extract<ChildMessage, { type: 'stats' }>, 'type' | 'id'>;

export interface ServerChild {
  role: ChildSpec['role'];
  /** Unique within a run: `adapter`, `adapter-file`, `operator`, `baseline`. */
  name: string;
  port: number;
  pid: number;
  /** performance.now() when fork() was called. */
  forkedAt: number;
  stats(): Promise<ServerStats>;
  /** A V8 CPU profile of the child over `durationMs`, written to `file`. */
  profile(durationMs: number, file: string): Promise<void>;
  stop(): Promise<void>;
}

const CHILD_ENTRY = new URL('./server-child.js', import.meta.url);
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

/**
 * The servers run with the environment the container image gives them (the Dockerfile's `ENV`
 * lines, read from it, NODE_OPTIONS among them), less what a dev box adds: NODE_EXTRA_CA_CERTS
 * (set on some sandboxes to the whole system store) doubles the trust bundle the operator's
 * scalers build a TLS context from, and with it their start-up cost and memory.
 */
export function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env, ...imageEnv() };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** `ENV NAME=value` (value optionally double-quoted) lines of the repository's Dockerfile. */
export function imageEnv(): Record<string, string> {
  const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
  return Object.fromEntries([...dockerfile.matchAll(/^ENV (\w+)=(?:"([^"]*)"|(\S*))\s*$/gm)].map((m) => [m[1]!, m[2] ?? m[3] ?? '']));
}

export async function forkServer(name: string, spec: ChildSpec, opts: { execArgv?: string[] } = {}): Promise<ServerChild> {
  const forkedAt = performance.now();
  const child = fork(CHILD_ENTRY, [JSON.stringify(spec)], { execArgv: opts.execArgv ?? [], env: childEnv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} child did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`${name} child exited with ${code} before listening`)));
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'listening') {
        clearTimeout(timer);
        resolve(m.port);
      }
    });
  }).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  let nextId = 0;
  return {
    role: spec.role,
    name,
    port,
    pid: child.pid ?? -1,
    forkedAt,
    stats: () => ask(child, ++nextId),
    profile: (durationMs, file) =>
      new Promise<void>((resolve) => {
        const id = ++nextId;
        const onMessage = (m: ChildMessage) => {
          if (m.type !== 'profiled' || m.id !== id) return;
          child.off('message', onMessage);
          resolve();
        };
        child.on('message', onMessage);
        child.send({ type: 'profile', id, durationMs, file } satisfies ParentMessage);
      }),
    stop: () => stopChild(child),
  };
}

function ask(child: ChildProcess, id: number): Promise<ServerStats> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not answer a stats request within 5 s')), 5_000);
    const onMessage = (m: ChildMessage) => {
      if (m.type !== 'stats' || m.id !== id) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      const { type: _t, id: _i, ...stats } = m;
      resolve(stats);
    };
    child.on('message', onMessage);
    child.send({ type: 'stats', id } satisfies ParentMessage);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.send({ type: 'stop' } satisfies ParentMessage);
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** A port that was free a moment ago (the adapter's plain-HTTP port must be known before it starts). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Polls http://127.0.0.1:port/readyz every 2 ms until 200; resolves with performance.now() of that answer. */
export async function waitForReady(port: number, timeoutMs = START_TIMEOUT_MS): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const code = await new Promise<number>((resolve) => {
      const req = get({ host: '127.0.0.1', port, path: '/readyz', agent: false, timeout: 1_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
    });
    if (code === 200) return performance.now();
    await sleep(2);
  }
  throw new Error(`/readyz on port ${port} did not answer 200 within ${timeoutMs} ms`);
}

/** The sum of a Prometheus counter's series on a child's plain-HTTP /metrics. */
export async function counterOf(metricsPort: number, name: string): Promise<number> {
  return Object.values(await seriesOf(metricsPort, name)).reduce((sum, v) => sum + v, 0);
}

/** A Prometheus metric's series on a child's plain-HTTP /metrics, by their labels (`{a="b"}`, or '' without labels). */
export async function seriesOf(metricsPort: number, name: string): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const series: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const space = line.lastIndexOf(' ');
    series[line.slice(name.length, space)] = Number(line.slice(space + 1));
  }
  return series;
}

/**
 * Idle, as a server is idle: after the quiet check interval in which it gave back what start-up
 * left behind (its first idle heap trim). Resolves false when none came within timeoutMs.
 */
export async function waitForIdleTrim(metricsPort: number, timeoutMs = 30_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if ((await counterOf(metricsPort, 'idle_heap_trims_total')) > 0) return true;
    await sleep(250);
  }
  return false;
}
