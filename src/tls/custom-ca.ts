// Custom CA trust for outgoing connections (the scalers' upstreams): Node's default roots plus
// every CA certificate found in the --ca-dir folders, live. The folders are typically a mounted
// ConfigMap or Secret, so the kubelet's projection layout is the normal case: top-level symlinks
// `ca.crt -> ..data/ca.crt` are followed, the `..data` / `..<timestamp>` internals are skipped.
//
// Rules, as for the rest of the live material: a bad file never breaks the others, it is skipped
// with one log line naming the file and the reason (once per distinct content, not at every
// reload), and a reload never throws.
import { createHash, type X509Certificate } from 'node:crypto';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { watchFileSet, type FileSetWatcher } from './file-watch.js';
import { checkValidity, parseCertificates, type MaterialError, type MaterialProblem } from './pem.js';

export interface CustomCaOptions {
  /** Quiet time before a burst of file events triggers a reload. */
  debounceMs?: number;
  /**
   * Periodic re-scan (default 60 s): a safety net for lost events, and what notices a CA that
   * expires, or becomes valid, without its file changing. 0 disables it.
   */
  resyncMs?: number;
}

/** Larger than any sane CA bundle; guards against someone mounting a disk image by mistake. */
const MAX_FILE_BYTES = 8 * 1024 * 1024;

interface Trusted {
  fingerprint: string;
  pem: string;
  subject: string;
  file: string;
}

interface BadFile {
  file: string;
  /** What makes this report distinct: same key, same report, logged once. */
  key: string;
  problem: MaterialProblem;
  message: string;
  /** false: the file's other certificates are still trusted. */
  skipped: boolean;
}

interface Scan {
  trusted: Trusted[];
  bad: BadFile[];
  /** Identity of each folder (device:inode, or "missing"): when it moves, the watch is redone. */
  watchKey: string;
}

export class CustomCaTrust {
  private readonly dirs: readonly string[];
  private readonly defaultRoots: string;
  private trusted: Trusted[] = [];
  private bundle: string;
  private readonly listeners: (() => void)[] = [];
  /** file -> key of the last problem logged for it. */
  private readonly reported = new Map<string, string>();
  /** dir -> reason last logged for it being unusable. */
  private readonly dirReported = new Map<string, string>();
  private watcher: FileSetWatcher | undefined;
  private watchKey: string | undefined;
  private running: Promise<void> = Promise.resolve();
  private started = false;
  private loaded = false;
  private closed = false;

  constructor(
    dirs: readonly string[],
    private readonly log: Logger,
    private readonly opts: CustomCaOptions = {},
  ) {
    this.dirs = [...new Set(dirs.map((d) => resolve(d)))];
    // 'default' is the bundled Mozilla roots plus NODE_EXTRA_CA_CERTS (plus the OS store under
    // --use-system-ca): exactly what a connection without `ca` would trust. Passing `ca` replaces
    // that store, so starting from it keeps those sources working alongside the custom CAs.
    this.defaultRoots = (tls.getCACertificates?.('default') ?? tls.rootCertificates).join('\n');
    this.bundle = this.defaultRoots;
  }

  /** Number of custom CA certificates currently trusted (distinct certificates, not files). */
  get customCount(): number {
    return this.trusted.length;
  }

  /** The subjects of the custom CAs currently trusted, for diagnostics. */
  get customSubjects(): string[] {
    return this.trusted.map((t) => t.subject);
  }

  /** PEM bundle for tls `ca`: the default roots plus every valid custom CA certificate. */
  caBundle(): string {
    return this.bundle;
  }

  /** Called after a reload that changed the set of trusted certificates. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Loads (never throws on bad content), then watches every folder. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.reload();
    this.log.info(
      { dirs: this.dirs, custom: this.trusted.length, subjects: this.customSubjects },
      `trusting ${this.trusted.length} custom CA certificate(s) from ${this.dirs.length} folder(s) for outgoing connections`,
    );
  }

  /** Re-scans the folders; serialised, and never rejects. */
  reload(): Promise<void> {
    this.running = this.running.then(() => this.reloadOnce()).catch((err: unknown) => {
      this.log.error({ err }, 'custom CA reload failed, keeping the current trust');
    });
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running;
    await this.watcher?.close();
    this.watcher = undefined;
  }

  private async reloadOnce(): Promise<void> {
    if (this.closed) return;
    const scan = await this.scan();
    this.report(scan);
    this.apply(scan.trusted);
    if (this.started && this.dirs.length > 0 && scan.watchKey !== this.watchKey) {
      // A folder appeared, vanished or was replaced: chokidar does not follow a folder created
      // after the watch began, so watch again, then look once more for what landed meanwhile.
      await this.watcher?.close();
      this.watchKey = scan.watchKey;
      if (this.closed) return;
      this.watcher = watchFileSet(
        this.dirs.map((d) => join(d, '..data')), // any name inside: the watcher watches its folder
        () => void this.reload(),
        { debounceMs: this.opts.debounceMs ?? 50, resyncMs: this.opts.resyncMs ?? 60_000 },
      );
      await this.watcher.ready;
      void this.reload();
    }
  }

  private apply(next: Trusted[]): void {
    const before = this.trusted.map((t) => t.fingerprint).join(',');
    const after = next.map((t) => t.fingerprint).join(',');
    if (before === after && this.loaded) return;
    const first = !this.loaded;
    this.loaded = true;
    this.trusted = next;
    this.bundle = next.length === 0 ? this.defaultRoots : `${this.defaultRoots}\n${next.map((t) => t.pem).join('\n')}`;
    if (first) return;
    this.log.info(
      { dirs: this.dirs, custom: next.length, subjects: this.customSubjects },
      `custom CA trust changed: ${next.length} custom CA certificate(s)`,
    );
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.log.error({ err }, 'custom CA change listener failed');
      }
    }
  }

  private report(scan: Scan): void {
    for (const b of scan.bad) {
      if (this.reported.get(b.file) === b.key) continue;
      this.reported.set(b.file, b.key);
      this.log.warn({ file: b.file, problem: b.problem }, `${b.skipped ? 'custom CA file skipped' : 'custom CA file partly used'}: ${b.message}`);
    }
    const badNow = new Set(scan.bad.map((b) => b.file));
    for (const file of this.reported.keys()) {
      // Forget files that are gone or good, so that the same problem coming back is reported again.
      if (!badNow.has(file)) this.reported.delete(file);
    }
  }

  private async scan(): Promise<Scan> {
    const trusted: Trusted[] = [];
    const bad: BadFile[] = [];
    const keyParts: string[] = [];
    const fingerprints = new Set<string>();
    const now = new Date();
    for (const dir of this.dirs) {
      let names: string[];
      try {
        const st = await stat(dir);
        if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
        keyParts.push(`${st.dev}:${st.ino}`);
        names = (await readdir(dir)).sort();
        this.dirReported.delete(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
        keyParts.push(`missing:${code}`);
        if (this.dirReported.get(dir) !== code) {
          this.dirReported.set(dir, code);
          if (code === 'ENOENT') this.log.info({ dir }, `custom CA folder ${dir} does not exist (yet); it will be picked up when it appears`);
          else this.log.warn({ dir, code }, `custom CA folder ${dir} cannot be read (${code}); it will be picked up when it can`);
        }
        continue;
      }
      for (const name of names) {
        if (name.startsWith('..')) continue; // kubelet's projection internals (..data, ..2024_01_01...)
        const file = join(dir, name);
        const result = await readCaFile(file, now);
        if (result === undefined) continue;
        if ('problem' in result) {
          bad.push(result);
          continue;
        }
        for (const t of result.trusted) {
          if (fingerprints.has(t.fingerprint)) continue;
          fingerprints.add(t.fingerprint);
          trusted.push(t);
        }
        if (result.partial) bad.push(result.partial);
      }
    }
    return { trusted, bad, watchKey: keyParts.join('|') };
  }
}

type FileResult = BadFile | { trusted: Trusted[]; partial?: BadFile };

/** undefined: not a regular file (a folder, a socket...) or gone meanwhile; nothing to say. */
async function readCaFile(file: string, now: Date): Promise<FileResult | undefined> {
  let text: string;
  try {
    const st = await stat(file); // follows symlinks: the kubelet's `ca.crt -> ..data/ca.crt`
    if (!st.isFile()) return undefined;
    if (st.size > MAX_FILE_BYTES) return bad(file, 'malformed', `size:${st.size}`, `${file}: larger than ${MAX_FILE_BYTES} bytes, not a CA bundle`);
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
    if (code === 'ENOENT') {
      // A dangling symlink is worth saying; a file deleted between readdir and stat is not.
      return (await isDanglingLink(file)) ? bad(file, 'missing', code, `${file}: symbolic link to a file that does not exist`) : undefined;
    }
    return bad(file, 'unreadable', code, `${file}: cannot read (${code})`);
  }
  const digest = createHash('sha256').update(text).digest('hex');
  let certs: X509Certificate[];
  try {
    certs = parseCertificates(file, text);
  } catch (err) {
    const e = err as MaterialError;
    return bad(file, e.problem, `${digest}:${e.problem}`, e.message);
  }
  const trusted: Trusted[] = [];
  const problems: MaterialError[] = [];
  for (const cert of certs) {
    try {
      checkValidity(file, cert, now);
      trusted.push({ fingerprint: cert.fingerprint256, pem: cert.toString().trim(), subject: cert.subject.replace(/\n/g, ','), file });
    } catch (err) {
      problems.push(err as MaterialError);
    }
  }
  const firstProblem = problems[0];
  if (!firstProblem) return { trusted };
  const key = `${digest}:${problems.map((p) => p.problem).join(',')}`;
  if (trusted.length === 0) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more unusable certificate(s))` : '';
    return bad(file, firstProblem.problem, key, `${firstProblem.message}${more}`);
  }
  const detail = problems.map((p) => p.message.slice(file.length + 2)).join('; ');
  const partial = bad(file, firstProblem.problem, key, `${file}: ${problems.length} of ${certs.length} certificates skipped: ${detail}`, false);
  return { trusted, partial };
}

function bad(file: string, problem: MaterialProblem, key: string, message: string, skipped = true): BadFile {
  return { file, problem, key, message, skipped };
}

async function isDanglingLink(file: string): Promise<boolean> {
  try {
    return (await lstat(file)).isSymbolicLink();
  } catch {
    return false;
  }
}
