// A real Redis for tests: Debian's redis-server on 127.0.0.1 and a free port, its data in a temp
// folder, plain or TLS-only (`port 0`, `tls-port`, with or without required client certificates),
// with a `requirepass` for the default user and ACL users as asked. Started through ./daemon.ts:
// stopped and started again on the same port with the same data (saved on SIGTERM), and stopped
// for good (its folder removed) at the test's teardown.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { inTempDir, startDaemon, withFreePort, type Daemon, type Teardown } from './daemon.js';

/** Debian's package puts it at /usr/bin/redis-server; scripts/require-system-tools.mjs installs it. */
export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server';

export interface RedisUser {
  name: string;
  password: string;
  /** ACL rules after `on >password` (default: every key, every command). */
  rules?: string[];
}

export interface RedisServerOptions {
  /** The default user's password. */
  requirepass?: string;
  users?: RedisUser[];
  /** TLS only: the plain port is closed (`port 0`). */
  tls?: {
    cert: string;
    key: string;
    /** The CA that issued `cert`: what the helper's own client trusts. */
    ca: string;
    /** tls-auth-clients. */
    authClients: 'yes' | 'no' | 'optional';
    /** tls-ca-cert-file: the CA that client certificates must come from (default `ca`). */
    clientCa?: string;
    /** The helper's own client certificate (needed with authClients yes). */
    client?: { cert: string; key: string };
  };
  /** Extra configuration, as command-line directives (`['--databases', '4']`). */
  args?: string[];
}

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** host:port: what a trigger's address is. */
  readonly address: string;
  /** Runs `fn` on a new admin connection (the default user), closed afterwards. */
  admin<T>(fn: (c: Redis) => Promise<T>): Promise<T>;
  /** CLIENT LIST: one line per connection open on the server now (`id=.. addr=.. name=.. db=.. user=..`). */
  clientList(): Promise<string[]>;
  readonly running: boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
  logs(): string;
}

export async function startRedis(t: Teardown, o: RedisServerOptions = {}): Promise<RedisServer> {
  return inTempDir(t, 'keda-ts-redis-', (dir, daemons) => launch(t, o, dir, (d) => daemons.push(d)));
}

async function launch(t: Teardown, o: RedisServerOptions, dir: string, started: (d: Daemon) => void): Promise<RedisServer> {
  const args = [
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--dbfilename', 'dump.rdb',
    // No snapshots while running; one at SIGTERM, so a stop and start keeps the data.
    '--save', '',
    '--shutdown-on-sigterm', 'save',
    '--appendonly', 'no',
    '--loglevel', 'notice',
    '--logfile', '',
  ];
  if (o.requirepass !== undefined) args.push('--requirepass', o.requirepass);
  for (const u of o.users ?? []) args.push('--user', u.name, 'on', `>${u.password}`, ...(u.rules ?? ['~*', '&*', '+@all']));
  if (o.tls) {
    await writeFile(join(dir, 'server.crt'), o.tls.cert);
    await writeFile(join(dir, 'server.key'), o.tls.key, { mode: 0o600 });
    await writeFile(join(dir, 'client-ca.crt'), o.tls.clientCa ?? o.tls.ca);
    args.push('--tls-cert-file', join(dir, 'server.crt'), '--tls-key-file', join(dir, 'server.key'), '--tls-ca-cert-file', join(dir, 'client-ca.crt'), '--tls-auth-clients', o.tls.authClients);
  }
  args.push(...(o.args ?? []));

  return withFreePort(async (port) => {
    const portArgs = o.tls ? ['--port', '0', '--tls-port', String(port)] : ['--port', String(port)];
    const clientOptions: RedisOptions = {
      host: '127.0.0.1',
      port,
      ...(o.requirepass !== undefined ? { password: o.requirepass } : {}),
      ...(o.tls ? { tls: { ca: o.tls.ca, ...(o.tls.client ? { cert: o.tls.client.cert, key: o.tls.client.key } : {}) } } : {}),
      lazyConnect: true,
      retryStrategy: () => null,
      enableOfflineQueue: false,
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      protocol: 2,
      connectTimeout: 5000,
    };
    const admin = async <T>(fn: (c: Redis) => Promise<T>): Promise<T> => {
      const c = new Redis(clientOptions);
      c.on('error', () => undefined);
      try {
        await c.connect();
        return await fn(c);
      } finally {
        c.disconnect();
        c.stream?.destroy();
      }
    };
    const d = await startDaemon(t, {
      name: `Redis (${REDIS_SERVER_BIN})`,
      bin: REDIS_SERVER_BIN,
      args: [...args, ...portArgs],
      startTimeoutMs: 30_000,
      stopGraceMs: 10_000,
      ready: async () => (await admin((c) => c.ping())) === 'PONG',
    });
    started(d);
    return {
      host: '127.0.0.1',
      port,
      address: `127.0.0.1:${port}`,
      admin,
      clientList: () => admin(async (c) => String(await c.client('LIST')).split('\n').filter((l) => l.trim() !== '')),
      get running() {
        return d.running;
      },
      stop: () => d.stop(),
      start: () => d.start(),
      logs: () => d.logs(),
    };
  });
}
