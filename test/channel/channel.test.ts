// The gRPC channel over real mutual TLS 1.3: calls, status codes, deadlines, the operator going
// away and coming back, and the rejections (foreign CA, no certificate, TLS 1.2).
import t from 'tap';
import { status } from '../../src/channel/status.js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ChannelClient } from '../../src/channel/client.js';
import { ChannelError, startChannelServer, type MetricsHandler, type RunningChannelServer } from '../../src/channel/server.js';
import { toWireTime, type ScaledObjectRef } from '../../src/channel/service.js';
import { GrpcMetrics } from '../../src/observability/metrics.js';
import { channelTls, createTestPki } from '../helpers/pki.js';
import { freePort } from '../helpers/adapter.js';
import { eventually } from '../helpers/loop.js';
import { sClient } from '../helpers/tools.js';

const pki = await createTestPki(t.testdir());
const log = pino({ level: 'silent' });


/** A handler the tests steer: values, delays and errors by metric name. */
const handler: MetricsHandler & { calls: ScaledObjectRef[] } = {
  calls: [],
  async getMetrics(ref) {
    this.calls.push(ref);
    if (ref.metricName === 'slow') await new Promise((r) => setTimeout(r, 2_000));
    if (ref.metricName === 'missing') throw new ChannelError(status.NOT_FOUND, `scaledobject ${ref.namespace}/${ref.name} not found`);
    if (ref.metricName === 'broken') throw new ChannelError(status.UNKNOWN, 'upstream said 500');
    return { metadata: {}, items: [{ metricName: ref.metricName, metricLabels: {}, timestamp: toWireTime(new Date()), value: { string: '42' } }] };
  },
};

const serverTls = await channelTls(pki.tls, pki.ca.certFile);
const port = await freePort();
const startServer = () =>
  startChannelServer({ bindAddress: `127.0.0.1:${port}`, tls: serverTls, trust: ['ca'], handler, metrics: new GrpcMetrics(new Registry(), 'server'), log, maxConnectionAgeMs: 60_000, maxConnectionAgeGraceMs: 5_000 });
let server: RunningChannelServer = await startServer();
t.teardown(() => server.shutdown(0));

const clientRegistry = new Registry();
const client = new ChannelClient({ address: `127.0.0.1:${port}`, tls: await channelTls(pki.tls, pki.ca.certFile), trust: ['ca'], timeoutMs: 800, readinessGraceMs: 300, metrics: new GrpcMetrics(clientRegistry, 'client'), log });
t.teardown(() => client.close());
const call = (metricName: string) => client.getMetrics({ name: 'web', namespace: 'shop', metricName }, new AbortController().signal);

t.test('a call goes through mutual TLS 1.3 and back', async (t) => {
  const list = await call('s0-metric-api-value');
  t.equal(list.items[0]!.value!.string, '42');
  t.same(handler.calls.at(-1), { name: 'web', namespace: 'shop', metricName: 's0-metric-api-value' });
  t.same(client.readiness(), { ready: true });
  const text = await clientRegistry.metrics();
  t.match(text, /grpc_client_handled_total\{grpc_service="api.MetricsService",grpc_method="GetMetrics",grpc_code="OK"\} 1/);
  t.match(text, /grpc_client_connection_state\{state="READY"\} 1/);
});

t.test('status codes and the deadline', async (t) => {
  await t.rejects(call('missing'), { code: status.NOT_FOUND, details: 'scaledobject shop/web not found' });
  await t.rejects(call('broken'), { code: status.UNKNOWN, details: 'upstream said 500' });
  const started = Date.now();
  await t.rejects(call('slow'), { code: status.DEADLINE_EXCEEDED });
  t.ok(Date.now() - started < 1_900, 'gave up at the deadline, not when the operator answered');
});

t.test('operator stops: UNAVAILABLE, readiness flips after the grace; it returns: recovered, same client', async (t) => {
  await server.shutdown(0);
  await t.rejects(call('s0-x'), { code: status.UNAVAILABLE });
  await eventually('readiness to flip', async () => (client.readiness().ready ? undefined : true), 5_000);
  t.match(client.readiness().reason, new RegExp(`channel to 127.0.0.1:${port} down for \\d+s`));
  server = await startServer();
  await eventually('the channel to recover', async () => {
    const ok = await call('s0-x').then(() => true, () => undefined);
    return ok && client.readiness().ready ? true : undefined;
  }, 10_000);
  t.same(client.readiness(), { ready: true });
});

t.test('the operator refuses a client certificate from another CA', async (t) => {
  const foreign = new ChannelClient({ address: `127.0.0.1:${port}`, tls: await channelTls(pki.foreignAdmin, pki.ca.certFile), trust: ['ca'], timeoutMs: 1_000, readinessGraceMs: 0, metrics: new GrpcMetrics(new Registry(), 'client'), log });
  t.teardown(() => foreign.close());
  const before = handler.calls.length;
  await t.rejects(foreign.getMetrics({ name: 'a', namespace: 'b', metricName: 'c' }, new AbortController().signal), { code: status.UNAVAILABLE });
  t.equal(handler.calls.length, before, 'the handler never ran');
});

t.test('the client refuses an operator whose certificate is from another CA', async (t) => {
  const wrongTrust = new ChannelClient({ address: `127.0.0.1:${port}`, tls: await channelTls(pki.admin, pki.otherCa.certFile), trust: ['ca'], timeoutMs: 1_000, readinessGraceMs: 0, metrics: new GrpcMetrics(new Registry(), 'client'), log });
  t.teardown(() => wrongTrust.close());
  await t.rejects(wrongTrust.getMetrics({ name: 'a', namespace: 'b', metricName: 'c' }, new AbortController().signal), { code: status.UNAVAILABLE });
});

t.test('openssl: TLS 1.2 and certificate-less clients are refused by the operator', async (t) => {
  const v12 = await sClient(port, ['-tls1_2', '-CAfile', pki.ca.certFile, '-cert', pki.admin.certFile, '-key', pki.admin.keyFile, '-alpn', 'h2']);
  t.match(v12.stdout + v12.stderr, /alert protocol version|unsupported protocol|wrong version number/i);
  const noCert = await sClient(port, ['-tls1_3', '-CAfile', pki.ca.certFile, '-alpn', 'h2']);
  t.match(noCert.stdout + noCert.stderr, /alert certificate required/i);
});

t.test('--metrics-service-grpc-authority: an operator dialled by IP is verified for the name its certificate covers', async (t) => {
  // The operator's certificate names only its Service, as the certificate lifecycle issues it.
  const serviceOnly = await pki.issue('ca', 'operator-service-only', { commonName: 'keda-operator', dnsNames: ['keda-operator.keda.svc'], extendedUsages: ['serverAuth', 'clientAuth'] });
  const otherPort = await freePort();
  const named = await startChannelServer({ bindAddress: `127.0.0.1:${otherPort}`, tls: await channelTls(serviceOnly, pki.ca.certFile), trust: ['ca'], handler, metrics: new GrpcMetrics(new Registry(), 'server'), log, maxConnectionAgeMs: 60_000, maxConnectionAgeGraceMs: 5_000 });
  t.teardown(() => named.shutdown(0));
  const dial = async (authority?: string) => {
    const c = new ChannelClient({ address: `127.0.0.1:${otherPort}`, ...(authority ? { authority } : {}), tls: await channelTls(pki.tls, pki.ca.certFile), trust: ['ca'], timeoutMs: 1_000, readinessGraceMs: 0, metrics: new GrpcMetrics(new Registry(), 'client'), log });
    t.teardown(() => c.close());
    return c.getMetrics({ name: 'web', namespace: 'shop', metricName: 's0-x' }, new AbortController().signal);
  };
  await t.rejects(dial(), { code: status.UNAVAILABLE }, 'by IP alone the certificate does not match');
  t.equal((await dial('keda-operator.keda.svc')).items[0]!.value!.string, '42', 'with the authority it does');
  await t.rejects(dial('someone-else.keda.svc'), { code: status.UNAVAILABLE }, 'and a name it does not cover is still refused');
});
