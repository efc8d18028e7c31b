// Which trust bundle a verified client certificate belongs to. TLS has already verified the chain
// against the union of our bundles; this only tells them apart (front-proxy CA vs client CA).
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/** The chain the client presented, leaf first (intermediates only when it sent them). */
export function presentedChain(socket: TLSSocket): X509Certificate[] {
  const leaf = socket.getPeerX509Certificate();
  if (!leaf) return [];
  const chain = [leaf];
  let detailed: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  const seen = new Set<string>([leaf.fingerprint256]);
  while (detailed?.issuerCertificate && detailed.issuerCertificate !== detailed) {
    detailed = detailed.issuerCertificate;
    const cert = new X509Certificate(detailed.raw);
    if (seen.has(cert.fingerprint256)) break;
    seen.add(cert.fingerprint256);
    chain.push(cert);
  }
  return chain;
}

/** True when some certificate of `chain`, walking up from the leaf, was issued by an anchor. */
export function chainsTo(chain: readonly X509Certificate[], anchors: readonly X509Certificate[]): boolean {
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i] as X509Certificate;
    if (anchors.some((a) => issuedBy(cert, a))) return true;
    const next = chain[i + 1];
    if (!next || !issuedBy(cert, next)) return false;
  }
  return false;
}
