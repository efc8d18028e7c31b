// The plain-HTTP side port: Prometheus scrapes and kubelet probes, which must not depend on
// client certificates (the kubelet presents none).
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { listenHost } from '../config/bind-address.js';
import { probeResponse, type HealthChecks } from './health.js';

export function startMetricsServer(port: number, host: string, registry: Registry, health: HealthChecks): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (url.pathname === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
      return;
    }
    const probe = probeResponse(health, url.pathname, url.searchParams);
    if (probe) {
      res.writeHead(probe.code, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }).end(probe.body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, listenHost(host), () => resolve(server));
  });
}

export function stopMetricsServer(server: Server | undefined): Promise<void> {
  return new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
}
