// An operator started in-process on free ports, with the flags a test passes.
import { pino } from 'pino';
import type { AddressInfo } from 'node:net';
import { parseOperatorConfig } from '../../src/operator/config.js';
import { startOperator, type RunningOperator } from '../../src/operator/main.js';
import { freePort } from './adapter.js';

export interface TestOperator extends RunningOperator {
  grpcPort: number;
  metricsPort: number;
  logs: Record<string, unknown>[];
}

export async function startTestOperator(flags: string[], grpcPort?: number): Promise<TestOperator> {
  const port = grpcPort ?? (await freePort());
  const config = parseOperatorConfig(
    [`--metrics-service-bind-address=127.0.0.1:${port}`, '--metrics-bind-address=127.0.0.1', `--metrics-port=${await freePort()}`, `--webhook-port=${await freePort()}`, '--enable-cert-rotation=false', ...flags],
    {},
  );
  if (config === 'help') throw new Error('unexpected --help');
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const running = await startOperator(config, log, {});
  const metricsPort = running.metricsServer ? (running.metricsServer.address() as AddressInfo).port : 0;
  return { ...running, grpcPort: running.channel.port, metricsPort, logs };
}
