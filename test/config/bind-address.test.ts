// Every listener reads an unspecified host (`:port`, 0.0.0.0, ::) as Go and Kubernetes do: every
// interface of both address families, so that an IPv6-only cluster reaches the adapter, its probes
// and the operator's channel. A specific address stays that address. (The webhook's `:port` is in
// test/operator/webhook/server.test.ts.)
import t from 'tap';
import { listenHost, parseBindAddress } from '../../src/config/bind-address.js';
import { pkiFlags, startTestAdapter } from '../helpers/adapter.js';
import { startTestChannelServer } from '../helpers/channel.js';
import { hasIpv6Loopback, tcpConnect } from '../helpers/ipv6.js';
import { createTestPki } from '../helpers/pki.js';

const ipv6 = hasIpv6Loopback();

t.test('bind addresses: host:port, [v6]:port and :port, anything else refused', async (t) => {
  const parse = (value: string) => parseBindAddress(value, 'webhook bind address');
  t.same(parse(':9443'), { host: undefined, port: 9443 });
  t.same(parse('127.0.0.1:9443'), { host: '127.0.0.1', port: 9443 });
  t.same(parse('[::1]:9443'), { host: '::1', port: 9443 });
  t.throws(() => parse('9443'), /expected host:port or :port/);
  t.throws(() => parse(':99999'), /expected host:port or :port/);
});

t.test('listenHost: unspecified hosts are every address family, others unchanged', async (t) => {
  const everywhere = ipv6 ? '::' : '0.0.0.0';
  for (const host of [undefined, '', '0.0.0.0', '::']) t.equal(listenHost(host), everywhere, `${JSON.stringify(host)} -> ${everywhere}`);
  for (const host of ['127.0.0.1', '::1', '10.1.2.3', 'fd00::2', 'localhost']) t.equal(listenHost(host), host);
  t.equal(parseBindAddress(':9666', 'x').host, undefined, '`:port` has no host');
  t.equal(parseBindAddress('[::]:9666', 'x').host, '::');
});

t.test('the listeners', { skip: ipv6 ? false : 'this machine has no IPv6 loopback to connect to' }, async (t) => {
  const pki = await createTestPki(t.testdir());

  t.test('the adapter on --bind-address=0.0.0.0 and --metrics-bind-address=::, the defaults\' forms', async (t) => {
    const adapter = await startTestAdapter([...pkiFlags(pki), '--bind-address=0.0.0.0', '--metrics-bind-address=::']);
    t.teardown(() => adapter.shutdown());
    for (const host of ['127.0.0.1', '::1']) {
      await t.resolves(tcpConnect(host, adapter.port), `HTTPS port over ${host}`);
      const probe = await fetch(`http://${host.includes(':') ? `[${host}]` : host}:${adapter.metricsPort}/livez`);
      t.equal(probe.status, 200, `/livez over ${host}`);
    }
  });

  t.test('a specific address is only that address', async (t) => {
    const adapter = await startTestAdapter([...pkiFlags(pki), '--bind-address=127.0.0.1', '--metrics-bind-address=::1']);
    t.teardown(() => adapter.shutdown());
    await t.resolves(tcpConnect('127.0.0.1', adapter.port));
    await t.rejects(tcpConnect('::1', adapter.port), { code: 'ECONNREFUSED' }, 'the HTTPS port is not on ::1');
    await t.resolves(tcpConnect('::1', adapter.metricsPort));
    await t.rejects(tcpConnect('127.0.0.1', adapter.metricsPort), { code: 'ECONNREFUSED' }, 'the metrics port is not on 127.0.0.1');
  });

  t.test('the operator\'s channel on KEDA\'s `:port` and on 0.0.0.0:port', async (t) => {
    const handler = { getMetrics: () => Promise.reject(new Error('not asked')) };
    for (const bindAddress of [':0', '0.0.0.0:0']) {
      const server = await startTestChannelServer(t, pki, handler, { bindAddress });
      for (const host of ['127.0.0.1', '::1']) await t.resolves(tcpConnect(host, server.port), `${bindAddress}: over ${host}`);
    }
  });
});

