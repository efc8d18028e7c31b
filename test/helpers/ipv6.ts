// Whether this machine can show a listener's IPv6 side: an IPv6 loopback address to connect to.
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';

export const hasIpv6Loopback = () => Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.family === 'IPv6' && a.internal));

/** Resolves once a TCP connection to host:port is accepted; rejects with the socket's error (ECONNREFUSED...). */
export function tcpConnect(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}
