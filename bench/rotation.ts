// Scenario e's probe: which certificate does a brand-new TLS handshake get? Each probe is a fresh
// node:tls connection (no session reuse), closed as soon as the handshake is done.
import { connect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProbeTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

const PROBE_TIMEOUT_MS = 2_000;

/** The serial number (upper-case hex) of the certificate the server presents to a new handshake. */
export function servedSerial(port: number, tls: ProbeTls): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...tls, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', timeout: PROBE_TIMEOUT_MS });
    socket.once('secureConnect', () => {
      const serial = socket.getPeerCertificate().serialNumber ?? '';
      socket.destroy();
      resolve(serial.toUpperCase());
    });
    socket.once('timeout', () => socket.destroy(new Error(`no TLS handshake within ${PROBE_TIMEOUT_MS} ms`)));
    socket.on('error', reject);
  });
}

export interface SerialWait {
  /** performance.now() at the end of the first handshake that saw `serial`; undefined on time-out. */
  seenAt: number | undefined;
  probes: number;
  errors: number;
  errorSamples: string[];
}

/** A probe every `intervalMs` (start to start) until one sees `serial`, for at most `timeoutMs`. */
export async function waitForSerial(port: number, tls: ProbeTls, serial: string, o: { intervalMs: number; timeoutMs: number }): Promise<SerialWait> {
  const wanted = serial.toUpperCase().replace(/^0+/, '');
  const deadline = performance.now() + o.timeoutMs;
  const r: SerialWait = { seenAt: undefined, probes: 0, errors: 0, errorSamples: [] };
  while (performance.now() < deadline) {
    const started = performance.now();
    r.probes++;
    try {
      const got = await servedSerial(port, tls);
      if (got.replace(/^0+/, '') === wanted) {
        r.seenAt = performance.now();
        return r;
      }
    } catch (err) {
      r.errors++;
      if (r.errorSamples.length < 5) r.errorSamples.push((err as Error).message);
    }
    await sleep(Math.max(0, started + o.intervalMs - performance.now()));
  }
  return r;
}
