// The Python that has Debian's python3-grpcio (gRPC's C core): Debian's own /usr/bin/python3
// first, since a python3 earlier on PATH (pyenv, a virtualenv) does not see Debian's modules.
import { spawnSync } from 'node:child_process';

const CANDIDATES = ['/usr/bin/python3', 'python3'];

export function grpcioPython(): string {
  const found = CANDIDATES.find((python) => spawnSync(python, ['-c', 'import grpc'], { stdio: 'ignore' }).status === 0);
  if (!found) throw new Error('gRPC\'s C core for Python is not installed: Debian\'s python3-grpcio ("node scripts/require-system-tools.mjs" installs it)');
  return found;
}
