import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createCA, describeCertificate, issueCertificate } from '../../src/certs/x509.js';
import type { CertificateBundle, KeyAlgorithm } from '../../src/certs/x509.js';

const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';
const EKU_EMAIL = '1.3.6.1.5.5.7.3.4';

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

function openssl(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function write(dir: string, files: Record<string, string>): Record<string, string> {
  const paths: Record<string, string> = {};
  for (const [name, data] of Object.entries(files)) {
    paths[name] = join(dir, name);
    writeFileSync(paths[name], data);
  }
  return paths;
}

function opensslVerify(caPath: string, purpose: 'sslserver' | 'sslclient', leafPath: string, ...extra: string[]) {
  return openssl('verify', '-CAfile', caPath, ...extra, '-purpose', purpose, leafPath);
}

function opensslText(certPath: string): string {
  const r = openssl('x509', '-noout', '-text', '-in', certPath);
  if (r.code !== 0) throw new Error(r.out);
  return r.out;
}

/** Value line(s) of an extension in `openssl x509 -text` output, and whether it was marked critical. */
function extension(text: string, name: string): { critical: boolean; value: string } | undefined {
  const m = new RegExp(`X509v3 ${name}:( critical)?\\s*\\n\\s*(.*)\\n`).exec(text);
  return m ? { critical: m[1] !== undefined, value: m[2]!.trim() } : undefined;
}

function signatureAlgorithm(text: string): string {
  return /Signature Algorithm: (.*)/.exec(text)![1]!.trim();
}

const addSeconds = (d: Date, s: number) => new Date(d.getTime() + s * 1000);
const wholeSeconds = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);
const addYears = (d: Date, y: number) => {
  const r = new Date(d.getTime());
  r.setUTCFullYear(r.getUTCFullYear() + y);
  return r;
};

interface Party {
  cert: string;
  key: string;
  ca: string;
}

interface HandshakeResult {
  protocol: string | null;
  clientAuthorized: boolean;
  clientError: string | undefined;
  received: string;
  server:
    | { authorized: boolean; authorizationError: string | null; peerSubject: Record<string, unknown> }
    | { error: string | undefined };
}

/**
 * One real TLS 1.3 connection over loopback with a client certificate requested.
 * With `rejectUnauthorized` off the server reports why it would have refused.
 */
async function handshake(serverSide: Party, clientSide: Party, rejectUnauthorized = true): Promise<HandshakeResult> {
  const server = tls.createServer({ ...serverSide, requestCert: true, rejectUnauthorized, minVersion: 'TLSv1.3' });
  const serverOutcome = new Promise<HandshakeResult['server']>((resolve) => {
    server.on('secureConnection', (socket) => {
      const { authorized, authorizationError } = socket;
      resolve({
        authorized,
        // Node types this as Error, but it is the verify error code as a string, or null.
        authorizationError: authorizationError == null ? null : String(authorizationError),
        peerSubject: { ...socket.getPeerCertificate().subject },
      });
      socket.end('hello over mTLS');
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException) => resolve({ error: err.code }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const client = await new Promise<Omit<HandshakeResult, 'server'>>((resolve) => {
      let received = '';
      let clientError: string | undefined;
      let protocol: string | null = null;
      const socket = tls.connect({ host: '127.0.0.1', port, ...clientSide, minVersion: 'TLSv1.3' });
      socket.setEncoding('utf8');
      // getProtocol() is null once the socket is closed.
      socket.on('secureConnect', () => (protocol = socket.getProtocol()));
      socket.on('data', (chunk: string) => (received += chunk));
      socket.on('error', (err: NodeJS.ErrnoException) => (clientError ??= err.code));
      socket.on('close', () => resolve({ protocol, clientAuthorized: socket.authorized, clientError, received }));
    });
    return { ...client, server: await serverOutcome };
  } finally {
    server.close();
  }
}

const ALGORITHMS: {
  alg: KeyAlgorithm;
  signature: string;
  keyType: string;
  keyDetails: Record<string, unknown>;
  leafKeyUsage: string;
}[] = [
  {
    alg: 'ecdsa-p256',
    signature: 'ecdsa-with-SHA256',
    keyType: 'ec',
    keyDetails: { namedCurve: 'prime256v1' },
    leafKeyUsage: 'Digital Signature',
  },
  {
    alg: 'ecdsa-p384',
    signature: 'ecdsa-with-SHA384',
    keyType: 'ec',
    keyDetails: { namedCurve: 'secp384r1' },
    leafKeyUsage: 'Digital Signature',
  },
  {
    alg: 'rsa-2048',
    signature: 'sha256WithRSAEncryption',
    keyType: 'rsa',
    keyDetails: { modulusLength: 2048, publicExponent: 65537n },
    leafKeyUsage: 'Digital Signature, Key Encipherment',
  },
  {
    alg: 'rsa-3072',
    signature: 'sha256WithRSAEncryption',
    keyType: 'rsa',
    keyDetails: { modulusLength: 3072, publicExponent: 65537n },
    leafKeyUsage: 'Digital Signature, Key Encipherment',
  },
  {
    alg: 'rsa-4096',
    signature: 'sha256WithRSAEncryption',
    keyType: 'rsa',
    keyDetails: { modulusLength: 4096, publicExponent: 65537n },
    leafKeyUsage: 'Digital Signature, Key Encipherment',
  },
  { alg: 'ed25519', signature: 'ED25519', keyType: 'ed25519', keyDetails: {}, leafKeyUsage: 'Digital Signature' },
];

// ---------------------------------------------------------------------------
// per key algorithm: CA, server leaf, client leaf, openssl, TLS 1.3
// ---------------------------------------------------------------------------

for (const { alg, signature, keyType, keyDetails, leafKeyUsage } of ALGORITHMS) {
  t.test(`key algorithm ${alg}`, async (t) => {
    const ca = await createCA({ commonName: `test CA ${alg}`, organization: ['keda-ts tests'], keyAlgorithm: alg });
    const server = await issueCertificate(ca, {
      commonName: 'server',
      dnsNames: ['localhost', 'svc.ns.svc'],
      ipAddresses: ['127.0.0.1', '::1'],
      extendedUsages: ['serverAuth'],
      keyAlgorithm: alg,
    });
    const client = await issueCertificate(ca, {
      commonName: 'admin',
      organization: ['system:masters', 'devs'],
      extendedUsages: ['clientAuth'],
      keyAlgorithm: alg,
    });
    const dir = t.testdir();
    const p = write(dir, { 'ca.crt': ca.certPem, 'server.crt': server.certPem, 'client.crt': client.certPem });
    const caX = new X509Certificate(ca.certPem);
    const serverX = new X509Certificate(server.certPem);
    const clientX = new X509Certificate(client.certPem);

    t.test('node:crypto view of the CA', async (t) => {
      t.equal(caX.ca, true);
      t.equal(caX.subject, `O=keda-ts tests\nCN=test CA ${alg}`);
      t.equal(caX.issuer, caX.subject);
      t.equal(caX.checkIssued(caX), true, 'self-issued');
      t.equal(caX.verify(caX.publicKey), true, 'self-signed');
      t.equal(caX.checkPrivateKey(createPrivateKey(ca.keyPem)), true);
      t.equal(caX.subjectAltName, undefined);
      t.equal(caX.serialNumber, ca.serialNumber);
      t.same(caX.validFromDate, ca.notBefore);
      t.same(caX.validToDate, ca.notAfter);
    });

    t.test('node:crypto view of the leaves', async (t) => {
      for (const [x, bundle] of [
        [serverX, server],
        [clientX, client],
      ] as const) {
        t.equal(x.ca, false);
        t.equal(x.checkIssued(caX), true);
        t.equal(x.verify(caX.publicKey), true);
        t.equal(x.verify(x.publicKey), false, 'not self-signed');
        t.equal(x.checkPrivateKey(createPrivateKey(bundle.keyPem)), true);
        t.equal(x.issuer, caX.subject);
        t.equal(x.serialNumber, bundle.serialNumber);
        t.same(x.validFromDate, bundle.notBefore);
        t.same(x.validToDate, bundle.notAfter);
      }
      t.equal(serverX.checkPrivateKey(createPrivateKey(client.keyPem)), false, 'keys are distinct');
      t.equal(serverX.subject, 'CN=server');
      t.equal(clientX.subject, 'O=system:masters\nO=devs\nCN=admin');
      t.equal(serverX.subjectAltName, 'DNS:localhost, DNS:svc.ns.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
      t.equal(clientX.subjectAltName, undefined);
      t.same(serverX.keyUsage, [EKU_SERVER], 'node reports the EKU as keyUsage');
      t.same(clientX.keyUsage, [EKU_CLIENT]);
    });

    t.test('private keys are PKCS#8 of the requested type', async (t) => {
      for (const bundle of [ca, server, client]) {
        t.match(bundle.keyPem, /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/);
        t.match(bundle.certPem, /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$/);
        const key = createPrivateKey(bundle.keyPem);
        t.equal(key.asymmetricKeyType, keyType);
        t.same(key.asymmetricKeyDetails, keyDetails);
      }
    });

    t.test('describeCertificate', async (t) => {
      t.same(describeCertificate(server.certPem), {
        subject: 'CN=server',
        issuer: `O=keda-ts tests, CN=test CA ${alg}`,
        serialNumber: server.serialNumber,
        dnsNames: ['localhost', 'svc.ns.svc'],
        ipAddresses: ['127.0.0.1', '::1'],
        notBefore: server.notBefore,
        notAfter: server.notAfter,
        isCA: false,
      });
      t.same(describeCertificate(ca.certPem), {
        subject: `O=keda-ts tests, CN=test CA ${alg}`,
        issuer: `O=keda-ts tests, CN=test CA ${alg}`,
        serialNumber: ca.serialNumber,
        dnsNames: [],
        ipAddresses: [],
        notBefore: ca.notBefore,
        notAfter: ca.notAfter,
        isCA: true,
      });
    });

    t.test('openssl verify by purpose', async (t) => {
      t.same(opensslVerify(p['ca.crt']!, 'sslserver', p['server.crt']!), { code: 0, out: `${p['server.crt']}: OK\n` });
      t.same(opensslVerify(p['ca.crt']!, 'sslclient', p['client.crt']!), { code: 0, out: `${p['client.crt']}: OK\n` });
      const wrongPurpose = [
        opensslVerify(p['ca.crt']!, 'sslclient', p['server.crt']!),
        opensslVerify(p['ca.crt']!, 'sslserver', p['client.crt']!),
      ];
      for (const r of wrongPurpose) {
        t.equal(r.code, 2);
        t.match(r.out, 'error 26 at 0 depth lookup: unsuitable certificate purpose');
      }
    });

    t.test('openssl x509 -text: extensions and signature', async (t) => {
      const caText = opensslText(p['ca.crt']!);
      t.equal(signatureAlgorithm(caText), signature);
      t.same(extension(caText, 'Basic Constraints'), { critical: true, value: 'CA:TRUE' });
      t.same(extension(caText, 'Key Usage'), { critical: true, value: 'Certificate Sign, CRL Sign' });
      const caSki = extension(caText, 'Subject Key Identifier');
      t.match(caSki, { critical: false, value: /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/ });
      t.equal(extension(caText, 'Extended Key Usage'), undefined);

      const serverText = opensslText(p['server.crt']!);
      t.equal(signatureAlgorithm(serverText), signature);
      t.same(extension(serverText, 'Basic Constraints'), { critical: true, value: 'CA:FALSE' });
      t.same(extension(serverText, 'Key Usage'), { critical: true, value: leafKeyUsage });
      t.same(extension(serverText, 'Extended Key Usage'), {
        critical: false,
        value: 'TLS Web Server Authentication',
      });
      t.same(extension(serverText, 'Authority Key Identifier'), caSki, 'AKI of the leaf is the SKI of the CA');
      t.same(extension(serverText, 'Subject Alternative Name'), {
        critical: false,
        value: 'DNS:localhost, DNS:svc.ns.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
      });

      const clientText = opensslText(p['client.crt']!);
      t.same(extension(clientText, 'Extended Key Usage'), { critical: false, value: 'TLS Web Client Authentication' });
      t.match(clientText, 'Subject: O = system:masters, O = devs, CN = admin');
      t.equal(extension(clientText, 'Subject Alternative Name'), undefined);
    });

    t.test('mutual TLS 1.3 handshake', async (t) => {
      const result = await handshake(
        { cert: server.certPem, key: server.keyPem, ca: ca.certPem },
        { cert: client.certPem, key: client.keyPem, ca: ca.certPem },
      );
      t.same(result, {
        protocol: 'TLSv1.3',
        clientAuthorized: true,
        clientError: undefined,
        received: 'hello over mTLS',
        server: {
          authorized: true,
          authorizationError: null,
          peerSubject: { O: ['system:masters', 'devs'], CN: 'admin' },
        },
      });
    });
  });
}

// ---------------------------------------------------------------------------
// mixed algorithms, intermediates
// ---------------------------------------------------------------------------

t.test('the issuer key decides the signature algorithm', async (t) => {
  const dir = t.testdir();
  const cases: [KeyAlgorithm, KeyAlgorithm, string][] = [
    ['rsa-2048', 'ed25519', 'sha256WithRSAEncryption'],
    ['ed25519', 'ecdsa-p384', 'ED25519'],
    ['ecdsa-p384', 'rsa-2048', 'ecdsa-with-SHA384'],
    ['ecdsa-p256', 'ecdsa-p384', 'ecdsa-with-SHA256'],
  ];
  for (const [caAlg, leafAlg, expected] of cases) {
    const ca = await createCA({ commonName: `ca ${caAlg}`, keyAlgorithm: caAlg });
    const leaf = await issueCertificate(ca, {
      commonName: `leaf ${leafAlg}`,
      dnsNames: ['localhost'],
      extendedUsages: ['serverAuth'],
      keyAlgorithm: leafAlg,
    });
    const p = write(dir, { [`${caAlg}.crt`]: ca.certPem, [`${leafAlg}.crt`]: leaf.certPem });
    t.equal(signatureAlgorithm(opensslText(p[`${leafAlg}.crt`]!)), expected, `${caAlg} -> ${leafAlg}`);
    t.same(opensslVerify(p[`${caAlg}.crt`]!, 'sslserver', p[`${leafAlg}.crt`]!), {
      code: 0,
      out: `${p[`${leafAlg}.crt`]}: OK\n`,
    });
  }
});

t.test('intermediate CA (isCA) chains to the root', async (t) => {
  const root = await createCA({ commonName: 'root' });
  const intermediate = await issueCertificate(root, { commonName: 'intermediate', extendedUsages: [], isCA: true });
  const leaf = await issueCertificate(intermediate, {
    commonName: 'leaf',
    dnsNames: ['leaf.example'],
    extendedUsages: ['serverAuth'],
  });
  const p = write(t.testdir(), { 'root.crt': root.certPem, 'int.crt': intermediate.certPem, 'leaf.crt': leaf.certPem });
  const text = opensslText(p['int.crt']!);
  t.same(extension(text, 'Basic Constraints'), { critical: true, value: 'CA:TRUE' });
  t.same(extension(text, 'Key Usage'), { critical: true, value: 'Certificate Sign, CRL Sign' });
  t.equal(extension(text, 'Extended Key Usage'), undefined, 'an intermediate without usages is unrestricted');
  t.same(extension(text, 'Authority Key Identifier'), extension(opensslText(p['root.crt']!), 'Subject Key Identifier'));
  t.equal(describeCertificate(intermediate.certPem).isCA, true);
  // Default CA validity applies to intermediates too.
  t.same(intermediate.notAfter, addYears(addSeconds(intermediate.notBefore, 300), 10));
  t.same(opensslVerify(p['root.crt']!, 'sslserver', p['leaf.crt']!, '-untrusted', p['int.crt']!), {
    code: 0,
    out: `${p['leaf.crt']}: OK\n`,
  });
  const withoutIntermediate = opensslVerify(p['root.crt']!, 'sslserver', p['leaf.crt']!);
  t.equal(withoutIntermediate.code, 2);
  t.match(withoutIntermediate.out, 'error 20 at 0 depth lookup: unable to get local issuer certificate');
});

// ---------------------------------------------------------------------------
// validity
// ---------------------------------------------------------------------------

t.test('validity', async (t) => {
  const ca = await createCA({ commonName: 'validity CA', notBefore: new Date('2020-01-01T00:00:00Z') });
  const dir = t.testdir();
  const caPath = write(dir, { 'ca.crt': ca.certPem })['ca.crt']!;

  t.test('defaults: 5 minutes back-dated, CA 10 years, leaf 1 year', async (t) => {
    const before = wholeSeconds(new Date());
    const defaultCa = await createCA({ commonName: 'default CA' });
    const leaf = await issueCertificate(defaultCa, { commonName: 'leaf', extendedUsages: ['serverAuth'] });
    const after = new Date();
    for (const [bundle, years] of [
      [defaultCa, 10],
      [leaf, 1],
    ] as const) {
      const issuedAt = addSeconds(bundle.notBefore, 300);
      t.ok(issuedAt >= before && issuedAt <= after, `notBefore is 5 minutes before issuance (${issuedAt.toISOString()})`);
      t.same(bundle.notAfter, addYears(issuedAt, years));
    }
  });

  t.test('explicit dates are kept, truncated to whole seconds', async (t) => {
    const notBefore = new Date('2030-06-01T12:00:00.999Z');
    const notAfter = new Date('2055-06-01T12:00:00.123Z'); // > 2049: GeneralizedTime
    const leaf = await issueCertificate(ca, { commonName: 'x', extendedUsages: ['clientAuth'], notBefore, notAfter });
    t.same(leaf.notBefore, new Date('2030-06-01T12:00:00Z'));
    t.same(leaf.notAfter, new Date('2055-06-01T12:00:00Z'));
    const x = new X509Certificate(leaf.certPem);
    t.same(x.validFromDate, leaf.notBefore);
    t.same(x.validToDate, leaf.notAfter);
  });

  t.test('only notBefore given: default lifetime counts from it', async (t) => {
    const notBefore = new Date('2031-01-01T00:00:00Z');
    const leaf = await issueCertificate(ca, { commonName: 'x', extendedUsages: ['clientAuth'], notBefore });
    t.same(leaf.notAfter, new Date('2032-01-01T00:00:00Z'));
  });

  t.test('expired certificate', async (t) => {
    const now = new Date();
    const leaf = await issueCertificate(ca, {
      commonName: 'expired',
      extendedUsages: ['serverAuth'],
      notBefore: addSeconds(now, -2 * 86400),
      notAfter: addSeconds(now, -86400),
    });
    const leafPath = write(dir, { 'expired.crt': leaf.certPem })['expired.crt']!;
    const r = opensslVerify(caPath, 'sslserver', leafPath);
    t.equal(r.code, 2);
    t.match(r.out, 'error 10 at 0 depth lookup: certificate has expired');
    t.ok(new X509Certificate(leaf.certPem).validToDate < now);
  });

  t.test('not yet valid certificate', async (t) => {
    const now = new Date();
    const leaf = await issueCertificate(ca, {
      commonName: 'future',
      extendedUsages: ['serverAuth'],
      notBefore: addSeconds(now, 86400),
      notAfter: addSeconds(now, 2 * 86400),
    });
    const leafPath = write(dir, { 'future.crt': leaf.certPem })['future.crt']!;
    const r = opensslVerify(caPath, 'sslserver', leafPath);
    t.equal(r.code, 2);
    t.match(r.out, 'error 9 at 0 depth lookup: certificate is not yet valid');
    t.ok(new X509Certificate(leaf.certPem).validFromDate > now);
  });

  t.test('expired CA fails the chain', async (t) => {
    const now = new Date();
    const oldCa = await createCA({
      commonName: 'old CA',
      notBefore: addSeconds(now, -10 * 86400),
      notAfter: addSeconds(now, -86400),
    });
    const leaf = await issueCertificate(oldCa, { commonName: 'x', extendedUsages: ['serverAuth'] });
    const paths = write(dir, { 'old-ca.crt': oldCa.certPem, 'old-leaf.crt': leaf.certPem });
    const r = opensslVerify(paths['old-ca.crt']!, 'sslserver', paths['old-leaf.crt']!);
    t.equal(r.code, 2);
    t.match(r.out, 'error 10 at 1 depth lookup: certificate has expired');
  });

  t.test('rejects notAfter <= notBefore', async (t) => {
    const d = new Date('2030-01-01T00:00:00Z');
    await t.rejects(createCA({ commonName: 'x', notBefore: d, notAfter: d }), /is not after notBefore/);
    await t.rejects(
      issueCertificate(ca, { commonName: 'x', extendedUsages: [], notBefore: d, notAfter: addSeconds(d, -1) }),
      /is not after notBefore/,
    );
    await t.rejects(createCA({ commonName: 'x', notBefore: new Date('1949-12-31T00:00:00Z') }), /before 1950/);
    await t.rejects(createCA({ commonName: 'x', notBefore: new Date(NaN) }), /invalid certificate validity date/);
  });
});

// ---------------------------------------------------------------------------
// extended usages
// ---------------------------------------------------------------------------

t.test('a client certificate without clientAuth usage', async (t) => {
  const ca = await createCA({ commonName: 'usage CA' });
  const server = await issueCertificate(ca, {
    commonName: 'server',
    ipAddresses: ['127.0.0.1'],
    extendedUsages: ['serverAuth'],
  });
  const noUsage = await issueCertificate(ca, { commonName: 'no-usage', extendedUsages: [] });
  const both = await issueCertificate(ca, { commonName: 'both', extendedUsages: ['clientAuth', 'serverAuth', 'clientAuth'] });
  const p = write(t.testdir(), { 'ca.crt': ca.certPem, 'no-usage.crt': noUsage.certPem, 'both.crt': both.certPem });

  t.same(new X509Certificate(noUsage.certPem).keyUsage, [EKU_EMAIL]);
  t.same(extension(opensslText(p['no-usage.crt']!), 'Extended Key Usage'), {
    critical: false,
    value: 'E-mail Protection',
  });
  for (const purpose of ['sslclient', 'sslserver'] as const) {
    const r = opensslVerify(p['ca.crt']!, purpose, p['no-usage.crt']!);
    t.equal(r.code, 2, `fails -purpose ${purpose}`);
    t.match(r.out, 'error 26 at 0 depth lookup: unsuitable certificate purpose');
  }

  t.same(new X509Certificate(both.certPem).keyUsage, [EKU_CLIENT, EKU_SERVER], 'duplicates dropped, order kept');
  for (const purpose of ['sslclient', 'sslserver'] as const) {
    t.same(opensslVerify(p['ca.crt']!, purpose, p['both.crt']!), { code: 0, out: `${p['both.crt']}: OK\n` });
  }

  const serverSide = { cert: server.certPem, key: server.keyPem, ca: ca.certPem };
  const clientSide = { cert: noUsage.certPem, key: noUsage.keyPem, ca: ca.certPem };
  // TLS 1.3 clients finish before the server judges their certificate, and Node's
  // server then just drops the connection: no alert, the client sees a bare EOF.
  t.same(await handshake(serverSide, clientSide), {
    protocol: 'TLSv1.3',
    clientAuthorized: true,
    clientError: undefined,
    received: '',
    server: { error: 'ECONNRESET' },
  });
  t.same(await handshake(serverSide, clientSide, false), {
    protocol: 'TLSv1.3',
    clientAuthorized: true,
    clientError: undefined,
    received: 'hello over mTLS',
    server: { authorized: false, authorizationError: 'INVALID_PURPOSE', peerSubject: { CN: 'no-usage' } },
  });
});

// ---------------------------------------------------------------------------
// names, serials, input validation
// ---------------------------------------------------------------------------

t.test('subject alternative names', async (t) => {
  const ca = await createCA({ commonName: 'san CA' });
  const leaf = await issueCertificate(ca, {
    commonName: 'san',
    dnsNames: ['*.example.com', 'a.b.c', 'UPPER.example'],
    ipAddresses: ['10.1.2.3', '2001:db8::1', '::ffff:10.0.0.1', 'fe80::'],
    extendedUsages: ['serverAuth'],
  });
  t.equal(
    new X509Certificate(leaf.certPem).subjectAltName,
    'DNS:*.example.com, DNS:a.b.c, DNS:UPPER.example, IP Address:10.1.2.3, IP Address:2001:DB8:0:0:0:0:0:1, ' +
      'IP Address:0:0:0:0:0:FFFF:A00:1, IP Address:FE80:0:0:0:0:0:0:0',
  );
  t.same(describeCertificate(leaf.certPem).ipAddresses, ['10.1.2.3', '2001:db8::1', '::ffff:10.0.0.1', 'fe80::']);
  t.same(describeCertificate(leaf.certPem).dnsNames, ['*.example.com', 'a.b.c', 'UPPER.example']);
  t.equal(new X509Certificate(leaf.certPem).checkHost('x.example.com'), '*.example.com');
  t.equal(new X509Certificate(leaf.certPem).checkIP('2001:db8:0::1'), '2001:db8:0::1');

  for (const ip of ['not-an-ip', '10.0.0.0/8', '1.2.3', 'fe80::1%eth0', '']) {
    await t.rejects(
      issueCertificate(ca, { commonName: 'x', ipAddresses: [ip], extendedUsages: [] }),
      { message: `invalid IP address in SAN: ${JSON.stringify(ip)}` },
      `rejects IP ${JSON.stringify(ip)}`,
    );
  }
  for (const dns of ['bad name', '', 'a..b', '-a.b', 'a,b', 'x'.repeat(64)]) {
    await t.rejects(
      issueCertificate(ca, { commonName: 'x', dnsNames: [dns], extendedUsages: [] }),
      { message: `invalid DNS name in SAN: ${JSON.stringify(dns)}` },
      `rejects DNS ${JSON.stringify(dns)}`,
    );
  }
});

t.test('subject names are encoded verbatim', async (t) => {
  const ca = await createCA({ commonName: 'names CA' });
  const leaf = await issueCertificate(ca, {
    commonName: '"quoted", #hash',
    organization: ['#group', 'système'],
    extendedUsages: ['clientAuth'],
  });
  const text = opensslText(write(t.testdir(), { 'leaf.crt': leaf.certPem })['leaf.crt']!);
  t.match(text, 'Subject: O = "#group", O = syst\\C3\\A8me, CN = "\\"quoted\\", #hash"');
  t.equal(describeCertificate(leaf.certPem).subject, 'O=\\#group, O=système, CN=\\"quoted\\"\\, #hash');
  await t.rejects(createCA({ commonName: ' ' }), { message: 'commonName must not be empty' });
  await t.rejects(issueCertificate(ca, { commonName: 'x', organization: [''], extendedUsages: [] }), {
    message: 'organization must not be empty',
  });
});

t.test('serial numbers are random positive 128-bit integers', async (t) => {
  const ca = await createCA({ commonName: 'serial CA' });
  const bundles: CertificateBundle[] = [ca];
  for (let i = 0; i < 20; i++) bundles.push(await issueCertificate(ca, { commonName: `s${i}`, extendedUsages: [] }));
  const serials = bundles.map((b) => b.serialNumber);
  t.equal(new Set(serials).size, serials.length, 'all distinct');
  for (const [i, b] of bundles.entries()) {
    t.match(b.serialNumber, /^[0-9A-F]+$/);
    const n = BigInt(`0x${b.serialNumber}`);
    t.ok(n > 0n && n < 2n ** 128n, `serial ${i} in (0, 2^128)`);
    t.equal(new X509Certificate(b.certPem).serialNumber, b.serialNumber);
  }
  // Some serial should have its top bit set: proof that the sign is handled by a leading 0x00, not by masking.
  const highBit = bundles.find((b) => b.serialNumber.length === 32 && /^[89A-F]/.test(b.serialNumber));
  if (highBit) {
    const path = write(t.testdir(), { 'high.crt': highBit.certPem })['high.crt']!;
    t.equal(openssl('x509', '-noout', '-serial', '-in', path).out, `serial=${highBit.serialNumber}\n`);
  }
});

t.test('issuer validation', async (t) => {
  const ca = await createCA({ commonName: 'issuer CA' });
  const otherCa = await createCA({ commonName: 'other CA' });
  const leaf = await issueCertificate(ca, { commonName: 'leaf', extendedUsages: ['serverAuth'] });
  await t.rejects(issueCertificate(leaf, { commonName: 'x', extendedUsages: [] }), {
    message: 'issuer CN=leaf is not a CA certificate',
  });
  await t.rejects(issueCertificate({ certPem: ca.certPem, keyPem: otherCa.keyPem }, { commonName: 'x', extendedUsages: [] }), {
    message: 'issuer key does not match certificate CN=issuer CA',
  });
});

t.test('issuers made by other tools', async (t) => {
  const dir = t.testdir();
  const opensslCA = (name: string, ...keyArgs: string[]) => {
    const [certPath, keyPath] = [join(dir, `${name}.crt`), join(dir, `${name}.key`)];
    // No SKI on purpose: the AKI then has to be derived from the issuer's public key.
    const r = openssl(
      ...['req', '-x509', ...keyArgs, '-nodes', '-keyout', keyPath, '-out', certPath, '-subj', `/CN=${name}`],
      ...['-days', '2', '-addext', 'subjectKeyIdentifier=none', '-addext', 'authorityKeyIdentifier=none'],
      ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'],
    );
    if (r.code !== 0) throw new Error(r.out);
    return { certPath, issuer: { certPem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8') } };
  };

  const rsa = opensslCA('openssl-rsa', '-newkey', 'rsa:2048');
  t.equal(extension(opensslText(rsa.certPath), 'Subject Key Identifier'), undefined);
  const leaf = await issueCertificate(rsa.issuer, { commonName: 'leaf', dnsNames: ['localhost'], extendedUsages: ['serverAuth'] });
  const leafPath = write(dir, { 'leaf.crt': leaf.certPem })['leaf.crt']!;
  t.match(extension(opensslText(leafPath), 'Authority Key Identifier'), { value: /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/ });
  t.equal(signatureAlgorithm(opensslText(leafPath)), 'sha256WithRSAEncryption');
  t.same(opensslVerify(rsa.certPath, 'sslserver', leafPath), { code: 0, out: `${leafPath}: OK\n` });

  const p521 = opensslCA('openssl-p521', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521');
  await t.rejects(issueCertificate(p521.issuer, { commonName: 'x', extendedUsages: [] }), {
    message: 'unsupported issuer key type ec (secp521r1)',
  });
  const ed448 = opensslCA('openssl-ed448', '-newkey', 'ed448');
  await t.rejects(issueCertificate(ed448.issuer, { commonName: 'x', extendedUsages: [] }), {
    message: 'unsupported issuer key type ed448',
  });
});
