// gRPC client credentials from live TLS material: a client builds fresh credentials for each new
// channel (the server, on node:http2, swaps its secure context in place: grpc-server.ts).
import { createSecureContext } from 'node:tls';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import type { LiveTls } from '../tls/live-tls.js';

export function channelCredentials(tls: LiveTls, trust: readonly string[]): ChannelCredentials {
  return credentials.createFromSecureContext(createSecureContext(tls.secureContextOptions(trust)));
}
