// A real PostgreSQL server for tests: Debian's initdb and postgres (from
// /usr/lib/postgresql/<major>/bin) on 127.0.0.1 and a free port, its data in a temporary folder,
// optionally with TLS (a server certificate, and a CA for client certificates), the pg_hba.conf
// rules a test asks for before the default one (scram-sha-256 passwords over TCP).
//
// PostgreSQL refuses to run as root: when the tests run as root, initdb and postgres run as the
// `postgres` system user (setpriv), in a folder that user owns. The test itself talks to the
// server as its superuser through the Unix socket in that folder (trusted).
//
// stop() and start() again: the server goes away and comes back on the same port with the same
// data. Stopped (fast shutdown: open sessions do not hold it up) and its folder removed at the
// test's teardown; ./daemon.ts's watchdog stops it even when the test process is killed outright.
import { execFile, execFileSync } from 'node:child_process';
import { chmod, chown, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { findProgram, postgresBinDirs, inTempDir, startDaemon, withFreePort, type Daemon, type Teardown } from './daemon.js';

export type { Teardown } from './daemon.js';

const run = promisify(execFile);
const SYSTEM_USER = 'postgres';

export interface PostgresOptions {
  /** ssl=on with this server certificate; clientCa: the CA its client certificates must come from (ssl_ca_file). */
  tls?: { cert: string; key: string; clientCa?: string };
  /** pg_hba.conf lines, checked before the default `host all all 127.0.0.1/32 scram-sha-256`. */
  hba?: string[];
  /** How long start-up may take (default 60 s). */
  startTimeoutMs?: number;
}

export interface PostgresServer {
  /** 127.0.0.1 */
  readonly host: string;
  readonly port: number;
  /** Where the Unix socket is (what the test's own superuser connections use). */
  readonly socketDir: string;
  /** Runs one statement as the superuser `postgres`, over the Unix socket; the rows. */
  sql<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[], database?: string): Promise<R[]>;
  readonly running: boolean;
  /** Fast shutdown: open sessions are ended. */
  stop(): Promise<void>;
  /** Starts it again, same port, same data; waits until it accepts connections. */
  start(): Promise<void>;
  /** The last lines it logged. */
  logs(): string;
}

/** Debian's server programs: on PATH, or in the newest /usr/lib/postgresql/<major>/bin. */
export function postgresProgram(name: 'initdb' | 'postgres'): string {
  const found = findProgram(name, postgresBinDirs());
  if (!found) throw new Error(`PostgreSQL's ${name} is not installed ("node scripts/require-system-tools.mjs" installs it)`);
  return found;
}

// The server under a small shell: the watchdog's SIGTERM (PostgreSQL's "smart" shutdown, which
// waits for every session to end) becomes SIGINT (its "fast" shutdown).
const FAST_STOP = [
  '"$@" &',
  'pid=$!',
  'trap \'kill -INT "$pid" 2>/dev/null\' TERM INT',
  'wait "$pid"; status=$?',
  'while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done',
  'exit "$status"',
].join('\n');

/** Starts PostgreSQL and waits until it accepts connections. A port lost to a race is retried. */
export async function startPostgres(t: Teardown, opts: PostgresOptions = {}): Promise<PostgresServer> {
  return inTempDir(t, 'keda-ts-pg-', (dir, daemons) => launch(t, opts, dir, daemons));
}

async function launch(t: Teardown, opts: PostgresOptions, dir: string, daemons: Daemon[]): Promise<PostgresServer> {
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? systemUser(SYSTEM_USER) : undefined;
  const own = async (path: string, mode: number) => {
    if (owner) await chown(path, owner.uid, owner.gid);
    await chmod(path, mode);
  };
  await own(dir, 0o700);
  const data = join(dir, 'data');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' };

  const initdb = [postgresProgram('initdb'), '-D', data, '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync', '--no-instructions'];
  try {
    await run(asRoot ? 'setpriv' : initdb[0]!, asRoot ? [`--reuid=${SYSTEM_USER}`, `--regid=${SYSTEM_USER}`, '--init-groups', ...initdb] : initdb.slice(1), { env, cwd: dir, timeout: 120_000 });
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`initdb failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
  }

  const conf = [
    '',
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${dir}'`,
    "password_encryption = 'scram-sha-256'",
    'fsync = off',
    'synchronous_commit = off',
    'full_page_writes = off',
    'shared_buffers = 16MB',
    'max_connections = 60',
    "log_min_messages = 'warning'",
    "log_line_prefix = '%m [%p] %u@%d '",
  ];
  if (opts.tls) {
    await writeFile(join(dir, 'server.crt'), opts.tls.cert);
    await writeFile(join(dir, 'server.key'), opts.tls.key, { mode: 0o600 });
    await own(join(dir, 'server.crt'), 0o644);
    await own(join(dir, 'server.key'), 0o600);
    conf.push('ssl = on', `ssl_cert_file = '${join(dir, 'server.crt')}'`, `ssl_key_file = '${join(dir, 'server.key')}'`);
    if (opts.tls.clientCa) {
      await writeFile(join(dir, 'client-ca.crt'), opts.tls.clientCa);
      await own(join(dir, 'client-ca.crt'), 0o644);
      conf.push(`ssl_ca_file = '${join(dir, 'client-ca.crt')}'`);
    }
  }
  await appendFile(join(data, 'postgresql.conf'), `${conf.join('\n')}\n`);
  const hba = ['local all all trust', ...(opts.hba ?? []), 'host all all 127.0.0.1/32 scram-sha-256'];
  await writeFile(join(data, 'pg_hba.conf'), `${hba.join('\n')}\n`);

  return withFreePort(async (port) => {
    const sql = async <R extends Record<string, unknown>>(text: string, values?: unknown[], database = 'postgres'): Promise<R[]> => {
      const client = new pg.Client({ host: dir, port, user: 'postgres', database, password: () => '', connectionTimeoutMillis: 5000 });
      client.on('error', () => undefined);
      await client.connect();
      try {
        return (await client.query<R>(text, values)).rows;
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    const daemon = await startDaemon(t, {
      name: 'PostgreSQL',
      bin: '/bin/sh',
      args: ['-c', FAST_STOP, 'postgres-fast-stop', postgresProgram('postgres'), '-D', data, '-p', String(port)],
      env,
      user: SYSTEM_USER,
      startTimeoutMs: opts.startTimeoutMs ?? 60_000,
      ready: async () => (await sql('SELECT 1 AS one')).length === 1,
    });
    daemons.push(daemon);
    return {
      host: '127.0.0.1',
      port,
      socketDir: dir,
      sql,
      get running() {
        return daemon.running;
      },
      stop: () => daemon.stop(),
      start: () => daemon.start(),
      logs: () => daemon.logs(),
    };
  });
}

function systemUser(name: string): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}
