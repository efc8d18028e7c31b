// Flags every component shares, defined once so that they read the same everywhere.
import { tlsPolicy, TlsPolicyError, type TlsPolicy } from '../tls/policy.js';
import { UsageError, durationFlag, enumFlag, intFlag, listFlag, stringFlag } from './flags.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** `prefix` names the component's environment variables: `<PREFIX>_<FLAG_IN_UPPER_SNAKE>`. */
export function envName(prefix: string): (flag: string) => string {
  return (flag) => `${prefix}_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export function commonFlags(env: (flag: string) => string, what: string) {
  return {
    tlsMinVersion: stringFlag('tls-min-version', 'VersionTLS13', `Minimum TLS version of ${what}; only VersionTLS13 is accepted`, { env: env('tls-min-version') }),
    tlsCipherSuites: listFlag('tls-cipher-suites', [], 'TLS 1.3 cipher suites (default: OpenSSL\'s TLS 1.3 set)', { env: env('tls-cipher-suites') }),
    metricsPort: intFlag('metrics-port', 8080, 'Plain-HTTP port for /metrics and kubelet probes (0 disables)', { env: env('metrics-port'), min: 0, max: 65535 }),
    metricsBindAddress: stringFlag('metrics-bind-address', '0.0.0.0', 'Address the plain-HTTP metrics port listens on (0.0.0.0 or ::: every interface, IPv4 and IPv6)', { env: env('metrics-bind-address') }),
    shutdownGracePeriod: durationFlag('shutdown-grace-period', 25_000, 'On SIGTERM, how long in-flight work may take before the process exits', { env: env('shutdown-grace-period') }),
    logLevel: enumFlag('log-level', ['debug', 'info', 'warn', 'error'] as const, 'info', 'Log level', { env: env('log-level') }),
  };
}

/** What every component's configuration holds, built from commonFlags. */
export interface ComponentConfig {
  tls: TlsPolicy;
  metricsPort: number;
  metricsBindAddress: string;
  shutdownGracePeriodMs: number;
  logLevel: LogLevel;
}

type CommonFlagValues = { tlsMinVersion: string; tlsCipherSuites: string[]; metricsPort: number; metricsBindAddress: string; shutdownGracePeriod: number; logLevel: LogLevel };

export function componentConfig(f: CommonFlagValues): ComponentConfig {
  return {
    tls: tlsPolicyFromFlags(f.tlsMinVersion, f.tlsCipherSuites),
    metricsPort: f.metricsPort,
    metricsBindAddress: f.metricsBindAddress,
    shutdownGracePeriodMs: f.shutdownGracePeriod,
    logLevel: f.logLevel,
  };
}

/** The TLS policy from the flags, a usage error (exit 2) when they ask for less than TLS 1.3. */
export function tlsPolicyFromFlags(minVersion: string, cipherSuites: readonly string[]): TlsPolicy {
  try {
    return tlsPolicy(minVersion, cipherSuites);
  } catch (err) {
    if (err instanceof TlsPolicyError) throw new UsageError(err.message);
    throw err;
  }
}
