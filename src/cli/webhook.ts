// `cache-io webhook`: wire policy, certs, metrics and the HTTPS server together, print
// how to use it, and shut down gracefully. startWebhook() is the same wiring for tests.
import { existsSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { CERT_FILES, ensureLocalCerts } from "../certs/generate.js";
import { PolicyStore } from "../policy/store.js";
import { WatchedPolicy } from "../policy/watched.js";
import { logger, type Logger } from "../shared/log.js";
import { DEFAULT_LIMITS, positiveInt, type ServingLimits } from "../webhook/limits.js";
import { createWebhookMetrics, type WebhookMetrics } from "../webhook/metrics.js";
import { createWebhookApp, type PolicySource } from "../webhook/server.js";
import { startHttpsServer, type HttpsHandle } from "../webhook/tls.js";

export interface WebhookOptions {
  /** Policy file; undefined: the embedded default. */
  policy?: string;
  host: string;
  port: number;
  certs: string;
  generateCerts: boolean;
  policyPollMs?: number;
  certPollMs?: number;
  /** Body size, buffered bytes, body deadline, connections (defaults: DEFAULT_LIMITS). */
  limits?: Partial<ServingLimits>;
}

export interface RunningWebhook {
  port: number;
  metrics: WebhookMetrics;
  https: HttpsHandle;
  policy: PolicySource;
  /** Why the policy file did not load at start (the server runs, not ready, and retries). */
  policyStartErrors: string[];
  certsGenerated: boolean;
  close(graceMs?: number, delayMs?: number): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 10_000;

interface OpenPolicy {
  source: PolicySource;
  startErrors: string[];
  stop(): void;
}

/** Load and watch the policy; a file that is bad at start is retried until it is fixed. */
function openPolicy(path: string | undefined, metrics: WebhookMetrics, log: Logger, pollMs: number): OpenPolicy {
  if (!path) {
    metrics.policyValid.set(1);
    return { source: PolicyStore.fromDefault(), startErrors: [], stop() {} };
  }
  const watched = new WatchedPolicy(path, log, pollMs, "no valid policy; not ready");
  watched.observe({
    onLoad: (errors) => {
      metrics.policyReloads.inc({ result: errors.length ? "failure" : "success" });
      metrics.policyValid.set(errors.length ? 0 : 1);
    },
  });
  return { source: { current: () => watched.last() }, startErrors: [...watched.errors()], stop: () => watched.stop() };
}

/** Make sure tls.crt and tls.key exist: generate local ones when allowed, else say how to provide them. */
async function prepareCerts(dir: string, generate: boolean): Promise<boolean> {
  if (existsSync(join(dir, CERT_FILES.cert)) && existsSync(join(dir, CERT_FILES.key))) return false;
  if (!generate) {
    throw new Error(
      `no ${CERT_FILES.cert} and ${CERT_FILES.key} in ${dir}: mount the webhook's TLS Secret there, ` +
        `run \`cache-io certs --out ${dir}\`, or drop --no-generate-certs to generate a local CA and cert`,
    );
  }
  await ensureLocalCerts(dir);
  return true;
}

export async function startWebhook(opts: WebhookOptions): Promise<RunningWebhook> {
  const log = logger("webhook");
  const certsGenerated = await prepareCerts(opts.certs, opts.generateCerts);
  const metrics = createWebhookMetrics();
  const policy = openPolicy(opts.policy, metrics, log, opts.policyPollMs ?? 2000);
  let https: HttpsHandle | undefined;
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const app = createWebhookApp({ policy: policy.source, metrics, limits, log, certNotAfter: () => https?.cert().notAfter });
  try {
    https = await startHttpsServer(app, {
      dir: opts.certs,
      host: opts.host,
      port: opts.port,
      pollMs: opts.certPollMs,
      maxConnections: limits.maxConnections,
      requestTimeoutMs: limits.bodyTimeoutMs,
      log,
      onCertLoad: (result, cert) => {
        metrics.certReloads.inc({ result });
        if (cert) metrics.certExpiry.set(Math.floor(cert.notAfter.getTime() / 1000));
      },
    });
  } catch (err) {
    policy.stop();
    throw err;
  }
  const server = https;
  return {
    port: server.port,
    metrics,
    https: server,
    policy: policy.source,
    policyStartErrors: policy.startErrors,
    certsGenerated,
    close: async (graceMs, delayMs) => {
      await server.close(graceMs, delayMs);
      policy.stop();
    },
  };
}

function parsePort(value: unknown): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--port must be an integer from 0 to 65535, got "${String(value)}"`);
  return n;
}

/** Quote a path for a POSIX shell only when it needs it. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A name the generated cert covers for a wildcard or loopback bind; the bound host otherwise. */
function urlHost(host: string): string {
  if (["127.0.0.1", "::1", "0.0.0.0", "::", "localhost"].includes(host)) return "localhost";
  return host.includes(":") ? `[${host}]` : host;
}

function indent(lines: string[], n: number): string {
  return lines.flatMap((l) => l.split("\n")).map((l) => " ".repeat(n) + l.trim()).join("\n");
}

function examplePath(): string {
  const abs = fileURLToPath(new URL("../../examples/admission-review.json", import.meta.url));
  const rel = relative(process.cwd(), abs);
  return rel.startsWith("..") || isAbsolute(rel) ? abs : rel;
}

function banner(opts: WebhookOptions, w: RunningWebhook): string {
  const base = `https://${urlHost(opts.host)}:${w.port}`;
  const cert = w.https.cert();
  const policyLine = opts.policy
    ? `${opts.policy} (hot-reloaded)` +
      (w.policyStartErrors.length ? `\n           INVALID, not ready until fixed:\n${indent(w.policyStartErrors, 13)}` : "")
    : "embedded default (print it with `cache-io policy default`)";
  const caFile = join(opts.certs, CERT_FILES.caCert);
  return [
    `cache-io webhook listening on https://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${w.port} (TLS 1.2+)`,
    `  policy   ${policyLine}`,
    `  certs    ${join(opts.certs, CERT_FILES.cert)}, ${join(opts.certs, CERT_FILES.key)} (${w.certsGenerated ? "generated now" : "found"}; ` +
      `valid until ${cert.notAfter.toISOString()}; CA ${caFile})`,
    `  routes   POST /mutate, POST /mutate/copy (namespaces that forbid hostPath), GET /healthz /readyz /metrics`,
    `Send it a review:`,
    `  curl --cacert ${shellWord(caFile)} -H 'Content-Type: application/json' --data @${shellWord(examplePath())} ${base}/mutate`,
    "",
  ].join("\n");
}

/** The serving limits given as flags (strings from commander, or numbers). */
function limitsFrom(cli: Record<string, unknown>): Partial<ServingLimits> {
  const flags: Array<[keyof ServingLimits, string, string]> = [
    ["bodyLimit", "maxBodyBytes", "--max-body-bytes"],
    ["maxInFlightBytes", "maxInFlightBytes", "--max-in-flight-bytes"],
    ["bodyTimeoutMs", "bodyTimeoutMs", "--body-timeout-ms"],
    ["maxConnections", "maxConnections", "--max-connections"],
  ];
  const out: Partial<ServingLimits> = {};
  for (const [key, cliKey, flag] of flags) if (cli[cliKey] !== undefined) out[key] = positiveInt(flag, cli[cliKey]);
  return out;
}

export async function run(cli: Record<string, unknown>): Promise<void> {
  const opts: WebhookOptions = {
    policy: typeof cli.policy === "string" ? cli.policy : undefined,
    host: typeof cli.host === "string" ? cli.host : "127.0.0.1",
    port: parsePort(cli.port ?? 8443),
    certs: typeof cli.certs === "string" ? cli.certs : "certs",
    generateCerts: cli.generateCerts !== false,
    limits: limitsFrom(cli),
  };
  const delayMs = Number(cli.shutdownDelayMs ?? 0); // checked by the flag's parser
  const w = await startWebhook(opts);
  const log = logger("webhook");
  // stdout carries only JSON log lines; the banner is for the person who ran `npm start`.
  log.info({ host: opts.host, port: w.port }, `listening on https://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${w.port}`);
  process.stderr.write(banner(opts, w));
  const shutdown = (signal: string) => {
    log.info({ delayMs, signal }, "shutting down: draining, then finishing in-flight reviews");
    void w.close(SHUTDOWN_GRACE_MS, delayMs).then(() => process.exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}
