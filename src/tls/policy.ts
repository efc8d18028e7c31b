// The TLS protocol policy every server and client of ours applies: TLS 1.3 only. The generic
// apiserver flags are accepted so that operators can pass what they already pass, but a weaker
// version is refused at the edge rather than quietly honoured.
export type TlsVersion = 'TLSv1.3';

const TLS13_SUITES: Record<string, string> = {
  TLS_AES_128_GCM_SHA256: 'TLS_AES_128_GCM_SHA256',
  TLS_AES_256_GCM_SHA384: 'TLS_AES_256_GCM_SHA384',
  TLS_CHACHA20_POLY1305_SHA256: 'TLS_CHACHA20_POLY1305_SHA256',
};

export interface TlsPolicy {
  minVersion: TlsVersion;
  maxVersion: TlsVersion;
  /** OpenSSL `ciphersuites` string; undefined keeps OpenSSL's TLS 1.3 defaults. */
  ciphersuites: string | undefined;
}

export class TlsPolicyError extends Error {}

export function tlsPolicy(minVersionFlag: string, cipherSuites: readonly string[]): TlsPolicy {
  if (minVersionFlag !== 'VersionTLS13') {
    throw new TlsPolicyError(`--tls-min-version=${minVersionFlag} is not supported: this server speaks TLS 1.3 only (VersionTLS13)`);
  }
  const unknown = cipherSuites.filter((s) => !(s in TLS13_SUITES));
  if (unknown.length > 0) {
    throw new TlsPolicyError(
      `--tls-cipher-suites: ${unknown.join(', ')} not TLS 1.3 suites; choose from ${Object.keys(TLS13_SUITES).join(', ')}`,
    );
  }
  return {
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphersuites: cipherSuites.length > 0 ? cipherSuites.map((s) => TLS13_SUITES[s]).join(':') : undefined,
  };
}
