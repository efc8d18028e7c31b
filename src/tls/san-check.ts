// The start-up self-check: does the certificate we serve cover the names others will dial? A
// missing `<svc>.<ns>.svc` is what leaves an APIService at FailedDiscoveryCheck.
import type { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import type { LiveTls } from './live-tls.js';
import { dnsNames } from './pem.js';

function covers(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  if (p === n) return true;
  // A wildcard stands for exactly one leftmost label, as TLS clients read it.
  return p.startsWith('*.') && n.slice(n.indexOf('.') + 1) === p.slice(2) && n.indexOf('.') > 0;
}

export function uncoveredNames(cert: X509Certificate, expected: readonly string[]): { missing: string[]; present: string[] } {
  const present = dnsNames(cert);
  return { missing: expected.filter((name) => !present.some((p) => covers(p, name))), present };
}

/** Checks the served certificate now and after every reload; one warning line when names are missing. */
export function warnOnUncoveredNames(tls: LiveTls, expected: readonly string[], log: Logger, consequence: string): void {
  const check = () => {
    const leaf = tls.keyPair.current.chain[0] as X509Certificate;
    const { missing, present } = uncoveredNames(leaf, expected);
    if (missing.length > 0) {
      log.warn({ certFile: tls.keyPair.current.certFile, missing, present }, `serving certificate does not cover ${missing.join(', ')}: ${consequence}`);
    }
  };
  check();
  tls.keyPair.onChange(check);
}
