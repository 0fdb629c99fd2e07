// Structured JSON logs (pino) on stdout; one child logger per component.
import { pino, type Logger } from "pino";

const root = pino({
  level: process.env.LOG_LEVEL ?? (process.env.VITEST ? "silent" : "info"),
  base: { app: "cache-io" },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
});

export type { Logger };

export function logger(component: string): Logger {
  return root.child({ component });
}
