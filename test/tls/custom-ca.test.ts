// Custom CA trust for outgoing connections: what counts as a trusted CA in a --ca-dir folder,
// one log line per bad file, live pick-up of changes, and real TLS handshakes against the bundle.
import t from 'tap';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, createServer, rootCertificates, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createCA, issueCertificate, type CertificateBundle } from '../../src/certs/x509.js';
import { CustomCaTrust } from '../../src/tls/custom-ca.js';
import { ProjectedDir } from '../helpers/certdir.js';
import { eventually } from '../helpers/loop.js';

type LogLine = Record<string, unknown> & { msg: string; level: number; file?: string };
function capture(): { log: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as LogLine) });
  return { log, lines };
}

const DAY = 86_400_000;
const root = t.testdir();
let staged = 0;
/** Replace a file atomically from outside the folder, so no reload can see it half-written. */
async function replaceFile(path: string, content: string): Promise<void> {
  const tmp = join(root, `staging-${++staged}`);
  await writeFile(tmp, content);
  await rename(tmp, path);
}

async function upstream(ca: CertificateBundle): Promise<{ port: number; server: Server }> {
  const leaf = await issueCertificate(
    { certPem: ca.certPem, keyPem: ca.keyPem },
    { commonName: 'upstream', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], extendedUsages: ['serverAuth'] },
  );
  const server = createServer({ cert: leaf.certPem, key: leaf.keyPem, minVersion: 'TLSv1.3' }, (s) => s.end('hello'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, server };
}

/** A real handshake verifying the server against `ca`: null when it succeeds, else the error code. */
function handshake(port: number, ca: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, minVersion: 'TLSv1.3' }, () => {
      s.end();
      resolve(s.authorized ? null : String(s.authorizationError));
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

const caOne = await createCA({ commonName: 'custom CA one' });
const caTwo = await createCA({ commonName: 'custom CA two' });
const caHidden = await createCA({ commonName: 'only under ..data' });
const caNested = await createCA({ commonName: 'in a subfolder' });
const caExpired = await createCA({ commonName: 'expired CA', notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
const caLater = await createCA({ commonName: 'added later' });
const caStranger = await createCA({ commonName: 'nobody trusts me' });

t.test('a folder of good and bad files: exactly the good CAs, one log line per bad file', async (t) => {
  const dir = join(root, 'mixed');
  await mkdir(dir);
  await writeFile(join(dir, 'one.crt'), caOne.certPem);
  // The second CA lives elsewhere and is linked in, as the kubelet links `ca.crt -> ..data/ca.crt`.
  await mkdir(join(root, 'elsewhere'));
  await writeFile(join(root, 'elsewhere', 'two.pem'), caTwo.certPem);
  await symlink(join(root, 'elsewhere', 'two.pem'), join(dir, 'two.crt'));
  // kubelet internals: never read directly.
  await mkdir(join(dir, '..2026_01_01_00_00_00.1'));
  await writeFile(join(dir, '..2026_01_01_00_00_00.1', 'hidden.crt'), caHidden.certPem);
  await symlink('..2026_01_01_00_00_00.1', join(dir, '..data'));
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'sub', 'nested.crt'), caNested.certPem);
  const bad = {
    garbage: join(dir, 'garbage.pem'),
    corrupt: join(dir, 'corrupt.pem'),
    expired: join(dir, 'expired.crt'),
    empty: join(dir, 'empty.crt'),
  };
  await writeFile(bad.garbage, 'this is not a certificate\n');
  await writeFile(bad.corrupt, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
  await writeFile(bad.expired, caExpired.certPem);
  await writeFile(bad.empty, '');

  const { log, lines } = capture();
  const trust = new CustomCaTrust([dir], log);
  t.teardown(() => trust.close());
  await trust.start();

  t.equal(trust.customCount, 2, 'one.crt and the symlinked two.crt, nothing else');
  t.same(trust.customSubjects.sort(), ['CN=custom CA one', 'CN=custom CA two']);
  const linesFor = (file: string) => lines.filter((l) => l.file === file);
  const reasons: Record<keyof typeof bad, RegExp> = {
    garbage: /no PEM CERTIFICATE block/,
    corrupt: /cannot be parsed/,
    expired: /expired at/,
    empty: /no PEM CERTIFICATE block/,
  };
  for (const [name, file] of Object.entries(bad) as [keyof typeof bad, string][]) {
    const got = linesFor(file);
    t.equal(got.length, 1, `${name}: exactly one log line`);
    t.match(got[0]?.msg, file, `${name}: the line names the file`);
    t.match(got[0]?.msg, reasons[name], `${name}: and says why`);
  }
  t.equal(lines.filter((l) => /nested|hidden|\.\.data|\.\.2026/.test(JSON.stringify(l))).length, 0, 'subfolders and ..entries are silently ignored');

  const bundle = trust.caBundle();
  t.ok(bundle.includes(rootCertificates[0]!.trim()), 'the bundle holds the system roots');
  t.ok(bundle.includes(caOne.certPem.trim()) && bundle.includes(caTwo.certPem.trim()), 'and the custom CAs');
  t.notOk(bundle.includes(caHidden.certPem.trim()) || bundle.includes(caExpired.certPem.trim()), 'but not the skipped ones');

  // Reloads do not repeat the reports; the same bad content rewritten is still not news.
  await trust.reload();
  await replaceFile(bad.garbage, 'this is not a certificate\n');
  await trust.reload();
  for (const file of Object.values(bad)) t.equal(linesFor(file).length, 1, `${file}: still one line after reloads`);
  // New bad content is reported, once.
  await replaceFile(bad.garbage, 'still not a certificate\n');
  await trust.reload();
  await trust.reload();
  t.equal(linesFor(bad.garbage).length, 2, 'a different bad content is one new line');

  const one = await upstream(caOne);
  const two = await upstream(caTwo);
  const stranger = await upstream(caStranger);
  t.equal(await handshake(one.port, bundle), null, 'a server signed by CA one verifies against the bundle');
  t.equal(await handshake(two.port, bundle), null, 'a server signed by the symlinked CA two verifies');
  t.match(await handshake(stranger.port, bundle), /UNABLE_TO_VERIFY|SELF_SIGNED|unable to/i, 'a server signed by an unknown CA does not');
  t.match(await handshake(one.port, rootCertificates.join('\n')), /UNABLE_TO_VERIFY|SELF_SIGNED|unable to/i, 'control: the system roots alone do not verify it');

  // A CA added later is picked up by the watcher, and announced.
  let changes = 0;
  trust.onChange(() => changes++);
  const later = await upstream(caLater);
  await replaceFile(join(dir, 'later.crt'), caLater.certPem);
  await eventually('the added CA', async () => (changes > 0 ? true : undefined));
  t.equal(trust.customCount, 3);
  t.equal(await handshake(later.port, trust.caBundle()), null, 'a server signed by the added CA verifies against the new bundle');
  t.ok(lines.some((l) => /custom CA trust changed: 3/.test(l.msg)), 'the change is logged');

  // And removed: trust goes away too.
  await rm(join(dir, 'one.crt'));
  await eventually('CA one gone', async () => (trust.customCount === 2 ? true : undefined));
  t.match(await handshake(one.port, trust.caBundle()), /UNABLE_TO_VERIFY|SELF_SIGNED|unable to/i, 'a removed CA is no longer trusted');
  // A file fixed is trusted.
  await replaceFile(bad.expired, caOne.certPem);
  await eventually('the fixed file', async () => (trust.customCount === 3 ? true : undefined));
});

t.test('kubelet projection: ..data swap, folders that do not exist yet, several folders', async (t) => {
  const projected = new ProjectedDir(join(root, 'projected'));
  await projected.write({ 'ca.crt': caOne.certPem });
  const missing = join(root, 'not-yet');
  const { log, lines } = capture();
  const trust = new CustomCaTrust([projected.dir, missing, projected.dir], log, { debounceMs: 20 });
  t.teardown(() => trust.close());
  await trust.start();
  t.equal(trust.customCount, 1, 'the projected ca.crt, once even though the folder is listed twice');
  const missingLines = lines.filter((l) => typeof l.msg === 'string' && l.msg.includes(missing));
  t.equal(missingLines.length, 1, 'the missing folder is mentioned once');
  t.equal(missingLines[0]?.level, 30, 'at info');

  // The kubelet's atomic update: a new timestamped folder and `..data` renamed over.
  await projected.write({ 'ca.crt': `${caTwo.certPem}${caLater.certPem}` });
  await eventually('the swapped bundle', async () => (trust.customSubjects.join() === 'CN=custom CA two,CN=added later' ? true : undefined));

  // The missing folder appears, then gets a file: both are seen.
  await mkdir(missing);
  await new Promise((r) => setTimeout(r, 200));
  await writeFile(join(missing, 'late.pem'), caStranger.certPem);
  await eventually('the CA in the folder that appeared', async () => (trust.customCount === 3 ? true : undefined));
  t.equal(lines.filter((l) => typeof l.msg === 'string' && l.msg.includes(missing)).length, 1, 'no more lines about that folder');
  const stranger = await upstream(caStranger);
  t.equal(await handshake(stranger.port, trust.caBundle()), null);
});

t.test('no folders at all: the bundle is the default roots', async (t) => {
  const { log } = capture();
  const trust = new CustomCaTrust([], log);
  await trust.start();
  t.equal(trust.customCount, 0);
  t.ok(trust.caBundle().includes(rootCertificates[0]!.trim()));
  await trust.close();
});

t.test('a file with one good and one expired certificate: the good one is kept, one line', async (t) => {
  const dir = join(root, 'partial');
  await mkdir(dir);
  await writeFile(join(dir, 'bundle.pem'), `${caOne.certPem}${caExpired.certPem}`);
  const { log, lines } = capture();
  const trust = new CustomCaTrust([dir], log);
  t.teardown(() => trust.close());
  await trust.start();
  t.equal(trust.customCount, 1);
  const about = lines.filter((l) => l.file === join(dir, 'bundle.pem'));
  t.equal(about.length, 1);
  t.match(about[0]?.msg, /1 of 2 certificates skipped: .*expired/);
});
