// `keda-ts certs dev --out DIR`: the development PKI used by `npm start` and the tests.
import { boolFlag, formatHelp, listFlag, parseFlags, stringFlag, UsageError } from '../config/flags.js';
import { DEV_PKI_DEFAULT_SERVICES, PkiExistsError, generateDevPki } from './dev-pki.js';

const devFlags = {
  out: stringFlag('out', '', 'Folder to write the PKI into (created 0700)', { env: 'CERTS_OUT' }),
  force: boolFlag('force', false, 'Overwrite an existing PKI in that folder'),
  namespace: stringFlag('namespace', 'keda', 'Namespace of the Services named in the certificate', { env: 'POD_NAMESPACE' }),
  services: listFlag('services', DEV_PKI_DEFAULT_SERVICES, 'Services whose DNS names the component certificate covers'),
  clusterDomain: stringFlag('cluster-domain', 'cluster.local', 'Cluster DNS domain'),
  help: boolFlag('help', false, 'Show this help'),
};

const DEV_USAGE = 'keda-ts certs dev --out DIR [flags]';
const DESCRIPTION = `Commands:
  dev    Write a development PKI into DIR: a CA and the components' certificate (serverAuth +
         clientAuth, covering the Services' DNS names, localhost and 127.0.0.1), a front-proxy CA and
         client certificate, and admin/user client certificates for kubectl. An existing PKI there is
         kept unless --force is given.

`;

export async function runCertsCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === undefined) {
    (sub === undefined ? process.stderr : process.stdout).write(DESCRIPTION + formatHelp(DEV_USAGE, devFlags));
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'dev') throw new UsageError(`unknown certs command "${sub}" (expected dev)`);
  const f = parseFlags(devFlags, rest, process.env);
  if (f.help) {
    process.stdout.write(DESCRIPTION + formatHelp(DEV_USAGE, devFlags));
    return 0;
  }
  if (!f.out) throw new UsageError('certs dev needs --out DIR');
  try {
    const { files } = await generateDevPki({ outDir: f.out, force: f.force, namespace: f.namespace, services: f.services, clusterDomain: f.clusterDomain });
    process.stdout.write(`wrote ${files.length} files to ${f.out}\n`);
    return 0;
  } catch (err) {
    if (err instanceof PkiExistsError) {
      process.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
