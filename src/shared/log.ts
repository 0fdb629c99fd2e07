// Logs (pino) on stdout, one child logger per component: JSON lines by default, or a
// readable one-line text format. The CLI calls configureLogging() from its --log-format
// and --log-level before a command's module runs; the root logger is built on first use.
import { pino, type Logger } from "pino";

export type { Logger };

export const LOG_FORMATS = ["json", "text"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogSettings {
  format?: LogFormat;
  level?: LogLevel;
}

let settings: LogSettings = {};
let root: Logger | undefined;

/** Applies to the loggers created afterwards (call it before a command's module makes its own). */
export function configureLogging(next: LogSettings): void {
  settings = { ...settings, ...next };
  root = undefined;
}

const OMIT = new Set(["time", "level", "msg", "app", "component"]);

function textValue(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/** `2026-12-01T09:30:00.000Z INFO  webhook: policy loaded policy=/etc/p.yaml` */
export function formatText(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith("\n") ? line : line + "\n";
  }
  const level = String(rec.level ?? "").toUpperCase().padEnd(5);
  const where = rec.component ? `${String(rec.component)}: ` : "";
  const fields = Object.entries(rec)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => `${k}=${textValue(v)}`);
  // One event, one line: a message with line breaks (a policy error, a stack) keeps them escaped.
  const msg = String(rec.msg ?? "").replace(/\r?\n/g, "\\n");
  return [String(rec.time ?? ""), level, `${where}${msg}`, ...fields].join(" ").trimEnd() + "\n";
}

function build(): Logger {
  const level = settings.level ?? (process.env.LOG_LEVEL as LogLevel | undefined) ?? (process.env.VITEST ? "silent" : "info");
  const options = {
    level,
    base: { app: "cache-io" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (settings.format !== "text") return pino(options);
  // Synchronous, no transport thread: pino hands each JSON line to write().
  return pino(options, { write: (line: string) => void process.stdout.write(formatText(line)) });
}

export function logger(component: string): Logger {
  root ??= build();
  return root.child({ component });
}
