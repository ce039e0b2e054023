import { pino, type Logger } from 'pino';

/** The process logger: one JSON line per event. Keys and certificates are never logged (redacted if passed). */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { svc: 'sluice' },
      redact: { paths: ['key', '*.key', 'password', '*.password', 'cert', '*.cert'], censor: '[redacted]' },
    },
    destination ?? process.stdout,
  );
}

export type { Logger };
