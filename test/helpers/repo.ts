// The repository's root, found from a module's location whether it runs from test/ (tap) or was
// compiled into dist-bench/ (the benchmarks reuse the test helpers).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function repoRoot(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  while (!existsSync(join(dir, 'deploy')) || !existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no repository root above ${fileURLToPath(from)}`);
    dir = parent;
  }
  return dir;
}
