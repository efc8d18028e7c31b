// Reading the operator's certificate Secret: which CA signs, which CAs the bundle trusts, and what
// is wrong with the serving certificate. Pure and synchronous; every problem is one sentence that
// names the Secret key, because that sentence ends up in a log line and a Kubernetes Event.
import type { KeyObject, X509Certificate } from 'node:crypto';
import { loadKeyPair } from '../../tls/material.js';
import { MaterialError, parseCertificates, parsePrivateKey } from '../../tls/pem.js';
import { uncoveredNames } from '../../tls/san-check.js';

export const CA_CERT_KEY = 'ca.crt';
export const CA_KEY_KEY = 'ca.key';
export const TLS_CERT_KEY = 'tls.crt';
export const TLS_KEY_KEY = 'tls.key';
export const SECRET_KEYS = [CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY] as const;

const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface ParsedCa {
  cert: X509Certificate;
  /** The certificate alone, as PEM (what goes back into ca.crt). */
  pem: string;
  notBefore: Date;
  notAfter: Date;
  fingerprint: string;
}

/** The CA half of the Secret: ca.crt and ca.key. */
export type CaInspection =
  | {
      ok: true;
      /** The CA ca.key belongs to. */
      signing: ParsedCa;
      /** ca.key exactly as stored. */
      signingKeyPem: string;
      /** Unexpired CA certificates of ca.crt other than the signing CA, in bundle order, without duplicates. */
      others: ParsedCa[];
      /** Every certificate of ca.crt, for the record (expired and non-CA entries included). */
      all: ParsedCa[];
    }
  | { ok: false; problem: string };

/** The serving half of the Secret: tls.crt and tls.key. */
export type LeafInspection =
  | {
      ok: true;
      cert: X509Certificate;
      notAfter: Date;
      /** The CA of the bundle that signed it, when one did. */
      issuer: ParsedCa | undefined;
      /** Something that makes the certificate unfit whatever its age (wrong CA, missing SANs, ...). */
      defect: string | undefined;
      /** min(leaf notAfter, issuer notAfter): past it, nothing can verify the leaf. */
      effectiveNotAfter: Date;
    }
  | { ok: false; problem: string };

export function isBlank(value: string | undefined): boolean {
  return value === undefined || value.trim() === '';
}

/** A Secret holding none of our four keys (or only blank values) is treated as absent. */
export function hasNoCertificateData(data: Record<string, string>): boolean {
  return SECRET_KEYS.every((k) => isBlank(data[k]));
}

export function describe(cert: X509Certificate): string {
  return `"${cert.subject.split('\n').join(',')}"`;
}

export function isExpired(notAfter: Date, now: Date): boolean {
  return notAfter.getTime() < now.getTime();
}

function toParsedCa(cert: X509Certificate): ParsedCa {
  return {
    cert,
    pem: cert.toString(),
    notBefore: cert.validFromDate,
    notAfter: cert.validToDate,
    fingerprint: cert.fingerprint256,
  };
}

function matchesKey(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false;
  }
}

/**
 * Key types issueCertificate can sign with (mirrors keySpecOf in src/certs/x509.ts). Checked here
 * so that an unusable ca.key is reported as such instead of failing at the next renewal.
 */
function unsupportedSigningKey(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === 'rsa' || type === 'ed25519') return undefined;
  if (type === 'ec' && (curve === 'prime256v1' || curve === 'secp384r1')) return undefined;
  return `${String(type)}${curve ? ` (${curve})` : ''}`;
}

function materialProblem(err: unknown): string {
  if (err instanceof MaterialError) return err.message;
  throw err;
}

function missing(data: Record<string, string>, key: string): string | undefined {
  return isBlank(data[key]) ? `${key} is missing or empty` : undefined;
}

export function inspectCa(data: Record<string, string>, now: Date): CaInspection {
  const absent = missing(data, CA_CERT_KEY) ?? missing(data, CA_KEY_KEY);
  if (absent) return { ok: false, problem: absent };
  let all: ParsedCa[];
  let key: KeyObject;
  try {
    all = parseCertificates(CA_CERT_KEY, data[CA_CERT_KEY] as string).map(toParsedCa);
    key = parsePrivateKey(CA_KEY_KEY, data[CA_KEY_KEY] as string);
  } catch (err) {
    return { ok: false, problem: materialProblem(err) };
  }
  const matching = all.filter((c) => matchesKey(c.cert, key));
  if (matching.length === 0) {
    const subjects = all.map((c) => describe(c.cert)).join(', ');
    return { ok: false, problem: `${CA_KEY_KEY} does not match any certificate in ${CA_CERT_KEY} (${subjects})` };
  }
  const matchingCas = matching.filter((c) => c.cert.ca);
  if (matchingCas.length === 0) {
    const first = matching[0] as ParsedCa;
    return { ok: false, problem: `${CA_KEY_KEY} belongs to ${describe(first.cert)} in ${CA_CERT_KEY}, which is not a CA certificate` };
  }
  // The same key may appear under several certificates (a duplicate entry, a re-signed CA): take the longest-lived.
  const signing = matchingCas.reduce((a, b) => (b.notAfter > a.notAfter ? b : a));
  if (isExpired(signing.notAfter, now)) {
    return {
      ok: false,
      problem: `the signing CA ${describe(signing.cert)} (the one ${CA_KEY_KEY} belongs to) expired at ${signing.notAfter.toISOString()}`,
    };
  }
  const unsupported = unsupportedSigningKey(key);
  if (unsupported) return { ok: false, problem: `${CA_KEY_KEY} is a ${unsupported} key, which cannot sign certificates here` };
  const seen = new Set([signing.fingerprint]);
  const others: ParsedCa[] = [];
  for (const c of all) {
    if (!c.cert.ca || isExpired(c.notAfter, now) || seen.has(c.fingerprint)) continue;
    seen.add(c.fingerprint);
    others.push(c);
  }
  return { ok: true, signing, signingKeyPem: data[CA_KEY_KEY] as string, others, all };
}

function issuedBy(cert: X509Certificate, ca: ParsedCa): boolean {
  try {
    return cert.checkIssued(ca.cert) && cert.verify(ca.cert.publicKey);
  } catch {
    return false;
  }
}

/**
 * The serving certificate against the (already sound) CA half. Problems that make tls.crt/tls.key
 * unusable as a pair are `ok: false`; everything else is judged by the caller from `defect` and the dates.
 */
export function inspectLeaf(
  data: Record<string, string>,
  cas: { signing: ParsedCa; others: ParsedCa[] },
  dnsNames: readonly string[],
  now: Date,
): LeafInspection {
  const absent = missing(data, TLS_CERT_KEY) ?? missing(data, TLS_KEY_KEY);
  if (absent) return { ok: false, problem: absent };
  let cert: X509Certificate;
  try {
    cert = loadKeyPair(TLS_CERT_KEY, data[TLS_CERT_KEY] as string, TLS_KEY_KEY, data[TLS_KEY_KEY] as string, now).chain[0] as X509Certificate;
  } catch (err) {
    if (!(err instanceof MaterialError) || (err.problem !== 'expired' && err.problem !== 'not_yet_valid')) {
      return { ok: false, problem: materialProblem(err) };
    }
    // Parsable and matching, only out of its validity window: a matter for renewal, not corruption.
    cert = parseCertificates(TLS_CERT_KEY, data[TLS_CERT_KEY] as string)[0] as X509Certificate;
  }
  const notAfter = cert.validToDate;
  const issuer = [cas.signing, ...cas.others].find((ca) => issuedBy(cert, ca));
  const effectiveNotAfter = issuer && issuer.notAfter < notAfter ? issuer.notAfter : notAfter;
  return { ok: true, cert, notAfter, issuer, effectiveNotAfter, defect: leafDefect(cert, issuer, dnsNames, now) };
}

function leafDefect(cert: X509Certificate, issuer: ParsedCa | undefined, dnsNames: readonly string[], now: Date): string | undefined {
  if (cert.ca) return `${TLS_CERT_KEY} holds a CA certificate ${describe(cert)}, not a serving certificate`;
  if (!issuer) {
    return `${TLS_CERT_KEY} (issuer "${cert.issuer.split('\n').join(',')}") is not signed by any valid CA in ${CA_CERT_KEY}`;
  }
  // node:crypto's keyUsage is the extended key usage list; without the extension any purpose is allowed.
  const eku = cert.keyUsage as string[] | undefined;
  const lacking = [EKU_SERVER_AUTH, EKU_CLIENT_AUTH].filter((oid) => eku !== undefined && !eku.includes(oid));
  if (lacking.length > 0) return `${TLS_CERT_KEY} lacks the extended key usage ${lacking.map((oid) => (oid === EKU_SERVER_AUTH ? 'serverAuth' : 'clientAuth')).join(' and ')}`;
  const { missing: uncovered } = uncoveredNames(cert, dnsNames);
  if (uncovered.length > 0) return `${TLS_CERT_KEY} does not cover the DNS names ${uncovered.join(', ')} required by the configuration`;
  if (cert.validFromDate > now) return `${TLS_CERT_KEY} is not valid before ${cert.validFromDate.toISOString()}`;
  return undefined;
}
