import { randomUUID } from 'node:crypto';
import { chmod, lstat, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isDns1123Label } from '../k8s/names.js';
import { serviceDnsNames } from '../k8s/service-names.js';
import { createCA, issueCertificate } from './x509.js';
import type { CertificateBundle } from './x509.js';

export interface DevPkiOptions {
  outDir: string;
  force?: boolean;
  /** Default 'keda'. */
  namespace?: string;
  /** Default ['keda-operator', 'keda-metrics-apiserver', 'keda-admission-webhooks']. */
  services?: string[];
  /** Default 'cluster.local'. */
  clusterDomain?: string;
}

export class PkiExistsError extends Error {
  readonly path: string;

  constructor(path: string) {
    super(`refusing to overwrite existing ${path}; run again with --force to regenerate the development PKI`);
    this.name = 'PkiExistsError';
    this.path = path;
  }
}

export const DEV_PKI_DEFAULT_NAMESPACE = 'keda';
export const DEV_PKI_DEFAULT_SERVICES: readonly string[] = [
  'keda-operator',
  'keda-metrics-apiserver',
  'keda-admission-webhooks',
];
export const DEV_PKI_DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/** Pair names in write order: CAs before what they sign, so a watcher reacting to a leaf finds its CA. */
const PAIRS = ['ca', 'front-proxy-ca', 'tls', 'front-proxy-client', 'admin', 'user'] as const;
type PairName = (typeof PAIRS)[number];

/**
 * Within a pair the key goes first: consumers conventionally reload on the
 * certificate, and by then the matching key is already in place.
 */
export const DEV_PKI_FILES: readonly string[] = PAIRS.flatMap((p) => [`${p}.key`, `${p}.crt`]);

const KEY_MODE = 0o600;
const CERT_MODE = 0o644;
const DIR_MODE = 0o700;

function checkLabel(what: string, value: string): void {
  if (!isDns1123Label(value)) throw new Error(`${what} ${JSON.stringify(value)} is not a DNS-1123 label`);
}

function checkDomain(value: string): void {
  value.split('.').forEach((label) => checkLabel('cluster domain label', label));
}


async function pathExists(path: string): Promise<boolean> {
  try {
    // lstat: a dangling symlink is still something we would clobber.
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

async function refuseExisting(outDir: string): Promise<void> {
  for (const name of DEV_PKI_FILES) {
    const path = join(outDir, name);
    if (await pathExists(path)) throw new PkiExistsError(path);
  }
}

async function ensureDir(outDir: string): Promise<void> {
  const created = await mkdir(outDir, { recursive: true, mode: DIR_MODE });
  // The umask may have narrowed the mode further; only the directory we created is ours to fix.
  if (created !== undefined) await chmod(outDir, DIR_MODE);
}

/** Temp file + rename in the same directory, so readers see the old file or the new one, never a torn one. */
async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(data);
      // Explicit chmod because the umask applies to open()'s mode.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

async function generateBundles(opts: Required<Omit<DevPkiOptions, 'outDir' | 'force'>>) {
  const ca = await createCA({ commonName: 'keda-ts development CA' });
  const frontProxyCa = await createCA({ commonName: 'keda-ts front-proxy CA' });
  const dnsNames = [
    'localhost',
    ...opts.services.flatMap((svc) => serviceDnsNames(svc, opts.namespace, opts.clusterDomain)),
  ];
  const bundles: Record<PairName, CertificateBundle> = {
    ca,
    'front-proxy-ca': frontProxyCa,
    tls: await issueCertificate(ca, {
      commonName: 'keda-ts',
      dnsNames,
      ipAddresses: ['127.0.0.1', '::1'],
      extendedUsages: ['serverAuth', 'clientAuth'],
    }),
    'front-proxy-client': await issueCertificate(frontProxyCa, {
      commonName: 'front-proxy-client',
      extendedUsages: ['clientAuth'],
    }),
    admin: await issueCertificate(ca, {
      commonName: 'admin',
      organization: ['system:masters'],
      extendedUsages: ['clientAuth'],
    }),
    user: await issueCertificate(ca, { commonName: 'user', extendedUsages: ['clientAuth'] }),
  };
  return bundles;
}

/**
 * Writes a complete development PKI into `outDir` (see DEV_PKI_FILES).
 * Everything is generated before the first write, so a failure while
 * generating leaves existing material untouched.
 */
export async function generateDevPki(opts: DevPkiOptions): Promise<{ files: string[] }> {
  const outDir = resolve(opts.outDir);
  const settings = {
    namespace: opts.namespace ?? DEV_PKI_DEFAULT_NAMESPACE,
    services: opts.services ?? [...DEV_PKI_DEFAULT_SERVICES],
    clusterDomain: opts.clusterDomain ?? DEV_PKI_DEFAULT_CLUSTER_DOMAIN,
  };
  checkLabel('namespace', settings.namespace);
  settings.services.forEach((svc) => checkLabel('service', svc));
  checkDomain(settings.clusterDomain);

  await ensureDir(outDir);
  if (!opts.force) await refuseExisting(outDir);
  const bundles = await generateBundles(settings);

  const files: string[] = [];
  for (const pair of PAIRS) files.push(...(await writePair(outDir, pair, bundles[pair])));
  return { files };
}

async function writePair(outDir: string, pair: PairName, bundle: CertificateBundle): Promise<string[]> {
  const keyPath = join(outDir, `${pair}.key`);
  const certPath = join(outDir, `${pair}.crt`);
  await writeFileAtomic(keyPath, bundle.keyPem, KEY_MODE);
  await writeFileAtomic(certPath, bundle.certPem, CERT_MODE);
  return [keyPath, certPath];
}
