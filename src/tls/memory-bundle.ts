// A trust bundle held in memory and replaced from outside (the cluster's authentication
// ConfigMap), with the same rule as files: an invalid update keeps the last good bundle.
import type { Logger } from 'pino';
import type { BundleSource } from './live-tls.js';
import { loadCaBundle, type CaBundle } from './material.js';
import type { MaterialError } from './pem.js';

export class MemoryBundle implements BundleSource {
  private value: CaBundle;
  private readonly listeners: ((v: CaBundle) => void)[] = [];

  constructor(private readonly origin: string, private readonly log: Logger, private readonly onFailed?: (e: MaterialError) => void) {
    this.value = { pem: '', certs: [], file: origin };
  }

  get current(): CaBundle {
    return this.value;
  }

  /** Replaces the bundle; '' empties it. Returns false (and logs) when the PEM is not usable. */
  set(pem: string): boolean {
    if (pem === this.value.pem) return true;
    let next: CaBundle;
    try {
      next = pem.trim() === '' ? { pem: '', certs: [], file: this.origin } : loadCaBundle(this.origin, pem);
    } catch (err) {
      this.log.error({ source: this.origin, reason: (err as Error).message }, `invalid CA bundle from ${this.origin}, keeping the last good one`);
      this.onFailed?.(err as MaterialError);
      return false;
    }
    if (next.pem === this.value.pem) return true;
    this.value = next;
    for (const l of this.listeners) l(next);
    return true;
  }

  onChange(listener: (value: CaBundle) => void): void {
    this.listeners.push(listener);
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}
}
