// The start-up self-check: does the certificate we serve cover the names others will dial? A
// missing `<svc>.<ns>.svc` is what leaves an APIService at FailedDiscoveryCheck.
import type { X509Certificate } from 'node:crypto';
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

export function serviceDnsNames(service: string, namespace: string, clusterDomain = 'cluster.local'): string[] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.${clusterDomain}`];
}
