// A real RabbitMQ broker for tests: Debian's rabbitmq-server (3.10) in a temporary folder, on
// 127.0.0.1, with every listener a scaler may use at once: plain AMQP, AMQPS (client certificates
// verified when given, SASL EXTERNAL offered), the management API over HTTP and over HTTPS
// (client certificate required). Users, vhosts and queues are made, and messages published,
// through the management API.
//
// The broker gets an epmd of its own on a free port (ERL_EPMD_PORT), started and stopped here, so
// no two test files share one and none outlives the test; both run under ./daemon.ts's watchdog.
// Start-up takes a few seconds: one broker per test file.
import { mkdir, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { findProgram, freePort, inTempDir, startDaemon, type Daemon, type Teardown } from './daemon.js';

/** Debian's package; scripts/require-system-tools.mjs installs it. */
const RABBITMQ_SERVER = process.env.RABBITMQ_SERVER_BIN ?? '/usr/lib/rabbitmq/bin/rabbitmq-server';

export interface RabbitmqOptions {
  /** The broker's certificate and key (AMQPS and management HTTPS). */
  cert: string;
  key: string;
  /** The CA that client certificates are verified against (AMQPS: optional; HTTPS: required). */
  clientCa: string;
}

export interface RabbitmqServer {
  readonly amqpPort: number;
  readonly amqpsPort: number;
  readonly httpPort: number;
  readonly httpsPort: number;
  /** Stop it, start it again: same ports, same data. */
  readonly daemon: Daemon;
  /** A management API call as the administrator; throws on a status outside 2xx. */
  api(method: string, path: string, body?: unknown): Promise<unknown>;
  /** A user with full access to `vhosts` (no password: only EXTERNAL can log it in). */
  addUser(name: string, password: string | undefined, vhosts: string[], tags?: string): Promise<void>;
  addVhost(name: string): Promise<void>;
  /** A durable queue. */
  addQueue(vhost: string, name: string): Promise<void>;
  deleteQueue(vhost: string, name: string): Promise<void>;
  /** `count` persistent messages, through the default exchange. */
  publish(vhost: string, queue: string, count?: number): Promise<void>;
  purge(vhost: string, queue: string): Promise<void>;
  /** The queue's message count as the management API says it (its statistics lag a little). */
  messages(vhost: string, queue: string): Promise<number | undefined>;
  /** The open client connections (user, vhost, ssl, and the name the client gave it). */
  connections(): Promise<{ user: string; vhost: string; ssl: boolean; clientName: string | undefined }[]>;
  logs(): string;
}

/**
 * Starts a broker and waits until the management API answers; stopped (with its epmd) and its
 * folder removed at teardown, and right away when start-up fails.
 */
export async function startRabbitmq(t: Teardown, o: RabbitmqOptions): Promise<RabbitmqServer> {
  // The broker is stopped before its epmd: inTempDir stops the last started first.
  return inTempDir(t, 'keda-ts-rabbitmq-', async (dir, daemons) => {
    let last: Error | undefined;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        return await launch(t, o, join(dir, `try-${attempt}`), daemons);
      } catch (err) {
        last = err as Error;
        for (const d of daemons.splice(0).reverse()) await d.stop();
        // A port taken between choosing and binding it: again, with others.
        if (!/eaddrinuse|address already in use|bind/i.test(last.message)) break;
      }
    }
    throw last ?? new Error('RabbitMQ did not start');
  });
}

async function launch(t: Teardown, o: RabbitmqOptions, dir: string, daemons: Daemon[]): Promise<RabbitmqServer> {
  const ports = new Set<number>();
  while (ports.size < 6) ports.add(await freePort());
  const [amqpPort, amqpsPort, httpPort, httpsPort, distPort, epmdPort] = [...ports] as [number, number, number, number, number, number];
  const admin = { user: 'admin', password: randomBytes(12).toString('hex') };
  for (const sub of ['home', 'mnesia', 'log']) await mkdir(join(dir, sub), { recursive: true });
  const file = (name: string) => join(dir, name);
  await writeFile(file('server.crt'), o.cert);
  await writeFile(file('server.key'), o.key, { mode: 0o600 });
  await writeFile(file('client-ca.crt'), o.clientCa);
  await writeFile(file('enabled_plugins'), '[rabbitmq_management,rabbitmq_auth_mechanism_ssl].\n');
  await writeFile(file('rabbitmq-env.conf'), '');
  await writeFile(
    file('rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
      `listeners.ssl.default = 127.0.0.1:${amqpsPort}`,
      `ssl_options.cacertfile = ${file('client-ca.crt')}`,
      `ssl_options.certfile = ${file('server.crt')}`,
      `ssl_options.keyfile = ${file('server.key')}`,
      'ssl_options.verify = verify_peer',
      'ssl_options.fail_if_no_peer_cert = false',
      'auth_mechanisms.1 = PLAIN',
      'auth_mechanisms.2 = AMQPLAIN',
      'auth_mechanisms.3 = EXTERNAL',
      'ssl_cert_login_from = common_name',
      `management.tcp.ip = 127.0.0.1`,
      `management.tcp.port = ${httpPort}`,
      `management.ssl.ip = 127.0.0.1`,
      `management.ssl.port = ${httpsPort}`,
      `management.ssl.cacertfile = ${file('client-ca.crt')}`,
      `management.ssl.certfile = ${file('server.crt')}`,
      `management.ssl.keyfile = ${file('server.key')}`,
      'management.ssl.verify = verify_peer',
      'management.ssl.fail_if_no_peer_cert = true',
      // Queue statistics every half second, and the management API's samples every second
      // (its interval is the finest of the retention policies; default 5 s): tests see changes
      // about a second after they happen.
      'collect_statistics_interval = 500',
      'management.sample_retention_policies.global.minute = 1',
      'management.sample_retention_policies.basic.minute = 1',
      'management.sample_retention_policies.detailed.10 = 1',
      `default_user = ${admin.user}`,
      `default_pass = ${admin.password}`,
      'default_user_tags.administrator = true',
      'default_permissions.configure = .*',
      'default_permissions.read = .*',
      'default_permissions.write = .*',
      'loopback_users = none',
      'log.file = false',
      'log.console = true',
      'log.console.level = warning',
      '',
    ].join('\n'),
  );

  const epmdBin = findProgram('epmd', ['/usr/lib/erlang/bin']) ?? 'epmd';
  daemons.push(
    await startDaemon(t, {
      name: `epmd (${epmdBin})`,
      bin: epmdBin,
      args: ['-address', '127.0.0.1', '-port', String(epmdPort)],
      startTimeoutMs: 10_000,
      ready: () => canConnect(epmdPort),
    }),
  );

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: file('home'),
    RABBITMQ_CONF_ENV_FILE: file('rabbitmq-env.conf'),
    RABBITMQ_CONFIG_FILE: file('rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: file('advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: file('enabled_plugins'),
    RABBITMQ_MNESIA_BASE: file('mnesia'),
    RABBITMQ_LOG_BASE: file('log'),
    RABBITMQ_NODENAME: `rabbit-${amqpPort}@localhost`,
    RABBITMQ_DIST_PORT: String(distPort),
    ERL_EPMD_PORT: String(epmdPort),
    ERL_CRASH_DUMP: file('erl_crash.dump'),
    // The script then execs the Erlang VM itself (no wrapper shell that traps signals): the
    // watchdog's SIGTERM reaches the broker, which shuts down cleanly.
    RUNNING_UNDER_SYSTEMD: 'true',
    // Never an epmd of the VM's own: the one above.
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-start_epmd false',
  };
  delete env.NOTIFY_SOCKET;

  const auth = `Basic ${Buffer.from(`${admin.user}:${admin.password}`).toString('base64')}`;
  const api = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const res = await httpJson(httpPort, method, path, auth, body);
    if (res.status < 200 || res.status > 299) throw new Error(`RabbitMQ ${method} ${path}: HTTP ${res.status} ${res.text.slice(0, 300)}`);
    return res.text === '' ? undefined : (JSON.parse(res.text) as unknown);
  };
  const daemon = await startDaemon(t, {
    name: `RabbitMQ (${RABBITMQ_SERVER})`,
    bin: RABBITMQ_SERVER,
    args: [],
    env,
    startTimeoutMs: 90_000,
    stopGraceMs: 20_000,
    ready: async () => (await httpJson(httpPort, 'GET', '/api/overview', auth)).status === 200,
  });
  daemons.push(daemon);

  const v = (vhost: string) => encodeURIComponent(vhost);
  const q = (queue: string) => encodeURIComponent(queue);
  return {
    amqpPort,
    amqpsPort,
    httpPort,
    httpsPort,
    daemon,
    api,
    logs: () => daemon.logs(),
    addVhost: async (name) => void (await api('PUT', `/api/vhosts/${v(name)}`, {})),
    addUser: async (name, password, vhosts, tags = 'monitoring') => {
      await api('PUT', `/api/users/${encodeURIComponent(name)}`, password === undefined ? { password_hash: '', tags } : { password, tags });
      for (const vhost of vhosts) await api('PUT', `/api/permissions/${v(vhost)}/${encodeURIComponent(name)}`, { configure: '.*', write: '.*', read: '.*' });
    },
    addQueue: async (vhost, name) => void (await api('PUT', `/api/queues/${v(vhost)}/${q(name)}`, { durable: true, auto_delete: false })),
    deleteQueue: async (vhost, name) => void (await api('DELETE', `/api/queues/${v(vhost)}/${q(name)}`)),
    publish: async (vhost, queue, count = 1) => {
      for (let i = 0; i < count; i++) {
        const r = (await api('POST', `/api/exchanges/${v(vhost)}/amq.default/publish`, {
          properties: { delivery_mode: 2 },
          routing_key: queue,
          payload: `message ${i}`,
          payload_encoding: 'string',
        })) as { routed?: boolean };
        if (r.routed !== true) throw new Error(`RabbitMQ: the message for ${vhost}/${queue} was not routed (no such queue?)`);
      }
    },
    purge: async (vhost, queue) => void (await api('DELETE', `/api/queues/${v(vhost)}/${q(queue)}/contents`)),
    messages: async (vhost, queue) => ((await api('GET', `/api/queues/${v(vhost)}/${q(queue)}`)) as { messages?: number }).messages,
    connections: async () => {
      const list = (await api('GET', '/api/connections')) as { user: string; vhost: string; ssl: boolean; client_properties?: { connection_name?: string } }[];
      return list.map(({ user, vhost, ssl, client_properties }) => ({ user, vhost, ssl, clientName: client_properties?.connection_name }));
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

function httpJson(port: number, method: string, path: string, authorization: string, body?: unknown, timeoutMs = 10_000): Promise<{ status: number; text: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        timeout: timeoutMs,
        headers: { authorization, connection: 'close', ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
