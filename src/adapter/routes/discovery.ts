import type { FastifyInstance, FastifyReply } from 'fastify';
import { GROUP, GROUP_VERSION, discovery } from '../api-types.js';
import { readOnly } from './read-only.js';

const send = (body: string) => async (_req: unknown, reply: FastifyReply) => reply.type('application/json').send(body);

// Served as a plain APIGroupList even when the aggregator asks for aggregated discovery (v2):
// it then falls back to these documents, which is what the contract allows.
export async function discoveryRoutes(app: FastifyInstance): Promise<void> {
  readOnly(app, '/apis', 'discovery', send(discovery.apis));
  readOnly(app, `/apis/${GROUP}`, 'discovery', send(discovery.group));
  readOnly(app, `/apis/${GROUP_VERSION}`, 'discovery', send(discovery.resources));
}
