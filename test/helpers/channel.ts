// The operator's end of the channel for tests: on 127.0.0.1 unless told otherwise, with an identity from the test PKI
// trusting its CA as the bundle `ca`, stopped at the test's teardown.
import type { Test } from 'tap';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startChannelServer, type MetricsHandler, type RunningChannelServer } from '../../src/channel/server.js';
import { GrpcMetrics } from '../../src/observability/metrics.js';
import { channelTls, type Pair, type TestPki } from './pki.js';

export interface TestChannelServerOptions {
  identity?: Pair;
  /** 0 (default): any free port. */
  port?: number;
  /** Instead of 127.0.0.1:port. */
  bindAddress?: string;
  maxConnectionAgeMs?: number;
  maxConnectionAgeGraceMs?: number;
}

export async function startTestChannelServer(t: Test, pki: TestPki, handler: MetricsHandler, options: TestChannelServerOptions = {}): Promise<RunningChannelServer> {
  const server = await startChannelServer({
    bindAddress: options.bindAddress ?? `127.0.0.1:${options.port ?? 0}`,
    tls: await channelTls(options.identity ?? pki.tls, pki.ca.certFile),
    trust: ['ca'],
    handler,
    metrics: new GrpcMetrics(new Registry(), 'server'),
    log: pino({ level: 'silent' }),
    maxConnectionAgeMs: options.maxConnectionAgeMs ?? 600_000,
    maxConnectionAgeGraceMs: options.maxConnectionAgeGraceMs ?? 1_000,
  });
  t.teardown(() => server.shutdown(0));
  return server;
}
