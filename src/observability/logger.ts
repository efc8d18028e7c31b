import { pino, type Logger } from 'pino';

/** The process logger: JSON to stdout. Headers that can carry credentials are never written. */
export function createLogger(level: string, component: string): Logger {
  return pino({
    level,
    base: { component },
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.keyPem', 'keyPem', '*.token', 'token'], censor: '[redacted]' },
  });
}
