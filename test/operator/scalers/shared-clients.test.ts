// Connection sharing between scalers: one client per identity and trust bundle, counted by its
// users, lingering briefly after the last one leaves, and a new one when the --ca-dir trust changes.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { createCA } from '../../../src/certs/x509.js';
import { SharedClients, TrustedLease, connectionIdentity, loadOnFirstUse } from '../../../src/operator/scalers/shared-clients.js';
import { CustomCaTrust } from '../../../src/tls/custom-ca.js';
import { eventually } from '../../helpers/loop.js';

interface FakeConnection {
  id: number;
  trust: string;
  closed: boolean;
}

function pool(lingerMs: number) {
  let made = 0;
  const clients = new SharedClients<FakeConnection>({ close: (c) => void (c.closed = true), lingerMs });
  const make = (trust = '') => ({ id: ++made, trust, closed: false });
  return { clients, make, made: () => made };
}

t.test('one client per identity, however many users', async (t) => {
  const { clients, make, made } = pool(10_000);
  const a = clients.acquire(connectionIdentity('redis', '10.0.0.1', 6379, 0, 'pw'), make);
  const b = clients.acquire(connectionIdentity('redis', '10.0.0.1', 6379, 0, 'pw'), make);
  const other = clients.acquire(connectionIdentity('redis', '10.0.0.1', 6379, 1, 'pw'), make);
  t.equal(a.client, b.client, 'same identity, same client');
  t.not(a.client, other.client, 'another database is another client');
  t.equal(made(), 2);
  t.equal(clients.size, 2);
  a.release();
  a.release();
  t.equal(b.client.closed, false, 'a release twice counts once: the other user keeps it');
  b.release();
  other.release();
});

t.test('the last user leaving closes the client after the linger time, unless it is taken again', async (t) => {
  const { clients, make } = pool(50);
  const first = clients.acquire('x', make);
  first.release();
  const again = clients.acquire('x', make);
  t.equal(again.client, first.client, 'taken again while lingering: no reconnect');
  again.release();
  await eventually('the client to close', async () => (first.client.closed ? true : undefined), 2000);
  t.equal(clients.size, 0);
  const fresh = clients.acquire('x', make);
  t.not(fresh.client, first.client, 'after closing, a new client');
  fresh.release();
});

t.test('discard closes a broken client now; the next acquire makes a new one', async (t) => {
  const { clients, make } = pool(10_000);
  const a = clients.acquire('x', make);
  clients.discard(a.client);
  t.equal(a.client.closed, true);
  const b = clients.acquire('x', make);
  t.not(b.client, a.client);
  a.release();
  t.equal(b.client.closed, false, 'a stale release does not touch the new client');
  b.release();
});

t.test('a client library is loaded at the first use, once', async (t) => {
  const trust = new CustomCaTrust([], pino({ level: 'silent' }));
  const { clients } = pool(0);
  let loads = 0;
  const library = loadOnFirstUse(async () => {
    loads++;
    return { connect: (bundle: string) => ({ id: 1, trust: bundle, closed: false }) };
  });
  const lease = new TrustedLease(clients, trust, 'db', (bundle, lib) => lib.connect(bundle), library);
  t.equal(loads, 0, 'not loaded by building the lease');
  const a = await lease.get();
  t.equal(a.trust, trust.caBundle(), 'made by the loaded library');
  await lease.get();
  await new TrustedLease(clients, trust, 'db', (bundle, lib) => lib.connect(bundle), library).get();
  t.equal(loads, 1, 'loaded once');
  lease.close();
  await t.rejects(lease.get(), /closed/, 'a lease closed while loading leases nothing');
});

t.test('a lease follows the --ca-dir trust: a new client for a new bundle, the old one released', async (t) => {
  const dir = t.testdir();
  const trust = new CustomCaTrust([dir], pino({ level: 'silent' }), { debounceMs: 20, resyncMs: 0 });
  await trust.start();
  t.teardown(() => trust.close());
  const { clients, make } = pool(0);
  const lease1 = new TrustedLease(clients, trust, 'redis|host|6379', (bundle) => make(bundle));
  const lease2 = new TrustedLease(clients, trust, 'redis|host|6379', (bundle) => make(bundle));
  const before = await lease1.get();
  t.equal(await lease2.get(), before, 'two scalers, one client');
  t.equal(await lease1.get(), before, 'unchanged trust, same client');

  const ca = await createCA({ commonName: 'new upstream CA' });
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await eventually('the trust to change', async () => (trust.caBundle() !== before.trust ? true : undefined), 5000);
  const after = await lease1.get();
  t.not(after, before, 'a new client for the new trust');
  t.ok(after.trust.includes(ca.certPem.trim().split('\n')[1]!), 'made with the new bundle');
  t.equal(before.closed, false, 'the old client stays while another scaler still uses it');
  t.equal(await lease2.get(), after, 'the other scaler moves over on its next use');
  await eventually('the old client to close', async () => (before.closed ? true : undefined), 2000);

  lease1.close();
  lease2.close();
  await t.rejects(lease1.get(), /closed/);
});
