// gRPC credentials fed from live TLS material: the server's change in place (new handshakes use
// new material at once); a client builds fresh credentials for each new channel.
import { createSecureContext } from 'node:tls';
import type { ChannelCredentials} from '@grpc/grpc-js';
import { ServerCredentials, credentials } from '@grpc/grpc-js';
import type { LiveTls } from '../tls/live-tls.js';

export class LiveServerCredentials extends ServerCredentials {
  constructor(tls: LiveTls, trust: readonly string[]) {
    const options = tls.secureContextOptions(trust);
    // Client certificates required, verified against the named bundles only: no system roots.
    // noDelay: grpc-js leaves Nagle on for accepted sockets, and a response written in two
    // segments then waits for the client's delayed ACK (40 ms on Linux) before its second one.
    super({ requestCert: true, rejectUnauthorized: true, minVersion: options.minVersion, maxVersion: options.maxVersion, noDelay: true }, options);
    tls.onChange(() => this.updateSecureContextOptions(tls.secureContextOptions(trust)));
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

export function channelCredentials(tls: LiveTls, trust: readonly string[]): ChannelCredentials {
  return credentials.createFromSecureContext(createSecureContext(tls.secureContextOptions(trust)));
}
