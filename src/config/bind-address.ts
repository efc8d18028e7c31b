// KEDA's and Go's bind addresses: `host:port`, `[v6]:port`, or `:port` (every interface).
import { networkInterfaces } from 'node:os';

const BIND_ADDRESS = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/;

/** The host (undefined for `:port`) and port; throws naming `what` when it is neither form. */
export function parseBindAddress(value: string, what: string): { host: string | undefined; port: number } {
  const m = BIND_ADDRESS.exec(value);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new Error(`${what} ${JSON.stringify(value)}: expected host:port or :port`);
  return { host: m[1] ?? (m[2] || undefined), port };
}

const UNSPECIFIED_HOSTS = new Set(['', '0.0.0.0', '::']);

/**
 * The host a server listens on. Go, and so Kubernetes and KEDA, read an unspecified host (none,
 * `0.0.0.0` or `::`) as every interface of every address family, where Node's `0.0.0.0` is IPv4
 * only and would leave the server unreachable on an IPv6-only cluster: such a host becomes `::`
 * (IPv6 and IPv4-mapped, whatever net.ipv6.bindv6only says: libuv clears IPV6_V6ONLY) on a
 * machine with IPv6, and `0.0.0.0` on one without.
 */
export function listenHost(host: string | undefined): string {
  if (host !== undefined && !UNSPECIFIED_HOSTS.has(host)) return host;
  return hasIpv6() ? '::' : '0.0.0.0';
}

const hasIpv6 = () => Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.family === 'IPv6'));
