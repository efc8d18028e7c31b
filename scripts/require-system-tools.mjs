// The test suite drives real system programs: the scalers' upstreams (Prometheus, Redis,
// PostgreSQL, MariaDB, RabbitMQ, NATS), openssl and kubectl (real clients of our servers), gRPC's
// C core for Python (an independent gRPC implementation on the other end of the channel), and a
// real Kubernetes control plane (envtest: etcd from Debian, kube-apiserver and kube-controller-manager from KUBEBUILDER_ASSETS or
// ../shared/envtest/setup-envtest). Each program is looked for on PATH; what is missing is
// installed from Debian's packages when that is possible here (root, apt-get), one line announcing
// each package, and otherwise the script stops with a message naming what to install.
//
// Usage: node scripts/require-system-tools.mjs
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Program on PATH -> the Debian package that provides it, and what the tests use it for. */
const TOOLS = {
  prometheus: { pkg: 'prometheus', for: 'the prometheus scaler\'s upstream' },
  'redis-server': { pkg: 'redis-server', for: 'the redis and redis-streams scalers\' upstream' },
  postgres: { pkg: 'postgresql', for: 'the postgresql scaler\'s upstream', dirs: postgresBinDirs },
  mariadbd: { pkg: 'mariadb-server', for: 'the mysql scaler\'s upstream' },
  'rabbitmq-server': { pkg: 'rabbitmq-server', for: 'the rabbitmq scaler\'s upstream' },
  'nats-server': { pkg: 'nats-server', for: 'the nats-jetstream scaler\'s upstream' },
  openssl: { pkg: 'openssl', for: 'a real TLS client of our servers' },
  kubectl: { pkg: 'kubectl', for: 'a real client of kube-apiserver and of the adapter' },
  etcd: { pkg: 'etcd-server', for: 'the envtest control plane' },
  // A Python module, not a program: present when Debian's python3 imports it.
  'python3-grpcio': { pkg: 'python3-grpcio', for: 'gRPC\'s C core on the other end of the channel', present: () => ['/usr/bin/python3', 'python3'].some((python) => spawnSync(python, ['-c', 'import grpc'], { stdio: 'ignore' }).status === 0) },
};
const ENVTEST_BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager'];
const SETUP_ENVTEST = resolve(dirname(fileURLToPath(import.meta.url)), '../../shared/envtest/setup-envtest');

/** Debian keeps PostgreSQL's server programs off PATH, in /usr/lib/postgresql/<major>/bin. */
function postgresBinDirs() {
  try {
    return readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).map((v) => `/usr/lib/postgresql/${v}/bin`);
  } catch {
    return [];
  }
}

function onPath(program) {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...(TOOLS[program]?.dirs?.() ?? [])]) {
    if (dir === '') continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const missingTools = () => Object.keys(TOOLS).filter((program) => (TOOLS[program].present ? !TOOLS[program].present() : onPath(program) === undefined));

function apt(args) {
  console.log(`require-system-tools: apt-get ${args.join(' ')}`);
  const res = spawnSync('apt-get', args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (res.error) console.error(`require-system-tools: apt-get could not run: ${res.error.message}`);
  return res.status === 0;
}

let missing = missingTools();
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (missing.length > 0 && isRoot && onPath('apt-get')) {
  const packages = [...new Set(missing.map((program) => TOOLS[program].pkg))];
  for (const program of missing) console.log(`require-system-tools: installing Debian package ${TOOLS[program].pkg} (${program}: ${TOOLS[program].for})`);
  const install = ['install', '-y', '--no-install-recommends', '-qq', ...packages];
  // A fresh machine often has no (or an old) package list: update once, then try again.
  if (!apt(install)) {
    apt(['update', '-qq']);
    apt(install);
  }
  // Debian's server packages may start a system instance on the default port; the tests start
  // their own on free ports, and need neither those nor the ports they hold.
  const services = { 'etcd-server': 'etcd', 'redis-server': 'redis-server', postgresql: 'postgresql', 'mariadb-server': 'mariadb', 'rabbitmq-server': 'rabbitmq-server', 'nats-server': 'nats-server' };
  for (const pkg of packages) {
    const service = services[pkg];
    if (service) spawnSync('sh', ['-c', `systemctl disable --now ${service} || service ${service} stop`], { stdio: 'ignore' });
  }
  missing = missingTools();
}
if (missing.length > 0) {
  console.error(
    `error: the test suite needs ${missing.join(', ')} (programs on PATH; python3-grpcio importable by python3), and ${isRoot && onPath('apt-get') ? 'installing them failed' : 'they cannot be installed from here (not root, or no apt-get)'}. ` +
      `Install the Debian package(s) ${[...new Set(missing.map((p) => TOOLS[p].pkg))].join(', ')} (apt-get install --no-install-recommends ...), or put the programs on PATH.`,
  );
  process.exit(1);
}

// The control plane's binaries, controller-runtime's way: KUBEBUILDER_ASSETS, else setup-envtest.
const assets = process.env.KUBEBUILDER_ASSETS;
if (assets) {
  const absent = ENVTEST_BINARIES.filter((b) => !existsSync(join(assets, b)));
  if (absent.length > 0) {
    console.error(`error: KUBEBUILDER_ASSETS=${assets} has no ${absent.join(', ')}: point it at a directory with etcd, kube-apiserver and kube-controller-manager (v1.28), or unset it to use ${SETUP_ENVTEST}`);
    process.exit(1);
  }
} else if (existsSync(SETUP_ENVTEST)) {
  const r = spawnSync(SETUP_ENVTEST, [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) {
    console.error(`error: ${SETUP_ENVTEST} failed (exit ${r.status}); set KUBEBUILDER_ASSETS to a directory with etcd, kube-apiserver and kube-controller-manager (v1.28)`);
    process.exit(1);
  }
} else {
  console.error(`error: no Kubernetes control plane for the tests: set KUBEBUILDER_ASSETS to a directory with etcd, kube-apiserver and kube-controller-manager (v1.28), or provide ${SETUP_ENVTEST}`);
  process.exit(1);
}
