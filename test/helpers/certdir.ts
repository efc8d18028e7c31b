// Writing certificate folders the ways the real world does: the kubelet's atomic projection
// (timestamped folder, `..data` symlink renamed over, stable top-level links) and plain writes.
import { mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export class ProjectedDir {
  private n = 0;
  constructor(readonly dir: string) {}

  /** One atomic update of all files, exactly as kubelet's AtomicWriter does it. */
  async write(files: Record<string, string>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const ts = `..${new Date().toISOString().replace(/[-:.]/g, '_')}.${++this.n}`;
    await mkdir(join(this.dir, ts));
    for (const [name, content] of Object.entries(files)) await writeFile(join(this.dir, ts, name), content);
    let old: string | undefined;
    try {
      old = await readlink(join(this.dir, '..data'));
    } catch {
      old = undefined;
    }
    await symlink(ts, join(this.dir, '..data_tmp'));
    await rename(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    for (const name of Object.keys(files)) {
      await symlink(join('..data', name), join(this.dir, name)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
    }
    if (old) await rm(join(this.dir, old), { recursive: true });
  }
}

/** Replace a file the way `cp` or an editor without atomic save does: in place. */
export async function writeInPlace(path: string, content: string): Promise<void> {
  await writeFile(path, content);
}

/** Replace a file atomically: write beside it, rename over. */
export async function writeAtomic(path: string, content: string): Promise<void> {
  await writeFile(`${path}.tmp`, content);
  await rename(`${path}.tmp`, path);
}
