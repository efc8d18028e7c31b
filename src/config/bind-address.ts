// KEDA's and Go's bind addresses: `host:port`, `[v6]:port`, or `:port` (every interface).
const BIND_ADDRESS = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/;

/** The host (undefined for `:port`) and port; throws naming `what` when it is neither form. */
export function parseBindAddress(value: string, what: string): { host: string | undefined; port: number } {
  const m = BIND_ADDRESS.exec(value);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new Error(`${what} ${JSON.stringify(value)}: expected host:port or :port`);
  return { host: m[1] ?? (m[2] || undefined), port };
}
