// @peculiar/x509 wires its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject, webcrypto } from 'node:crypto';
import { SocketAddress, isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';

export type KeyAlgorithm = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096' | 'ed25519';
export type ExtendedUsage = 'serverAuth' | 'clientAuth';

export interface CertificateBundle {
  certPem: string;
  /** PKCS#8 ("PRIVATE KEY") PEM. */
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
  /** Upper-case hex, no leading zero octet: the form node:crypto and openssl print. */
  serialNumber: string;
}

/** Anything that can sign: a CA certificate and its private key. */
export interface Issuer {
  certPem: string;
  keyPem: string;
}

export interface CreateCAOptions {
  commonName: string;
  organization?: string[];
  keyAlgorithm?: KeyAlgorithm;
  notBefore?: Date;
  notAfter?: Date;
}

export interface IssueCertificateOptions {
  commonName: string;
  organization?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  /**
   * An empty list yields a certificate usable for neither TLS role (its EKU
   * only says emailProtection). Omitting the extension instead would make it
   * valid for every purpose, which is the opposite of what callers asking for
   * "no usages" want.
   */
  extendedUsages: ExtendedUsage[];
  keyAlgorithm?: KeyAlgorithm;
  notBefore?: Date;
  notAfter?: Date;
  /** Intermediate CA: CA basic constraints and keyCertSign/cRLSign usage. */
  isCA?: boolean;
}

export interface CertificateDescription {
  subject: string;
  issuer: string;
  serialNumber: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
  isCA: boolean;
}

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type X509Lib = typeof X509;

const CLOCK_SKEW_MS = 5 * 60 * 1000;
const CA_VALIDITY_YEARS = 10;
const LEAF_VALIDITY_YEARS = 1;
const SERIAL_BYTES = 16;
const OID_COMMON_NAME = '2.5.4.3';
const OID_ORGANIZATION = '2.5.4.10';
const OID_EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const OID_EKU_EMAIL_PROTECTION = '1.3.6.1.5.5.7.3.4';

// ---------------------------------------------------------------------------
// Loading @peculiar/x509
// ---------------------------------------------------------------------------

let x509Lib: Promise<X509Lib> | undefined;

/** Loaded once, on first use: generation is rare and the library is large. */
function loadX509(): Promise<X509Lib> {
  x509Lib ??= (async () => {
    const lib: X509Lib = await import('@peculiar/x509');
    lib.cryptoProvider.set(globalThis.crypto);
    return lib;
  })();
  return x509Lib;
}

// ---------------------------------------------------------------------------
// Key algorithms
// ---------------------------------------------------------------------------

interface KeySpec {
  /** WebCrypto parameters for generateKey and importKey. */
  params: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams | webcrypto.Algorithm;
  /** Extra signing parameters; ECDSA keys do not carry their hash. */
  signing: webcrypto.Algorithm | webcrypto.EcdsaParams;
  /** RSA key exchange (TLS <= 1.2) encrypts to the key, so leaves need keyEncipherment. */
  isRsa: boolean;
}

const RSA_PUBLIC_EXPONENT = new Uint8Array([1, 0, 1]);

function rsaSpec(modulusLength: number): KeySpec {
  const params: webcrypto.RsaHashedKeyGenParams = {
    name: 'RSASSA-PKCS1-v1_5',
    modulusLength,
    publicExponent: RSA_PUBLIC_EXPONENT,
    hash: 'SHA-256',
  };
  return { params, signing: { name: 'RSASSA-PKCS1-v1_5' }, isRsa: true };
}

function ecdsaSpec(namedCurve: 'P-256' | 'P-384', hash: 'SHA-256' | 'SHA-384'): KeySpec {
  return { params: { name: 'ECDSA', namedCurve }, signing: { name: 'ECDSA', hash }, isRsa: false };
}

function keySpec(algorithm: KeyAlgorithm): KeySpec {
  switch (algorithm) {
    case 'ecdsa-p256':
      return ecdsaSpec('P-256', 'SHA-256');
    case 'ecdsa-p384':
      return ecdsaSpec('P-384', 'SHA-384');
    case 'rsa-2048':
      return rsaSpec(2048);
    case 'rsa-3072':
      return rsaSpec(3072);
    case 'rsa-4096':
      return rsaSpec(4096);
    case 'ed25519':
      return { params: { name: 'Ed25519' }, signing: { name: 'Ed25519' }, isRsa: false };
  }
}

/** Maps an existing key (e.g. a CA loaded from disk) back to the algorithm we sign with. */
function keySpecOf(key: KeyObject): KeySpec {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ed25519') return keySpec('ed25519');
  if (key.asymmetricKeyType === 'rsa' && details.modulusLength !== undefined) return rsaSpec(details.modulusLength);
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return keySpec('ecdsa-p256');
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'secp384r1') return keySpec('ecdsa-p384');
  throw new Error(
    `unsupported issuer key type ${String(key.asymmetricKeyType)}${details.namedCurve ? ` (${details.namedCurve})` : ''}`,
  );
}

async function generateKeyPair(spec: KeySpec): Promise<CryptoKeyPair> {
  return (await globalThis.crypto.subtle.generateKey(spec.params, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function exportPrivateKeyPem(x509: X509Lib, key: CryptoKey): Promise<string> {
  const der = await globalThis.crypto.subtle.exportKey('pkcs8', key);
  return withTrailingNewline(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

// ---------------------------------------------------------------------------
// Input normalisation
// ---------------------------------------------------------------------------

function withTrailingNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

/** DER times carry whole seconds; rounding here makes the returned dates equal the encoded ones. */
function toWholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

function addYears(date: Date, years: number): Date {
  const result = new Date(date.getTime());
  result.setUTCFullYear(result.getUTCFullYear() + years);
  return result;
}

function resolveValidity(notBefore: Date | undefined, notAfter: Date | undefined, defaultYears: number) {
  const now = toWholeSeconds(new Date());
  const start = notBefore ? toWholeSeconds(notBefore) : new Date(now.getTime() - CLOCK_SKEW_MS);
  // The skew allowance should not eat into the requested lifetime, hence "now".
  const end = notAfter ? toWholeSeconds(notAfter) : addYears(notBefore ? start : now, defaultYears);
  for (const d of [start, end]) {
    if (Number.isNaN(d.getTime())) throw new Error('invalid certificate validity date');
    // @peculiar/asn1-x509 encodes dates before 2050 as UTCTime, which cannot represent years before 1950.
    if (d.getUTCFullYear() < 1950) throw new Error(`certificate validity date ${d.toISOString()} is before 1950`);
  }
  if (end.getTime() <= start.getTime()) {
    throw new Error(`certificate notAfter ${end.toISOString()} is not after notBefore ${start.toISOString()}`);
  }
  return { notBefore: start, notAfter: end };
}

function randomSerialHex(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(SERIAL_BYTES));
  // An all-zero serial is illegal; the library would silently substitute its own.
  if (bytes.every((b) => b === 0)) bytes[SERIAL_BYTES - 1] = 1;
  return Buffer.from(bytes).toString('hex');
}

function requireNonEmpty(what: string, value: string): void {
  if (value.trim() === '') throw new Error(`${what} must not be empty`);
}

const DNS_NAME = /^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/i;

function checkDnsName(name: string): void {
  if (name.length > 253 || !DNS_NAME.test(name)) throw new Error(`invalid DNS name in SAN: ${JSON.stringify(name)}`);
}

/**
 * The library's IPv6 parser knows neither embedded IPv4 ("::ffff:10.0.0.1")
 * nor zone IDs, and quietly treats "a/b" as a CIDR; normalise or reject first.
 */
function normaliseIp(ip: string): string {
  const family = isIP(ip);
  if (family === 0 || ip.includes('%')) throw new Error(`invalid IP address in SAN: ${JSON.stringify(ip)}`);
  if (family === 4) return ip;
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!dotted) return ip;
  const [a, b, c, d] = dotted.slice(2).map(Number) as [number, number, number, number];
  return `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

function subjectName(x509: X509Lib, commonName: string, organization: string[] = []): X509.Name {
  requireNonEmpty('commonName', commonName);
  organization.forEach((o) => requireNonEmpty('organization', o));
  // One RDN per value (a multi-valued RDN would need DER set sorting), most significant first,
  // and explicit UTF8String: the library's string form mangles values starting with '#' or quotes.
  return new x509.Name([
    ...organization.map((o) => ({ [OID_ORGANIZATION]: [{ utf8String: o }] })),
    { [OID_COMMON_NAME]: [{ utf8String: commonName }] },
  ]);
}

// ---------------------------------------------------------------------------
// Extensions
// ---------------------------------------------------------------------------

async function caExtensions(x509: X509Lib, publicKey: CryptoKey): Promise<X509.Extension[]> {
  const { KeyUsageFlags } = x509;
  return [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey, false, globalThis.crypto),
  ];
}

function leafKeyUsage(x509: X509Lib, spec: KeySpec): X509.Extension {
  const { KeyUsageFlags } = x509;
  const flags = KeyUsageFlags.digitalSignature | (spec.isRsa ? KeyUsageFlags.keyEncipherment : 0);
  return new x509.KeyUsagesExtension(flags, true);
}

function extendedKeyUsage(x509: X509Lib, usages: ExtendedUsage[]): X509.Extension {
  const oids = new Set(usages.map((u) => (u === 'serverAuth' ? OID_EKU_SERVER_AUTH : OID_EKU_CLIENT_AUTH)));
  return new x509.ExtendedKeyUsageExtension(oids.size > 0 ? [...oids] : [OID_EKU_EMAIL_PROTECTION], false);
}

function subjectAltNames(x509: X509Lib, dnsNames: string[], ipAddresses: string[]): X509.Extension | undefined {
  dnsNames.forEach(checkDnsName);
  const names: X509.JsonGeneralName[] = [
    ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...ipAddresses.map((ip) => ({ type: 'ip' as const, value: normaliseIp(ip) })),
  ];
  return names.length > 0 ? new x509.SubjectAlternativeNameExtension(names, false) : undefined;
}

/** Prefer the issuer's own SKI so chain building matches byte for byte, whatever tool made the CA. */
async function authorityKeyIdentifier(x509: X509Lib, issuerCert: X509.X509Certificate): Promise<X509.Extension> {
  const ski = issuerCert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
  return x509.AuthorityKeyIdentifierExtension.create(issuerCert.publicKey, false, globalThis.crypto);
}

// ---------------------------------------------------------------------------
// Issuer handling
// ---------------------------------------------------------------------------

interface LoadedIssuer {
  cert: X509.X509Certificate;
  signingKey: CryptoKey;
  spec: KeySpec;
}

async function loadIssuer(x509: X509Lib, issuer: Issuer): Promise<LoadedIssuer> {
  const nodeCert = new X509Certificate(issuer.certPem);
  const keyObject = createPrivateKey(issuer.keyPem);
  if (!nodeCert.ca) throw new Error(`issuer ${nodeCert.subject} is not a CA certificate`);
  if (!nodeCert.checkPrivateKey(keyObject)) throw new Error(`issuer key does not match certificate ${nodeCert.subject}`);
  const spec = keySpecOf(keyObject);
  const der = keyObject.export({ format: 'der', type: 'pkcs8' });
  const signingKey = await globalThis.crypto.subtle.importKey('pkcs8', der, spec.params, false, ['sign']);
  return { cert: new x509.X509Certificate(nodeCert.raw), signingKey, spec };
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

interface SignParams {
  subject: X509.Name;
  issuer: X509.Name;
  publicKey: CryptoKey;
  signingKey: CryptoKey;
  signing: KeySpec['signing'];
  notBefore: Date;
  notAfter: Date;
  extensions: X509.Extension[];
}

async function sign(x509: X509Lib, params: SignParams, privateKey: CryptoKey): Promise<CertificateBundle> {
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialHex(),
      subject: params.subject,
      issuer: params.issuer,
      notBefore: params.notBefore,
      notAfter: params.notAfter,
      publicKey: params.publicKey,
      signingKey: params.signingKey,
      signingAlgorithm: params.signing,
      extensions: params.extensions,
    },
    globalThis.crypto,
  );
  return {
    certPem: withTrailingNewline(x509.PemConverter.encode(cert.rawData, 'CERTIFICATE')),
    keyPem: await exportPrivateKeyPem(x509, privateKey),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    serialNumber: cert.serialNumber.toUpperCase(),
  };
}

/** Self-signed root CA. */
export async function createCA(opts: CreateCAOptions): Promise<CertificateBundle> {
  const x509 = await loadX509();
  const spec = keySpec(opts.keyAlgorithm ?? 'ecdsa-p256');
  const validity = resolveValidity(opts.notBefore, opts.notAfter, CA_VALIDITY_YEARS);
  const name = subjectName(x509, opts.commonName, opts.organization);
  const keys = await generateKeyPair(spec);
  const extensions = await caExtensions(x509, keys.publicKey);
  const params = { subject: name, issuer: name, publicKey: keys.publicKey, signingKey: keys.privateKey };
  return sign(x509, { ...params, signing: spec.signing, ...validity, extensions }, keys.privateKey);
}

/** Certificate signed by `issuer`; the issuer's key type decides the signature algorithm. */
export async function issueCertificate(issuer: Issuer, opts: IssueCertificateOptions): Promise<CertificateBundle> {
  const x509 = await loadX509();
  const ca = await loadIssuer(x509, issuer);
  const spec = keySpec(opts.keyAlgorithm ?? 'ecdsa-p256');
  const validity = resolveValidity(opts.notBefore, opts.notAfter, opts.isCA ? CA_VALIDITY_YEARS : LEAF_VALIDITY_YEARS);
  const subject = subjectName(x509, opts.commonName, opts.organization);
  const san = subjectAltNames(x509, opts.dnsNames ?? [], opts.ipAddresses ?? []);
  const keys = await generateKeyPair(spec);
  const extensions = await leafOrIntermediateExtensions(x509, spec, keys.publicKey, opts);
  if (san) extensions.push(san);
  extensions.push(await authorityKeyIdentifier(x509, ca.cert));
  const params = { subject, issuer: ca.cert.subjectName, publicKey: keys.publicKey, signingKey: ca.signingKey };
  return sign(x509, { ...params, signing: ca.spec.signing, ...validity, extensions }, keys.privateKey);
}

async function leafOrIntermediateExtensions(
  x509: X509Lib,
  spec: KeySpec,
  publicKey: CryptoKey,
  opts: IssueCertificateOptions,
): Promise<X509.Extension[]> {
  if (!opts.isCA) {
    return [
      new x509.BasicConstraintsExtension(false, undefined, true),
      leafKeyUsage(x509, spec),
      extendedKeyUsage(x509, opts.extendedUsages),
      await x509.SubjectKeyIdentifierExtension.create(publicKey, false, globalThis.crypto),
    ];
  }
  const extensions = await caExtensions(x509, publicKey);
  // An EKU on an intermediate restricts what it may vouch for; none means unrestricted.
  if (opts.extendedUsages.length > 0) extensions.push(extendedKeyUsage(x509, opts.extendedUsages));
  return extensions;
}

// ---------------------------------------------------------------------------
// Inspection
// ---------------------------------------------------------------------------

// node:crypto prints SAN entries as `Type:value`, JSON-quoting values that contain separators.
const SAN_ENTRY = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/y;

function parseSubjectAltName(text: string | undefined): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  SAN_ENTRY.lastIndex = 0;
  let match: RegExpExecArray | null;
  while (text && SAN_ENTRY.lastIndex < text.length && (match = SAN_ENTRY.exec(text)) !== null) {
    const [, type, raw = ''] = match;
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    if (type === 'DNS') dnsNames.push(value);
    if (type === 'IP Address') ipAddresses.push(canonicalIp(value));
  }
  return { dnsNames, ipAddresses };
}

/** node:crypto prints IPv6 uncompressed and upper-case; compare-friendly form is RFC 5952. */
function canonicalIp(ip: string): string {
  return isIP(ip) === 6 ? new SocketAddress({ address: ip, family: 'ipv6' }).address : ip;
}

/** Cheap synchronous summary for logs and self-checks. */
export function describeCertificate(certPem: string): CertificateDescription {
  const cert = new X509Certificate(certPem);
  return {
    subject: cert.subject.split('\n').join(', '),
    issuer: cert.issuer.split('\n').join(', '),
    serialNumber: cert.serialNumber.toUpperCase(),
    ...parseSubjectAltName(cert.subjectAltName),
    notBefore: cert.validFromDate,
    notAfter: cert.validToDate,
    isCA: cert.ca,
  };
}
