// A real Prometheus server for tests: Debian's /usr/bin/prometheus on 127.0.0.1, scraping every
// second a /metrics target whose gauges the test sets, optionally behind TLS (with or without
// required client certificates) and basic auth through its --web.config.file. For the auth that
// Prometheus does not do itself (bearer tokens, custom headers) there is a small HTTPS reverse
// proxy in front of it, the way kube-rbac-proxy or a Thanos querier gateway is deployed.
//
// Every process and server started here is stopped at the test's teardown (Prometheus through
// ./daemon.ts, whose watchdog stops it even when the test process is killed outright).
import { writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { inTempDir, startDaemon, withFreePort, type Daemon, type Teardown } from './daemon.js';

/** Debian's package puts it at /usr/bin/prometheus; scripts/require-system-tools.mjs installs it. */
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? 'prometheus';

export type { Teardown } from './daemon.js';

// --- the scrape target ------------------------------------------------------------------------

export interface MetricsTarget {
  /** host:port, as Prometheus' static_configs want it. */
  readonly address: string;
  /** Scrapes served so far. */
  readonly scrapes: number;
  /** Sets a gauge sample (NaN and ±Infinity are written as Prometheus writes them). */
  set(name: string, value: number, labels?: Record<string, string>): void;
  /** Removes a sample: Prometheus marks the series stale at the next scrape. */
  remove(name: string, labels?: Record<string, string>): void;
}

/** A node:http server on 127.0.0.1 that answers /metrics in the text exposition format. */
export async function startMetricsTarget(t: Teardown): Promise<MetricsTarget> {
  const samples = new Map<string, { name: string; labels: string; value: number }>();
  let scrapes = 0;
  const labelText = (labels: Record<string, string> = {}): string => {
    const parts = Object.entries(labels)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
    return parts.length ? `{${parts.join(',')}}` : '';
  };
  const formatValue = (v: number): string => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));
  const server = createHttpServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    scrapes++;
    const names = [...new Set([...samples.values()].map((s) => s.name))].sort();
    const lines: string[] = [];
    for (const name of names) {
      lines.push(`# TYPE ${name} gauge`);
      for (const s of samples.values()) if (s.name === name) lines.push(`${name}${s.labels} ${formatValue(s.value)}`);
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(`${lines.join('\n')}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => closeServer(server));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    get scrapes() {
      return scrapes;
    },
    set(name, value, labels) {
      const l = labelText(labels);
      samples.set(`${name}${l}`, { name, labels: l, value });
    },
    remove(name, labels) {
      samples.delete(`${name}${labelText(labels)}`);
    },
  };
}

// --- Prometheus -------------------------------------------------------------------------------

export interface PrometheusOptions {
  target: MetricsTarget;
  /** Serve HTTPS with this certificate (its `ca` is what the helper's own client trusts). */
  tls?: {
    cert: string;
    key: string;
    /** The CA that issued `cert`: for the helper's own requests (readiness, the proxy). */
    ca: string;
    /** Require client certificates signed by this CA (client_auth_type RequireAndVerifyClientCert). */
    clientCa?: string;
    /** The client certificate the helper's own requests present when clientCa is set. */
    client?: { cert: string; key: string };
  };
  /** Require basic auth. Prometheus stores bcrypt hashes only: the test gives the hash too. */
  basicAuth?: { username: string; password: string; bcryptHash: string };
  /** How long start-up may take, readiness and the first scrape included (default 90 s). */
  startTimeoutMs?: number;
}

/** How to talk to a Prometheus (or anything in front of it) as a trusted client. */
export interface ClientOptions {
  ca?: string;
  cert?: string;
  key?: string;
  headers?: Record<string, string>;
}

export interface PrometheusServer {
  /** http(s)://127.0.0.1:<port>: what a trigger's serverAddress is. */
  readonly url: string;
  readonly port: number;
  /** What the helper's own requests use (trust, client certificate, basic auth). */
  readonly client: ClientOptions;
  /** An instant query through the helper's own client: the parsed JSON answer. */
  query(promql: string): Promise<PromAnswer>;
  /** The last lines Prometheus logged. */
  logs(): string;
}

export interface PromAnswer {
  status: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
  error?: string;
}

/**
 * Starts Prometheus and waits until it is ready and has scraped the target once. Stopped (and its
 * storage removed) at teardown. A port lost to a race between choosing and binding it is retried.
 */
export async function startPrometheus(t: Teardown, opts: PrometheusOptions): Promise<PrometheusServer> {
  return inTempDir(t, 'keda-ts-prometheus-', (dir, daemons) => launch(t, opts, dir, daemons));
}

async function launch(t: Teardown, opts: PrometheusOptions, dir: string, daemons: Daemon[]): Promise<PrometheusServer> {
  const scheme = opts.tls ? 'https' : 'http';
  const client: ClientOptions = {
    ...(opts.tls ? { ca: opts.tls.ca } : {}),
    ...(opts.tls?.clientCa && opts.tls.client ? { cert: opts.tls.client.cert, key: opts.tls.client.key } : {}),
    ...(opts.basicAuth ? { headers: { authorization: `Basic ${Buffer.from(`${opts.basicAuth.username}:${opts.basicAuth.password}`).toString('base64')}` } } : {}),
  };

  await writeFile(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1m',
      'scrape_configs:',
      '  - job_name: target',
      '    static_configs:',
      `      - targets: ['${opts.target.address}']`,
      '',
    ].join('\n'),
  );
  const args = ['--config.file', join(dir, 'prometheus.yml'), '--storage.tsdb.retention.time', '1h', '--log.level', 'info'];
  if (opts.tls || opts.basicAuth) {
    const web: string[] = [];
    if (opts.tls) {
      await writeFile(join(dir, 'server.crt'), opts.tls.cert);
      await writeFile(join(dir, 'server.key'), opts.tls.key, { mode: 0o600 });
      web.push('tls_server_config:', `  cert_file: ${join(dir, 'server.crt')}`, `  key_file: ${join(dir, 'server.key')}`);
      if (opts.tls.clientCa) {
        await writeFile(join(dir, 'client-ca.crt'), opts.tls.clientCa);
        web.push('  client_auth_type: RequireAndVerifyClientCert', `  client_ca_file: ${join(dir, 'client-ca.crt')}`);
      }
    }
    if (opts.basicAuth) web.push('basic_auth_users:', `  ${opts.basicAuth.username}: '${opts.basicAuth.bcryptHash}'`);
    await writeFile(join(dir, 'web.yml'), `${web.join('\n')}\n`);
    args.push('--web.config.file', join(dir, 'web.yml'));
  }

  let attempt = 0;
  return withFreePort(async (port) => {
    const server: PrometheusServer = {
      url: `${scheme}://127.0.0.1:${port}`,
      port,
      client,
      query: async (promql) => {
        const res = await fetchText(`${scheme}://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`, client);
        try {
          return JSON.parse(res.text) as PromAnswer;
        } catch {
          throw new Error(`Prometheus answered HTTP ${res.status}: ${res.text.slice(0, 200)}`);
        }
      },
      logs: () => daemons.at(-1)?.logs() ?? '',
    };
    let up = false;
    const daemon = await startDaemon(t, {
      name: `Prometheus (${PROMETHEUS_BIN})`,
      bin: PROMETHEUS_BIN,
      args: [...args, '--storage.tsdb.path', join(dir, `data-${++attempt}`), '--web.listen-address', `127.0.0.1:${port}`],
      startTimeoutMs: opts.startTimeoutMs ?? 90_000,
      // Ready: the TSDB is open and the web handler serves; then the first scrape landed (the
      // scrape manager applies its targets only after ~5 s).
      ready: async () => {
        up ||= (await fetchText(`${server.url}/-/ready`, client)).status === 200;
        if (!up) return false;
        const answer = await server.query('up{job="target"}');
        return answer.data?.result.length === 1 && answer.data.result[0]!.value[1] === '1';
      },
    });
    daemons.push(daemon);
    return server;
  });
}

// --- a reverse proxy that checks credentials Prometheus cannot ----------------------------------

export interface ProxyRequest {
  url: string;
  headers: IncomingHttpHeaders;
  authorized: boolean;
}

export interface AuthProxy {
  readonly url: string;
  readonly requests: ProxyRequest[];
}

/**
 * An HTTPS reverse proxy in front of `upstream`: a request that `authorize` accepts is forwarded
 * (with the helper's own credentials for Prometheus), anything else gets 401 Unauthorized.
 * `authorize` may answer later (a promise), e.g. after a TokenReview as kube-rbac-proxy does; a
 * rejected promise counts as a refusal. Every request is recorded once decided, so a test can see
 * what the scaler sent.
 */
export async function startAuthProxy(
  t: Teardown,
  o: { upstream: PrometheusServer; cert: string; key: string; authorize: (req: IncomingMessage) => boolean | Promise<boolean> },
): Promise<AuthProxy> {
  const requests: ProxyRequest[] = [];
  const server = createHttpsServer({ cert: o.cert, key: o.key }, (req, res) => {
    const decision = o.authorize(req);
    if (typeof decision === 'boolean') return serve(req, res, decision);
    decision.then(
      (authorized) => serve(req, res, authorized),
      () => serve(req, res, false),
    );
  });
  const serve = (req: IncomingMessage, res: ServerResponse, authorized: boolean): void => {
    requests.push({ url: req.url ?? '', headers: req.headers, authorized });
    if (!authorized) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="prometheus"' });
      res.end('Unauthorized\n');
      return;
    }
    fetchText(`${o.upstream.url}${req.url ?? '/'}`, o.upstream.client).then(
      (up) => {
        res.writeHead(up.status, { 'content-type': up.contentType ?? 'application/json' });
        res.end(up.text);
      },
      (err: Error) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`bad gateway: ${err.message}\n`);
      },
    );
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => closeServer(server));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

// --- small things -----------------------------------------------------------------------------

function fetchText(url: string, c: ClientOptions, timeoutMs = 5000): Promise<{ status: number; text: string; contentType: string | undefined }> {
  const u = new URL(url);
  const doRequest = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = doRequest(
      u,
      {
        method: 'GET',
        agent: false,
        headers: { ...(c.headers ?? {}), connection: 'close' },
        timeout: timeoutMs,
        ...(u.protocol === 'https:' ? { ca: c.ca, servername: 'localhost', ...(c.cert ? { cert: c.cert, key: c.key } : {}) } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), contentType: res.headers['content-type'] }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
}

