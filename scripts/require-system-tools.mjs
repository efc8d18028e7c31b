// The test suite drives real system programs: Prometheus (the prometheus scaler's upstream),
// openssl and kubectl (real clients of our servers). Each is looked for on PATH; what is missing
// is installed from Debian's packages when that is possible here (root, apt-get), and otherwise
// the script stops with a message naming what to install.
//
// Usage: node scripts/require-system-tools.mjs
import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Program on PATH -> the Debian package that provides it. */
const TOOLS = {
  prometheus: 'prometheus',
  openssl: 'openssl',
  kubectl: 'kubectl',
};

function onPath(program) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
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

const missingTools = () => Object.keys(TOOLS).filter((program) => onPath(program) === undefined);

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
if (missing.length === 0) process.exit(0);

const packages = [...new Set(missing.map((program) => TOOLS[program]))];
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (isRoot && onPath('apt-get')) {
  console.log(`require-system-tools: missing ${missing.join(', ')}; installing the Debian package(s) ${packages.join(', ')}`);
  const install = ['install', '-y', '--no-install-recommends', ...packages];
  // A fresh machine often has no (or an old) package list: update once, then try again.
  if (!apt(install)) {
    apt(['update']);
    apt(install);
  }
  missing = missingTools();
  if (missing.length === 0) process.exit(0);
}

console.error(
  `error: the test suite needs ${missing.join(', ')} on PATH, and ${isRoot && onPath('apt-get') ? 'installing them failed' : 'they cannot be installed from here (not root, or no apt-get)'}. ` +
    `Install the Debian package(s) ${[...new Set(missing.map((p) => TOOLS[p]))].join(', ')} (apt-get install --no-install-recommends ...), or put the programs on PATH.`,
);
process.exit(1);
