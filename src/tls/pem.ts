// Parsing and validating PEM material. Every failure names the file and says what is wrong,
// because that one line is what an operator reads when a rotation goes bad.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';

export type MaterialProblem = 'missing' | 'unreadable' | 'malformed' | 'key_mismatch' | 'expired' | 'not_yet_valid' | 'empty';

export class MaterialError extends Error {
  override readonly name = 'MaterialError';
  constructor(readonly file: string, readonly problem: MaterialProblem, detail: string) {
    super(`${file}: ${detail}`);
  }
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

export function pemBlocks(text: string, label: string): string[] {
  return [...text.matchAll(BLOCK)].filter((m) => m[1] === label).map((m) => m[0]);
}

export function parseCertificates(file: string, text: string): X509Certificate[] {
  const blocks = pemBlocks(text, 'CERTIFICATE');
  if (blocks.length === 0) throw new MaterialError(file, text.trim() === '' ? 'empty' : 'malformed', 'no PEM CERTIFICATE block found');
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new MaterialError(file, 'malformed', `certificate #${i + 1} cannot be parsed (${(err as Error).message})`);
    }
  });
}

export function parsePrivateKey(file: string, text: string): KeyObject {
  if (text.trim() === '') throw new MaterialError(file, 'empty', 'the file is empty');
  try {
    return createPrivateKey(text);
  } catch {
    // The parser's message can quote key bytes; say only that it failed.
    throw new MaterialError(file, 'malformed', 'no parsable PEM private key');
  }
}

export function checkValidity(file: string, cert: X509Certificate, now: Date): void {
  if (new Date(cert.validTo) < now) {
    throw new MaterialError(file, 'expired', `certificate "${cert.subject.replace(/\n/g, ',')}" expired at ${new Date(cert.validTo).toISOString()}`);
  }
  if (new Date(cert.validFrom) > now) {
    throw new MaterialError(file, 'not_yet_valid', `certificate "${cert.subject.replace(/\n/g, ',')}" is not valid before ${new Date(cert.validFrom).toISOString()}`);
  }
}

export function commonName(cert: X509Certificate): string {
  return subjectField(cert, 'CN')[0] ?? '';
}

export function subjectField(cert: X509Certificate, field: string): string[] {
  return cert.subject.split('\n').filter((l) => l.startsWith(`${field}=`)).map((l) => l.slice(field.length + 1));
}

export function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
}
