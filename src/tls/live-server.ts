// A Node TLS server (node:https, Fastify's https) kept on the live material: once the key pair or
// a trusted bundle changes, new handshakes use the new material at once; connections already open
// keep theirs. The server must have been created from `tls.secureContextOptions(trust)` too.
import type { Server as TlsServer } from 'node:tls';
import type { LiveTls } from './live-tls.js';

export function followLiveTls(server: Pick<TlsServer, 'setSecureContext'>, tls: LiveTls, trust: readonly string[]): void {
  tls.onChange(() => server.setSecureContext(tls.secureContextOptions(trust)));
}
