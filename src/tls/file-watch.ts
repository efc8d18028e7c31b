// Watches the folders holding a set of files and calls back, debounced, when anything in them
// changes. Watching the folder rather than the file is what catches the kubelet's atomic
// projection: `tls.crt -> ..data/tls.crt`, where only the `..data` symlink is renamed over.
import { dirname, resolve } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

export interface FileSetWatcher {
  ready: Promise<void>;
  close(): Promise<void>;
}

export interface WatchOptions {
  /** Quiet time before a burst of events is reported; keeps a non-atomic writer from being read mid-way. */
  debounceMs?: number;
  /** A periodic re-check, as a safety net for file systems whose events are lost. */
  resyncMs?: number;
}

export function watchFileSet(files: readonly string[], onChange: () => void, opts: WatchOptions = {}): FileSetWatcher {
  const debounceMs = opts.debounceMs ?? 50;
  const dirs = [...new Set(files.map((f) => dirname(resolve(f))))];
  let timer: NodeJS.Timeout | undefined;
  const fire = (): void => {
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  };
  const watcher: FSWatcher = watch(dirs, { ignoreInitial: true, followSymlinks: false, depth: 0, atomic: false, persistent: false });
  watcher.on('all', fire);
  watcher.on('raw', fire);
  const resync = opts.resyncMs && opts.resyncMs > 0 ? setInterval(onChange, opts.resyncMs) : undefined;
  resync?.unref();
  const ready = new Promise<void>((res) => watcher.once('ready', () => res()));
  return {
    ready,
    async close() {
      clearTimeout(timer);
      clearInterval(resync);
      await watcher.close();
    },
  };
}
