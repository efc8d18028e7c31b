import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OPENAPI_V3_GV_PATH, etag, openapiV2, openapiV3Discovery, openapiV3GroupVersion } from '../openapi.js';
import { readOnly } from './read-only.js';

// The aggregator polls these every minute with If-None-Match; a 304 saves it re-merging the spec.
function cached(body: string) {
  const tag = etag(body);
  return async (req: FastifyRequest, reply: FastifyReply) => {
    reply.header('etag', tag).header('cache-control', 'no-cache, private');
    if (req.headers['if-none-match'] === tag) return reply.code(304).send();
    return reply.type('application/json').send(body);
  };
}

export async function openapiRoutes(app: FastifyInstance): Promise<void> {
  readOnly(app, '/openapi/v2', 'openapi', cached(openapiV2));
  readOnly(app, '/openapi/v3', 'openapi', cached(openapiV3Discovery));
  readOnly(app, OPENAPI_V3_GV_PATH, 'openapi', cached(openapiV3GroupVersion));
}
