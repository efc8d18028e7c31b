// Real servers for tests (Prometheus, Redis, PostgreSQL, MariaDB, RabbitMQ, NATS, all from Debian's
// packages): started on 127.0.0.1, waited for, stopped and started again on the same port and
// data (a server that goes away and comes back), and stopped for good at the test's teardown.
//
// Each server runs under a tiny shell watchdog that stops it as soon as this process's end of a
// pipe closes, so not even a test process that is killed outright leaves a server running.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** What the helpers need of a tap test. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

const LOG_KEEP_CHARS = 20_000;

export interface DaemonOptions {
  /** For messages: "Redis", "PostgreSQL". */
  name: string;
  /** The program (absolute, or looked up on PATH) and its arguments. */
  bin: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Run as this system user (PostgreSQL and RabbitMQ refuse root); needs root and setpriv. */
  user?: string;
  /** True once the server serves; errors count as "not yet" and the last one is reported. */
  ready: () => Promise<boolean>;
  /** How long start-up may take (default 60 s). */
  startTimeoutMs?: number;
  /** SIGTERM grace before SIGKILL (default 15 s). */
  stopGraceMs?: number;
}

export interface Daemon {
  /** The last lines it logged, this run and the ones before. */
  logs(): string;
  readonly running: boolean;
  /** Stops it (SIGTERM, then SIGKILL after the grace time); idempotent. */
  stop(): Promise<void>;
  /** Starts it again with the same arguments, and waits until it is ready. */
  start(): Promise<void>;
}

/**
 * Starts a server and waits until `ready` says so; stopped at teardown, and right away when
 * start-up fails. Where a port was lost to a race between choosing and binding it, the caller
 * retries with another (see `withFreePort`).
 */
export async function startDaemon(t: Teardown, o: DaemonOptions): Promise<Daemon> {
  let log = '';
  let current: Watched | undefined;
  const keep = (s: string) => {
    log = (log + s).slice(-LOG_KEEP_CHARS);
  };
  const daemon: Daemon = {
    logs: () => log,
    get running() {
      return current !== undefined && !current.exited;
    },
    stop: async () => {
      await current?.stop();
    },
    start: async () => {
      if (current && !current.exited) return;
      const proc = startWatched(o, keep);
      current = proc;
      try {
        await until(Date.now() + (o.startTimeoutMs ?? 60_000), o.name, proc, () => log, o.ready);
      } catch (err) {
        await proc.stop();
        throw err;
      }
    },
  };
  t.teardown(() => daemon.stop());
  await daemon.start();
  return daemon;
}

/**
 * A temporary folder for a server's files, and the daemons started in it: at teardown, and at
 * once when `start` fails (a test file failing at its top level may not reach its teardowns), the
 * daemons are stopped, last started first, then the folder is removed.
 */
export async function inTempDir<T>(t: Teardown, prefix: string, start: (dir: string, daemons: Daemon[]) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const daemons: Daemon[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaned ??= (async () => {
      for (const d of [...daemons].reverse()) await d.stop();
      await rm(dir, { recursive: true, force: true });
    })());
  t.teardown(cleanUp);
  try {
    return await start(dir, daemons);
  } catch (err) {
    await cleanUp();
    throw err;
  }
}

/** Tries `start` up to three times, each with a new free port: a port taken between choosing and binding is retried. */
export async function withFreePort<T>(start: (port: number) => Promise<T>, isPortLost: (err: Error) => boolean = (err) => /address already in use|EADDRINUSE|bind/i.test(err.message)): Promise<T> {
  let last: Error | undefined;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await start(await freePort());
    } catch (err) {
      last = err as Error;
      if (!isPortLost(last)) break;
    }
  }
  throw last ?? new Error('no free port');
}

export async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A program on PATH, else in the first of `extraDirs` that has it. */
export function findProgram(name: string, extraDirs: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...extraDirs]) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** Debian keeps PostgreSQL's server programs in /usr/lib/postgresql/<major>/bin: the newest first. */
export function postgresBinDirs(): string[] {
  try {
    return readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
      .map((v) => `/usr/lib/postgresql/${v}/bin`);
  } catch {
    return [];
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface Watched {
  readonly exited: boolean;
  stop(): Promise<void>;
}

// The watchdog: the server in the background, stopped with SIGTERM when our end of fd 3's pipe
// closes (stop, teardown, or this process dying in any way); `wait` then ends the shell with it.
// The server gets neither the pipe nor a terminal.
const WATCHDOG = [
  'exec 3<&0',
  '"$@" 3<&- </dev/null &',
  'child=$!',
  'echo "watchdog-pid $child"',
  '( cat <&3 >/dev/null; kill -TERM "$child" 2>/dev/null ) &',
  'exec 3<&-',
  'wait "$child"',
].join('\n');

function startWatched(o: DaemonOptions, keep: (s: string) => void): Watched {
  // setpriv execs the server itself, so the watchdog's SIGTERM reaches it (runuser would fork).
  const command = o.user !== undefined && process.getuid?.() === 0 ? ['setpriv', `--reuid=${o.user}`, `--regid=${o.user}`, '--init-groups', o.bin, ...o.args] : [o.bin, ...o.args];
  const child: ChildProcess = spawn('/bin/sh', ['-c', WATCHDOG, 'daemon-watchdog', ...command], { stdio: ['pipe', 'pipe', 'pipe'], env: o.env ?? process.env });
  let pid: number | undefined;
  let exited = false;
  let seen = '';
  const onData = (d: Buffer) => {
    const s = d.toString();
    if (pid === undefined) {
      seen += s;
      const m = /watchdog-pid (\d+)/.exec(seen);
      if (m) pid = Number(m[1]);
    }
    keep(s);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.stdin!.on('error', () => undefined);
  const exit = new Promise<void>((r) =>
    child.once('exit', () => {
      exited = true;
      r();
    }),
  );
  child.once('error', (err) => {
    keep(`\nspawn failed: ${err.message}`);
    exited = true;
  });
  let stopping: Promise<void> | undefined;
  return {
    get exited() {
      return exited;
    },
    stop: () =>
      (stopping ??= (async () => {
        child.stdin!.end();
        const timer = setTimeout(() => {
          if (pid !== undefined) tryKill(pid, 'SIGKILL');
          if (child.pid !== undefined) tryKill(child.pid, 'SIGKILL');
        }, o.stopGraceMs ?? 15_000);
        if (!exited) await exit;
        clearTimeout(timer);
      })()),
  };
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function until(deadline: number, name: string, proc: Watched, logs: () => string, probe: () => Promise<boolean>): Promise<void> {
  let lastError = '';
  for (;;) {
    if (proc.exited) {
      const hint = /not found|No such file/.test(logs()) ? ' (is it installed? "node scripts/require-system-tools.mjs" installs it)' : '';
      throw new Error(`${name} exited during start-up${hint}:\n${logs().slice(-4000)}`);
    }
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${name} did not become ready in time (last error: ${lastError || 'none'}):\n${logs().slice(-4000)}`);
    await sleep(100);
  }
}
