// The commands of the one executable (src/cli.ts checks the Node version first): `adapter`,
// `operator`, `certs`. A usage error is one line on stderr and exit code 2; a start-up failure is
// one line and exit code 1.
// What a command runs is loaded when it runs (servers, gRPC, scalers, certificate generation), so
// that `--help` and a usage error answer at once.
import { formatHelp, UsageError, type FlagSpecs } from './config/flags.js';
import { adapterFlags, parseAdapterConfig } from './adapter/config.js';
import { operatorFlags, parseOperatorConfig } from './operator/config.js';
import type { Logger } from 'pino';
import { MaterialError } from './tls/pem.js';

const USAGE = `Usage: keda-ts <command> [flags]

Commands:
  adapter    Serve external.metrics.k8s.io as an aggregated API server
  operator   Own scaled objects and serve metric values over gRPC (mutual TLS 1.3)
  certs      Certificate tools: "certs dev --out DIR" creates a development PKI
  doctor     Check an install in a cluster (APIService, certificates, caBundles, RBAC, HPAs)

Run "keda-ts <command> --help" for the flags of a command.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'adapter':
      return runAdapter(rest);
    case 'operator':
      return runOperator(rest);
    case 'certs':
      return (await import('./certs/cli.js')).runCertsCommand(rest);
    case 'doctor':
      return (await import('./doctor/cli.js')).runDoctorCommand(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}" (expected adapter, operator, certs or doctor)`);
  }
}

interface Component<C extends { logLevel: string }> {
  name: 'adapter' | 'operator';
  flags: FlagSpecs;
  parse(argv: readonly string[], env: NodeJS.ProcessEnv): C | 'help';
  start(config: C, log: Logger): Promise<{ shutdown(): Promise<void> }>;
}

/** Parse, start, run until a signal: the same for every long-running component. */
async function runComponent<C extends { logLevel: string }>(c: Component<C>, argv: string[]): Promise<number> {
  const config = c.parse(argv, process.env);
  if (config === 'help') {
    process.stdout.write(formatHelp(`keda-ts ${c.name} [flags]`, c.flags));
    return 0;
  }
  const { createLogger } = await import('./observability/logger.js');
  const log = createLogger(config.logLevel, c.name);
  const running = await c.start(config, log);
  await untilSignal(log, running.shutdown);
  return 0;
}

const runAdapter = (argv: string[]) =>
  runComponent({ name: 'adapter', flags: adapterFlags, parse: parseAdapterConfig, start: async (config, log) => (await import('./adapter/main.js')).startAdapter(config, log) }, argv);
const runOperator = (argv: string[]) =>
  runComponent({ name: 'operator', flags: operatorFlags, parse: parseOperatorConfig, start: async (config, log) => (await import('./operator/main.js')).startOperator(config, log) }, argv);

/** SIGTERM (the kubelet) or SIGINT (Ctrl-C): stop accepting, finish what is in flight, return. */
function untilSignal(log: Logger, shutdown: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      shutdown().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof MaterialError) {
      process.stderr.write(`error: cannot start without valid TLS material: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  },
);
