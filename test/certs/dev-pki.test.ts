import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { DEV_PKI_FILES, PkiExistsError, generateDevPki } from '../../src/certs/dev-pki.js';
import { describeCertificate } from '../../src/certs/x509.js';

const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';

/** The file-name contract, spelled out rather than imported. */
const FILES = [
  'ca.key',
  'ca.crt',
  'front-proxy-ca.key',
  'front-proxy-ca.crt',
  'tls.key',
  'tls.crt',
  'front-proxy-client.key',
  'front-proxy-client.crt',
  'admin.key',
  'admin.crt',
  'user.key',
  'user.crt',
];

const DEFAULT_DNS_NAMES = [
  'localhost',
  'keda-operator',
  'keda-operator.keda',
  'keda-operator.keda.svc',
  'keda-operator.keda.svc.cluster.local',
  'keda-metrics-apiserver',
  'keda-metrics-apiserver.keda',
  'keda-metrics-apiserver.keda.svc',
  'keda-metrics-apiserver.keda.svc.cluster.local',
  'keda-admission-webhooks',
  'keda-admission-webhooks.keda',
  'keda-admission-webhooks.keda.svc',
  'keda-admission-webhooks.keda.svc.cluster.local',
];

const mode = (path: string) => statSync(path).mode & 0o777;
const read = (dir: string, name: string) => readFileSync(join(dir, name), 'utf8');
const cert = (dir: string, name: string) => new X509Certificate(read(dir, name));
const sorted = (names: string[]) => [...names].sort();

function opensslVerify(caPath: string, purpose: 'sslserver' | 'sslclient', leafPath: string) {
  const r = spawnSync('openssl', ['verify', '-CAfile', caPath, '-purpose', purpose, leafPath], { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

interface Party {
  cert: string;
  key: string;
  ca: string;
}

/** TLS 1.3 over loopback; the server requests a client certificate but reports instead of rejecting. */
async function handshake(serverSide: Party, clientSide: Party & { servername?: string }) {
  const server = tls.createServer({ ...serverSide, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  const serverOutcome = new Promise<{ authorized: boolean; authorizationError: string | null; peer: unknown }>(
    (resolve) => {
      server.on('secureConnection', (socket) => {
        resolve({
          authorized: socket.authorized,
          authorizationError: socket.authorizationError == null ? null : String(socket.authorizationError),
          peer: { ...socket.getPeerCertificate().subject },
        });
        socket.end('ok');
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const client = await new Promise<{ protocol: string | null; authorized: boolean; received: string }>(
      (resolve, reject) => {
        let received = '';
        let protocol: string | null = null;
        const socket = tls.connect({ host: '127.0.0.1', port, ...clientSide, minVersion: 'TLSv1.3' });
        socket.setEncoding('utf8');
        socket.on('secureConnect', () => (protocol = socket.getProtocol()));
        socket.on('data', (chunk: string) => (received += chunk));
        socket.on('error', reject);
        socket.on('close', () => resolve({ protocol, authorized: socket.authorized, received }));
      },
    );
    return { client, server: await serverOutcome };
  } finally {
    server.close();
  }
}

t.test('default development PKI', async (t) => {
  const outDir = join(t.testdir(), 'created', 'pki');
  const { files } = await generateDevPki({ outDir });

  t.test('file set, order and modes', async (t) => {
    t.same(DEV_PKI_FILES, FILES);
    t.same(
      files,
      FILES.map((f) => join(outDir, f)),
    );
    t.same(sorted(readdirSync(outDir)), sorted(FILES), 'exactly these files, no temp leftovers');
    t.equal(mode(outDir), 0o700, 'created directory is private');
    for (const f of FILES) t.equal(mode(join(outDir, f)), f.endsWith('.key') ? 0o600 : 0o644, `mode of ${f}`);
  });

  t.test('every key matches its certificate and is PKCS#8', async (t) => {
    for (const pair of ['ca', 'front-proxy-ca', 'tls', 'front-proxy-client', 'admin', 'user']) {
      const keyPem = read(outDir, `${pair}.key`);
      t.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/, `${pair}.key`);
      t.equal(cert(outDir, `${pair}.crt`).checkPrivateKey(createPrivateKey(keyPem)), true, `${pair} pair`);
      t.equal(createPrivateKey(keyPem).asymmetricKeyType, 'ec');
    }
  });

  t.test('the two CAs are distinct self-signed roots', async (t) => {
    const ca = cert(outDir, 'ca.crt');
    const fpCa = cert(outDir, 'front-proxy-ca.crt');
    t.equal(ca.subject, 'CN=keda-ts development CA');
    t.equal(fpCa.subject, 'CN=keda-ts front-proxy CA');
    for (const c of [ca, fpCa]) {
      t.equal(c.ca, true);
      t.equal(c.verify(c.publicKey), true);
    }
    t.equal(ca.checkIssued(fpCa), false);
    t.equal(fpCa.verify(ca.publicKey), false);
  });

  t.test('serving/client certificate tls.crt', async (t) => {
    const tlsCert = cert(outDir, 'tls.crt');
    t.same(describeCertificate(read(outDir, 'tls.crt')), {
      subject: 'CN=keda-ts',
      issuer: 'CN=keda-ts development CA',
      serialNumber: tlsCert.serialNumber,
      dnsNames: DEFAULT_DNS_NAMES,
      ipAddresses: ['127.0.0.1', '::1'],
      notBefore: tlsCert.validFromDate,
      notAfter: tlsCert.validToDate,
      isCA: false,
    });
    t.equal(
      tlsCert.subjectAltName,
      [...DEFAULT_DNS_NAMES.map((n) => `DNS:${n}`), 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1'].join(', '),
    );
    t.same(tlsCert.keyUsage, [EKU_SERVER, EKU_CLIENT]);
    t.equal(tlsCert.checkIssued(cert(outDir, 'ca.crt')), true);
    for (const purpose of ['sslserver', 'sslclient'] as const) {
      t.same(opensslVerify(join(outDir, 'ca.crt'), purpose, join(outDir, 'tls.crt')), {
        code: 0,
        out: `${join(outDir, 'tls.crt')}: OK\n`,
      });
    }
  });

  t.test('front-proxy client chains to the front-proxy CA only', async (t) => {
    const client = cert(outDir, 'front-proxy-client.crt');
    const fpCa = cert(outDir, 'front-proxy-ca.crt');
    const ca = cert(outDir, 'ca.crt');
    t.equal(client.subject, 'CN=front-proxy-client');
    t.same(client.keyUsage, [EKU_CLIENT]);
    t.equal(client.checkIssued(fpCa), true);
    t.equal(client.verify(fpCa.publicKey), true);
    t.equal(client.checkIssued(ca), false);
    t.equal(client.verify(ca.publicKey), false);
    const clientPath = join(outDir, 'front-proxy-client.crt');
    t.same(opensslVerify(join(outDir, 'front-proxy-ca.crt'), 'sslclient', clientPath), {
      code: 0,
      out: `${clientPath}: OK\n`,
    });
    const wrongCa = opensslVerify(join(outDir, 'ca.crt'), 'sslclient', clientPath);
    t.equal(wrongCa.code, 2);
    t.match(wrongCa.out, 'error 20 at 0 depth lookup: unable to get local issuer certificate');
  });

  t.test('admin and user client certificates', async (t) => {
    const ca = cert(outDir, 'ca.crt');
    const expected = { 'admin.crt': 'O=system:masters\nCN=admin', 'user.crt': 'CN=user' };
    for (const [name, subject] of Object.entries(expected)) {
      const c = cert(outDir, name);
      t.equal(c.subject, subject, name);
      t.equal(c.issuer, 'CN=keda-ts development CA');
      t.equal(c.checkIssued(ca), true);
      t.equal(c.subjectAltName, undefined);
      t.same(c.keyUsage, [EKU_CLIENT]);
      t.same(opensslVerify(join(outDir, 'ca.crt'), 'sslclient', join(outDir, name)), {
        code: 0,
        out: `${join(outDir, name)}: OK\n`,
      });
      const asServer = opensslVerify(join(outDir, 'ca.crt'), 'sslserver', join(outDir, name));
      t.equal(asServer.code, 2, `${name} is not a serving certificate`);
    }
  });

  t.test('mutual TLS 1.3 with tls.crt and the admin certificate', async (t) => {
    const serverSide = { cert: read(outDir, 'tls.crt'), key: read(outDir, 'tls.key'), ca: read(outDir, 'ca.crt') };
    const admin = { cert: read(outDir, 'admin.crt'), key: read(outDir, 'admin.key'), ca: read(outDir, 'ca.crt') };
    const expected = {
      client: { protocol: 'TLSv1.3', authorized: true, received: 'ok' },
      server: { authorized: true, authorizationError: null, peer: { O: 'system:masters', CN: 'admin' } },
    };
    t.same(await handshake(serverSide, admin), expected, 'by IP SAN');
    t.same(
      await handshake(serverSide, { ...admin, servername: 'keda-metrics-apiserver.keda.svc' }),
      expected,
      'by DNS SAN',
    );
    const frontProxy = {
      cert: read(outDir, 'front-proxy-client.crt'),
      key: read(outDir, 'front-proxy-client.key'),
      ca: read(outDir, 'ca.crt'),
    };
    t.same(
      (await handshake(serverSide, frontProxy)).server,
      {
        authorized: false,
        authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
        peer: { CN: 'front-proxy-client' },
      },
      'a server trusting only ca.crt does not accept the front-proxy client',
    );
  });
});

t.test('custom namespace, services and cluster domain', async (t) => {
  const outDir = t.testdir();
  chmodSync(outDir, 0o755);
  await generateDevPki({ outDir, namespace: 'monitoring', services: ['a', 'b-2'], clusterDomain: 'corp.example' });
  t.same(describeCertificate(read(outDir, 'tls.crt')).dnsNames, [
    'localhost',
    'a',
    'a.monitoring',
    'a.monitoring.svc',
    'a.monitoring.svc.corp.example',
    'b-2',
    'b-2.monitoring',
    'b-2.monitoring.svc',
    'b-2.monitoring.svc.corp.example',
  ]);
  t.same(describeCertificate(read(outDir, 'tls.crt')).ipAddresses, ['127.0.0.1', '::1']);
  t.equal(mode(outDir), 0o755, 'an existing directory keeps its mode');

  const noServices = t.testdir();
  await generateDevPki({ outDir: noServices, services: [] });
  t.same(describeCertificate(read(noServices, 'tls.crt')).dnsNames, ['localhost']);
});

t.test('invalid options are rejected before anything is written', async (t) => {
  const base = t.testdir();
  const cases: [Parameters<typeof generateDevPki>[0], string][] = [
    [{ outDir: join(base, 'a'), namespace: 'Bad_NS' }, 'namespace "Bad_NS" is not a DNS-1123 label'],
    [{ outDir: join(base, 'b'), services: ['ok', 'no.dots'] }, 'service "no.dots" is not a DNS-1123 label'],
    [{ outDir: join(base, 'c'), clusterDomain: 'cluster..local' }, 'cluster domain label "" is not a DNS-1123 label'],
  ];
  for (const [opts, message] of cases) {
    await t.rejects(generateDevPki(opts), { message });
    t.equal(existsSync(opts.outDir), false);
  }
});

t.test('refuses to overwrite without force', async (t) => {
  const outDir = t.testdir();
  await generateDevPki({ outDir });
  const before = Object.fromEntries(FILES.map((f) => [f, read(outDir, f)]));

  const err = await generateDevPki({ outDir }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof PkiExistsError);
  t.ok(err instanceof Error);
  t.match(err, {
    name: 'PkiExistsError',
    path: join(outDir, 'ca.key'),
    message: `refusing to overwrite existing ${join(outDir, 'ca.key')}; run again with --force to regenerate the development PKI`,
  });
  t.same(Object.fromEntries(FILES.map((f) => [f, read(outDir, f)])), before, 'nothing changed');

  t.test('any single existing file is enough, and is named', async (t) => {
    const dir = t.testdir({ 'user.crt': 'not a certificate' });
    await t.rejects(generateDevPki({ outDir: dir }), { name: 'PkiExistsError', path: join(dir, 'user.crt') });
    t.same(readdirSync(dir), ['user.crt'], 'nothing else written');
  });

  t.test('a dangling symlink counts as existing', async (t) => {
    const dir = t.testdir();
    symlinkSync(join(dir, 'nowhere'), join(dir, 'tls.key'));
    await t.rejects(generateDevPki({ outDir: dir }), { name: 'PkiExistsError', path: join(dir, 'tls.key') });
  });
});

t.test('force regenerates everything', async (t) => {
  const pki = join(t.testdir(), 'pki');
  await generateDevPki({ outDir: pki });
  const before = Object.fromEntries(FILES.map((f) => [f, read(pki, f)]));
  chmodSync(join(pki, 'ca.crt'), 0o666);
  chmodSync(join(pki, 'ca.key'), 0o644);

  const { files } = await generateDevPki({ outDir: pki, force: true });
  t.same(
    files,
    FILES.map((f) => join(pki, f)),
  );
  for (const f of FILES) t.not(read(pki, f), before[f], `${f} replaced`);
  t.equal(mode(join(pki, 'ca.crt')), 0o644, 'modes restored');
  t.equal(mode(join(pki, 'ca.key')), 0o600);
  t.equal(cert(pki, 'tls.crt').checkIssued(cert(pki, 'ca.crt')), true, 'consistent new set');
});

t.test('force replaces a symlink instead of following it', async (t) => {
  const dir = t.testdir({ 'outside.key': 'precious', pki: {} });
  const pki = join(dir, 'pki');
  symlinkSync(join(dir, 'outside.key'), join(pki, 'ca.key'));
  await generateDevPki({ outDir: pki, force: true });
  t.equal(readFileSync(join(dir, 'outside.key'), 'utf8'), 'precious');
  t.equal(lstatSync(join(pki, 'ca.key')).isFile(), true);
  t.equal(mode(join(pki, 'ca.key')), 0o600);
});

t.test('modes do not depend on the umask', async (t) => {
  const previous = process.umask(0o077);
  t.teardown(() => void process.umask(previous));
  const outDir = join(t.testdir(), 'new');
  await generateDevPki({ outDir });
  t.equal(mode(join(outDir, 'ca.crt')), 0o644);
  t.equal(mode(join(outDir, 'ca.key')), 0o600);
  t.equal(mode(outDir), 0o700);
});

t.test('atomic writes', async (t) => {
  t.test('a watcher only ever sees complete files', async (t) => {
    const outDir = t.testdir();
    await generateDevPki({ outDir });
    const seen: { name: string; complete: boolean }[] = [];
    const watcher = watch(outDir, (_event, name) => {
      if (name === null || !FILES.includes(name)) return;
      const data = readFileSync(join(outDir, name), 'utf8');
      seen.push({ name, complete: /^-----BEGIN [A-Z ]+-----\n[\s\S]+-----END [A-Z ]+-----\n$/.test(data) });
    });
    try {
      await generateDevPki({ outDir, force: true });
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      watcher.close();
    }
    t.ok(seen.length >= FILES.length, `observed ${seen.length} events`);
    t.same(
      seen.filter((s) => !s.complete),
      [],
    );
    t.same(sorted(readdirSync(outDir)), sorted(FILES));
  });

  t.test('a failed write leaves no temp file behind', async (t) => {
    const outDir = t.testdir();
    mkdirSync(join(outDir, 'user.crt'));
    writeFileSync(join(outDir, 'user.crt', 'keep'), '');
    await t.rejects(generateDevPki({ outDir, force: true }), { code: 'EISDIR' });
    t.same(sorted(readdirSync(outDir)), sorted(FILES), 'the 11 files plus the blocking directory, no temp files');
    t.equal(statSync(join(outDir, 'user.crt')).isDirectory(), true);
  });
});
