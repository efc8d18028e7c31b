import type { FastifyInstance, RouteHandlerMethod } from 'fastify';
import { methodNotAllowed } from '../../k8s/status.js';

export type PathClass = 'discovery' | 'metric' | 'openapi' | 'health' | 'version' | 'other';

declare module 'fastify' {
  interface FastifyContextConfig {
    pathClass?: PathClass;
  }
}

/** Every API path here is read-only: GET (and HEAD) serve, other methods get a 405 Status. */
export function readOnly(app: FastifyInstance, url: string, pathClass: PathClass, handler: RouteHandlerMethod, schema?: object): void {
  app.get(url, { config: { pathClass }, ...(schema ? { schema } : {}) }, handler);
  app.route({
    method: ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url,
    config: { pathClass },
    // Refused in onRequest (after authentication and authorization), before any body is parsed.
    onRequest: async (req) => {
      throw methodNotAllowed(req.method);
    },
    handler: async () => undefined,
  });
}
