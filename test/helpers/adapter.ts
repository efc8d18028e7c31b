// An adapter started in-process on free ports, with the flags a test passes.
import { pino } from 'pino';
import { createServer, type AddressInfo } from 'node:net';
import { parseAdapterConfig, type AdapterConfig } from '../../src/adapter/config.js';
import { startAdapter, type RunningAdapter } from '../../src/adapter/main.js';
import type { TestPki } from './pki.js';
import type { ExternalMetricsProvider } from '../../src/adapter/provider.js';

export interface TestAdapter extends RunningAdapter {
  port: number;
  metricsPort: number;
  config: AdapterConfig;
  logs: Record<string, unknown>[];
}

/** Flags for an adapter on the test PKI, both client CAs configured. */
export function pkiFlags(pki: TestPki): string[] {
  return [
    `--cert-dir=${pki.dir}`,
    `--client-ca-file=${pki.ca.certFile}`,
    `--requestheader-client-ca-file=${pki.frontProxyCa.certFile}`,
    '--requestheader-allowed-names=front-proxy-client',
  ];
}

export async function startTestAdapter(flags: string[], provider?: ExternalMetricsProvider): Promise<TestAdapter> {
  const config = parseAdapterConfig(['--secure-port=1', '--bind-address=127.0.0.1', '--metrics-bind-address=127.0.0.1', '--metrics-source=demo', ...flags], {});
  if (config === 'help') throw new Error('unexpected --help');
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const metricsPort0 = flags.some((f) => f.startsWith('--metrics-port')) ? config.metricsPort : await freePort();
  const running = await startAdapter({ ...config, securePort: 0, metricsPort: metricsPort0 }, log, provider, {});
  const port = (running.app.server.address() as AddressInfo).port;
  const metricsPort = running.metricsServer ? (running.metricsServer.address() as AddressInfo).port : 0;
  return { ...running, port, metricsPort, config, logs };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
