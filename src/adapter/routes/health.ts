import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { probeResponse, type HealthChecks } from '../../observability/health.js';
import { notFound } from '../../k8s/status.js';
import { readOnly } from './read-only.js';

const VERSION_INFO = JSON.stringify({
  major: '0',
  minor: '1',
  gitVersion: 'v0.1.0',
  gitCommit: process.env.GIT_COMMIT ?? 'unknown',
  gitTreeState: 'clean',
  buildDate: process.env.BUILD_DATE ?? 'unknown',
  goVersion: `node ${process.version}`,
  compiler: 'tsc',
  platform: `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
});

export async function healthRoutes(app: FastifyInstance, opts: { health: HealthChecks }): Promise<void> {
  const probe = async (req: FastifyRequest, reply: FastifyReply) => {
    const url = new URL(req.url, 'https://localhost');
    const r = probeResponse(opts.health, url.pathname, url.searchParams);
    if (!r) throw notFound(`no health check at ${url.pathname}`);
    return reply.code(r.code).type('text/plain; charset=utf-8').header('x-content-type-options', 'nosniff').send(r.body);
  };
  for (const p of ['healthz', 'livez', 'readyz']) {
    readOnly(app, `/${p}`, 'health', probe);
    readOnly(app, `/${p}/:check`, 'health', probe);
  }
  readOnly(app, '/version', 'version', async (_req, reply) => reply.type('application/json').send(VERSION_INFO));
}
