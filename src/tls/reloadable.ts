// One place for "files on disk -> validated material in memory, live". Whatever the files hold,
// the rules are the same: validate before use, keep serving the last good value when a write is
// bad, say once which file is wrong and why, and pick up the next good write.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { watchFileSet, type FileSetWatcher } from './file-watch.js';
import { MaterialError } from './pem.js';

export interface ReloadHooks<T> {
  onLoaded?(value: T, files: readonly string[]): void;
  onFailed?(error: MaterialError): void;
}

export interface ReloadOptions {
  debounceMs?: number;
  resyncMs?: number;
}

export class ReloadableFiles<T> {
  private value: T | undefined;
  private lastDigest = '';
  private watcher: FileSetWatcher | undefined;
  private readonly listeners: ((value: T) => void)[] = [];
  private running: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly files: readonly string[],
    private readonly load: (contents: string[]) => T,
    private readonly log: Logger,
    private readonly hooks: ReloadHooks<T> = {},
  ) {}

  get current(): T {
    if (this.value === undefined) throw new Error(`${this.name} has not been loaded`);
    return this.value;
  }

  onChange(listener: (value: T) => void): void {
    this.listeners.push(listener);
  }

  /** Loads once, throwing the MaterialError that names the bad file, then watches. */
  async start(opts: ReloadOptions = {}): Promise<T> {
    const contents = await this.read();
    this.value = this.validate(contents);
    this.lastDigest = digest(contents);
    this.hooks.onLoaded?.(this.value, this.files);
    this.watcher = watchFileSet(this.files, () => void this.reload(), opts);
    await this.watcher.ready;
    return this.value;
  }

  /** Re-reads the files; serialised so that two bursts of events cannot interleave. */
  reload(): Promise<void> {
    this.running = this.running.then(() => this.reloadOnce());
    return this.running;
  }

  async close(): Promise<void> {
    await this.watcher?.close();
  }

  private async reloadOnce(): Promise<void> {
    let contents: string[];
    try {
      contents = await this.read();
    } catch (err) {
      this.fail(err as MaterialError, 'unreadable');
      return;
    }
    const d = digest(contents);
    if (d === this.lastDigest) return;
    this.lastDigest = d;
    let next: T;
    try {
      next = this.validate(contents);
    } catch (err) {
      this.fail(err as MaterialError, 'invalid');
      return;
    }
    this.value = next;
    const changed = this.files;
    this.log.info({ material: this.name, files: changed }, `reloaded ${this.name}`);
    this.hooks.onLoaded?.(next, changed);
    for (const l of this.listeners) {
      // One listener's failure must not stop the others, nor every later reload.
      try {
        l(next);
      } catch (err) {
        this.log.error({ material: this.name, err }, `a listener failed after reloading ${this.name}`);
      }
    }
  }

  private fail(err: MaterialError, what: string): void {
    const reason = err instanceof MaterialError ? err : new MaterialError(this.files[0] ?? this.name, 'malformed', String(err));
    this.log.error({ material: this.name, file: reason.file, problem: reason.problem }, `${what} ${this.name}, keeping the last good one: ${reason.message}`);
    this.hooks.onFailed?.(reason);
  }

  private validate(contents: string[]): T {
    try {
      return this.load(contents);
    } catch (err) {
      if (err instanceof MaterialError) throw err;
      throw new MaterialError(this.files[0] ?? this.name, 'malformed', (err as Error).message);
    }
  }

  // Settled in declared order, so the file named when several are missing is always the first one.
  private async read(): Promise<string[]> {
    const results = await Promise.allSettled(this.files.map((f) => readFile(f, 'utf8')));
    return results.map((r, i) => {
      if (r.status === 'fulfilled') return r.value;
      const f = this.files[i]!;
      const code = (r.reason as NodeJS.ErrnoException).code;
      throw new MaterialError(f, code === 'ENOENT' ? 'missing' : 'unreadable', code === 'ENOENT' ? 'file does not exist' : `cannot read (${code})`);
    });
  }
}

function digest(contents: string[]): string {
  const h = createHash('sha256');
  for (const c of contents) h.update(c).update('\0');
  return h.digest('hex');
}
