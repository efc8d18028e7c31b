// A component's TLS material as one live value: its key pair plus the CA bundles it trusts (for
// client certificates on a server, for the peer on a client), rebuilt whenever any file changes.
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { CertificateMetrics } from '../observability/metrics.js';
import { loadCaBundle, loadKeyPair, type CaBundle, type KeyPair } from './material.js';
import type { MaterialError } from './pem.js';
import type { TlsPolicy } from './policy.js';
import { ReloadableFiles, type ReloadOptions } from './reloadable.js';

export interface LiveTlsFiles {
  certFile: string;
  keyFile: string;
  /** Named trust bundles, e.g. `client-ca` and `requestheader-client-ca`. Empty paths are skipped. */
  caFiles: Record<string, string>;
  /** Named trust bundles that do not come from files (e.g. from a ConfigMap). */
  caSources?: Record<string, BundleSource>;
}

/** A trust bundle that changes over time: a watched file, or one kept in memory. */
export interface BundleSource {
  readonly current: CaBundle;
  onChange(listener: (value: CaBundle) => void): void;
  start(opts?: ReloadOptions): Promise<unknown>;
  close(): Promise<void>;
}

export class LiveTls {
  readonly keyPair: ReloadableFiles<KeyPair>;
  readonly bundles = new Map<string, BundleSource>();
  private readonly listeners: (() => void)[] = [];
  /** Bumped on every change, so per-connection caches can tell they are stale. */
  generation = 0;

  constructor(files: LiveTlsFiles, private readonly policy: TlsPolicy, log: Logger, metrics: CertificateMetrics) {
    const hooks = <T extends KeyPair | CaBundle>(certsOf: (v: T) => { file: string; certs: KeyPair['chain'] }) => ({
      onLoaded: (v: T, changed: readonly string[]) => {
        const { file, certs } = certsOf(v);
        metrics.loaded(changed, new Map([[file, certs]]));
      },
      onFailed: (e: MaterialError) => metrics.failed(e),
    });
    this.keyPair = new ReloadableFiles(
      'serving certificate',
      [files.certFile, files.keyFile],
      ([cert, key]) => loadKeyPair(files.certFile, cert as string, files.keyFile, key as string),
      log,
      hooks<KeyPair>((v) => ({ file: v.certFile, certs: v.chain })),
    );
    for (const [name, path] of Object.entries(files.caFiles)) {
      if (!path) continue;
      this.bundles.set(
        name,
        new ReloadableFiles(name, [path], ([pem]) => loadCaBundle(path, pem as string), log, hooks<CaBundle>((v) => ({ file: v.file, certs: v.certs }))),
      );
    }
    for (const [name, source] of Object.entries(files.caSources ?? {})) this.bundles.set(name, source);
    for (const source of [this.keyPair, ...this.bundles.values()]) {
      (source as BundleSource).onChange(() => {
        this.generation++;
        for (const l of this.listeners) l();
      });
    }
  }

  /** Loads the key pair first, then each bundle, so a start-up error names the first bad file. */
  async start(opts?: ReloadOptions): Promise<void> {
    try {
      await this.keyPair.start(opts);
      for (const bundle of this.bundles.values()) await bundle.start(opts);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  bundle(name: string): CaBundle | undefined {
    return this.bundles.get(name)?.current;
  }

  /**
   * Options for a server context or a client context alike: identity, the named trust bundles,
   * TLS 1.3 policy. Each use names its bundles, so that trust meant for one never widens another.
   */
  secureContextOptions(trust: readonly string[]): SecureContextOptions {
    const ca = trust.map((name) => this.bundles.get(name)?.current.pem ?? '').join('');
    return {
      cert: this.keyPair.current.certPem,
      key: this.keyPair.current.keyPem,
      ca: ca === '' ? undefined : ca,
      minVersion: this.policy.minVersion,
      maxVersion: this.policy.maxVersion,
      ...(this.policy.ciphersuites ? { ciphersuites: this.policy.ciphersuites } : {}),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.keyPair, ...this.bundles.values()].map((s) => (s as BundleSource).close()));
  }
}
