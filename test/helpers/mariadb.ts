// A real MariaDB server for tests (Debian's mariadb-server): a data folder made by
// mariadb-install-db in a temporary folder, then mariadbd on 127.0.0.1 and a free port, with its
// socket and pid file in that folder too; optionally TLS (ssl_cert/ssl_key, and ssl_ca to verify
// client certificates). Grants are real (never --skip-grant-tables): users are created with a
// password, and with REQUIRE SSL or REQUIRE X509. stop() then start() is the same server on the
// same port and data going away and coming back.
//
// The helper's own SQL goes over the Unix socket as root (who has no password in a data folder
// made with --auth-root-authentication-method=normal, reachable only through the socket and
// 127.0.0.1). Stopped, and its folder removed, at the test's teardown.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { findProgram, inTempDir, startDaemon, withFreePort, type Daemon, type Teardown } from './daemon.js';
import { run } from './tools.js';

export type { Teardown } from './daemon.js';

export interface MariaDbOptions {
  /** Serve TLS with this certificate; `clientCa` (ssl_ca) verifies client certificates, for REQUIRE X509 users. */
  tls?: { cert: string; key: string; clientCa?: string };
  /** How long start-up may take (default 60 s). */
  startTimeoutMs?: number;
}

export interface MariaDbServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The Unix socket, in the helper's folder. */
  readonly socket: string;
  readonly daemon: Daemon;
  /** One statement as root (over the socket); the rows of a SELECT. */
  sql(statement: string, values?: unknown[]): Promise<RowDataPacket[]>;
  /** A user and its password, allowed SELECT on `database`; `require`: REQUIRE SSL or REQUIRE X509. */
  createUser(user: string, password: string, database: string, require?: 'SSL' | 'X509'): Promise<void>;
  /** Connections open now as `user` (the server's process list). */
  connections(user: string): Promise<number>;
  /** The last lines mariadbd logged. */
  logs(): string;
}

/** mariadbd is in /usr/sbin on Debian, which is not always on PATH. */
const MARIADBD = process.env.MARIADBD_BIN ?? findProgram('mariadbd', ['/usr/sbin']) ?? findProgram('mysqld', ['/usr/sbin']) ?? 'mariadbd';
const INSTALL_DB = process.env.MARIADB_INSTALL_DB_BIN ?? findProgram('mariadb-install-db', ['/usr/bin']) ?? findProgram('mysql_install_db', ['/usr/bin']) ?? 'mariadb-install-db';
/** Small and quick: a test server holds a few rows. */
const SERVER_OPTIONS = ['--innodb-buffer-pool-size=16M', '--innodb-log-file-size=8M'];

export async function startMariaDb(t: Teardown, opts: MariaDbOptions = {}): Promise<MariaDbServer> {
  return inTempDir(t, 'keda-ts-mariadb-', (dir, daemons) => launch(t, opts, dir, (d) => daemons.push(d)));
}

async function launch(t: Teardown, opts: MariaDbOptions, dir: string, started: (d: Daemon) => void): Promise<MariaDbServer> {
  const asRoot = process.getuid?.() === 0;
  const data = join(dir, 'data');
  const socket = join(dir, 'mariadb.sock');
  // mariadbd refuses to run as root unless told to; the data folder is then root's too.
  const user = asRoot ? ['--user=root'] : [];
  const install = await run(
    INSTALL_DB,
    ['--no-defaults', `--datadir=${data}`, ...user, '--auth-root-authentication-method=normal', '--skip-test-db', ...SERVER_OPTIONS],
    '',
    process.env,
    60_000,
  );
  if (install.code !== 0) {
    throw new Error(`${INSTALL_DB} failed (exit ${install.code}; is mariadb-server installed? "node scripts/require-system-tools.mjs" installs it):\n${(install.stdout + install.stderr).slice(-4000)}`);
  }
  const tlsArgs: string[] = [];
  if (opts.tls) {
    await writeFile(join(dir, 'server.crt'), opts.tls.cert);
    await writeFile(join(dir, 'server.key'), opts.tls.key, { mode: 0o600 });
    tlsArgs.push(`--ssl-cert=${join(dir, 'server.crt')}`, `--ssl-key=${join(dir, 'server.key')}`);
    if (opts.tls.clientCa) {
      await writeFile(join(dir, 'client-ca.crt'), opts.tls.clientCa);
      tlsArgs.push(`--ssl-ca=${join(dir, 'client-ca.crt')}`);
    }
  }

  const sql = async (statement: string, values: unknown[] = []): Promise<RowDataPacket[]> => {
    const c = await createConnection({ socketPath: socket, user: 'root', connectTimeout: 5000 });
    try {
      const [rows] = await c.query<RowDataPacket[]>(statement, values);
      return rows;
    } finally {
      c.destroy();
    }
  };

  return withFreePort(async (port) => {
    const daemon = await startDaemon(t, {
      name: `MariaDB (${MARIADBD})`,
      bin: MARIADBD,
      args: [
        '--no-defaults',
        `--datadir=${data}`,
        `--socket=${socket}`,
        `--pid-file=${join(dir, 'mariadbd.pid')}`,
        `--tmpdir=${dir}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        '--skip-name-resolve',
        ...user,
        ...SERVER_OPTIONS,
        ...tlsArgs,
      ],
      startTimeoutMs: opts.startTimeoutMs ?? 60_000,
      ready: async () => (await sql('SELECT 1 AS ok'))[0]?.ok === 1,
    });
    started(daemon);
    return {
      host: '127.0.0.1' as const,
      port,
      socket,
      daemon,
      sql,
      createUser: async (name, password, database, require) => {
        await sql(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
        await sql(`CREATE USER ?@'%' IDENTIFIED BY ?${require ? ` REQUIRE ${require}` : ''}`, [name, password]);
        await sql(`GRANT SELECT ON \`${database}\`.* TO ?@'%'`, [name]);
      },
      connections: async (name) => {
        const rows = await sql('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?', [name]);
        return Number(rows[0]?.n ?? 0);
      },
      logs: () => daemon.logs(),
    };
  });
}
