// The two kinds of TLS material a component loads: its own identity (a certificate chain and the
// matching key) and the CA bundles it trusts.
import type { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { MaterialError, checkValidity, parseCertificates, parsePrivateKey } from './pem.js';

export interface KeyPair {
  certPem: string;
  keyPem: string;
  /** The leaf first, then any intermediates, as served. */
  chain: X509Certificate[];
  certFile: string;
}

export interface CaBundle {
  pem: string;
  certs: X509Certificate[];
  file: string;
}

export function loadKeyPair(certFile: string, certPem: string, keyFile: string, keyPem: string, now = new Date()): KeyPair {
  const chain = parseCertificates(certFile, certPem);
  const key = parsePrivateKey(keyFile, keyPem);
  const leaf = chain[0] as X509Certificate;
  if (!leaf.checkPrivateKey(key)) {
    throw new MaterialError(keyFile, 'key_mismatch', `private key does not match the certificate in ${certFile}`);
  }
  checkValidity(certFile, leaf, now);
  try {
    // Last line of defence: whatever OpenSSL itself refuses must not reach a live server.
    createSecureContext({ cert: certPem, key: keyPem });
  } catch (err) {
    throw new MaterialError(certFile, 'malformed', `rejected by TLS (${(err as Error).message})`);
  }
  return { certPem, keyPem, chain, certFile };
}

/**
 * A trust bundle. Expired CAs are dropped (they can verify nothing); a bundle left with no
 * usable CA is an error, so that a bad write never silently empties the trust pool.
 */
export function loadCaBundle(file: string, pem: string, now = new Date()): CaBundle {
  const parsed = parseCertificates(file, pem);
  const certs = parsed.filter((c) => new Date(c.validTo) >= now);
  if (certs.length === 0) {
    checkValidity(file, parsed[0] as X509Certificate, now);
  }
  return { pem: certs.map((c) => c.toString()).join(''), certs, file };
}
