// The adapter's HTTPS API: TLS 1.3 with client certificates, then one way through for every
// request: authenticate -> authorize -> route -> provider. Errors leave as Kubernetes Status.
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyError } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { HttpMetrics } from '../observability/metrics.js';
import type { HealthChecks } from '../observability/health.js';
import { StatusError, forbidden, notFound, unauthorized, type Status } from '../k8s/status.js';
import type { LiveTls } from '../tls/live-tls.js';
import { followLiveTls } from '../tls/live-server.js';
import type { Authenticator } from './auth/authenticate.js';
import type { Authorizer } from './auth/authorize.js';
import { requestInfo, type RequestInfo } from './auth/request-info.js';
import type { UserInfo } from './auth/user.js';
import type { ExternalMetricsProvider } from './provider.js';
import { discoveryRoutes } from './routes/discovery.js';
import { healthRoutes } from './routes/health.js';
import { metricRoutes } from './routes/metrics.js';
import { openapiRoutes } from './routes/openapi.js';

declare module 'fastify' {
  interface FastifyRequest {
    info: RequestInfo;
    user: UserInfo;
  }
}

/** The bundles HTTPS clients are verified against (never the channel's ca.crt). */
export const CLIENT_TRUST = ['client-ca', 'requestheader-client-ca'] as const;

export interface AdapterServerDeps {
  clientCertMode: 'require' | 'request';
  tls: LiveTls;
  provider: ExternalMetricsProvider;
  authenticator: Authenticator;
  authorizer: Authorizer;
  registry: Registry;
  health: HealthChecks;
  log: Logger;
}

export async function buildAdapterServer(deps: AdapterServerDeps): Promise<FastifyInstance> {
  const metrics = new HttpMetrics(deps.registry, 'adapter');
  const app = Fastify({
    loggerInstance: deps.log as unknown as FastifyBaseLogger,
    // Per-request lines would dominate the hot path; failures are logged where they happen.
    logController: new LogController({ disableRequestLogging: true }),
    https: {
      ...deps.tls.secureContextOptions(CLIENT_TRUST),
      requestCert: true,
      rejectUnauthorized: deps.clientCertMode === 'require',
    },
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    clientErrorHandler: writeClientError,
  });

  followLiveTls(app.server as unknown as TlsServer, deps.tls, CLIENT_TRUST);

  app.decorateRequest('info', null as never);
  app.decorateRequest('user', null as never);

  app.addHook('onRequest', async (req, reply) => {
    metrics.inFlight.inc();
    reply.raw.once('close', () => metrics.inFlight.dec());
    req.info = requestInfo(req.method, req.url);
    const result = await deps.authenticator.authenticate(req.raw);
    if (!result || 'error' in result) {
      if (result) req.log.info({ path: req.info.path, reason: result.error }, 'authentication failed');
      throw unauthorized();
    }
    req.user = result.user;
    const decision = await deps.authorizer.authorize(req.user, req.info);
    if (decision.decision !== 'allow') {
      throw forbidden(req.user.name, req.info, decision.decision === 'deny' ? decision.reason : '');
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    const pathClass = req.routeOptions.config?.pathClass ?? 'other';
    metrics.requests.inc({ verb: req.method, path: pathClass, code: String(reply.statusCode) });
    metrics.duration.observe({ verb: req.method, path: pathClass }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler(async (err: FastifyError | StatusError, req, reply) => {
    const status = toStatusError(err);
    // A Status we chose (a source's failure, kube-apiserver unreachable) is a reason, said in one
    // line; anything else is a bug, logged with its stack.
    if (status.code >= 500) {
      if (err instanceof StatusError) req.log.warn({ path: req.url, code: status.code, reason: status.message }, 'request failed');
      else req.log.error({ err, path: req.url }, 'request failed');
    }
    return reply.code(status.code).type('application/json').send(JSON.stringify(status.toStatus()));
  });

  app.setNotFoundHandler(async () => {
    throw notFound('the server could not find the requested resource');
  });

  await app.register(discoveryRoutes);
  await app.register(metricRoutes, { provider: deps.provider });
  await app.register(openapiRoutes);
  await app.register(healthRoutes, { health: deps.health });
  return app;
}

function toStatusError(err: FastifyError | StatusError): StatusError {
  if (err instanceof StatusError) return err;
  const code = err.statusCode ?? 500;
  if (code === 413) return new StatusError(413, 'RequestEntityTooLarge', err.message);
  if (code >= 400 && code < 500) return new StatusError(400, 'BadRequest', err.message);
  return new StatusError(500, 'InternalError', `Internal error occurred: ${err.message}`);
}

/** Malformed HTTP and oversized headers, answered before Fastify sees a request. */
function writeClientError(err: Error & { code?: string }, socket: Socket | TLSSocket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const status: Status = new StatusError(
    tooLarge ? 431 : 400,
    'BadRequest',
    tooLarge ? 'request header fields too large' : 'malformed HTTP request',
  ).toStatus();
  const body = JSON.stringify(status);
  socket.end(
    `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
