// The flags of `cache-io webhook`, kept apart from webhook.ts so that defining the CLI
// does not load the server.
import { InvalidArgumentError, Option, type Command } from "commander";
import { DEFAULT_LIMITS } from "../webhook/limits.js";

export function addWebhookOptions(cmd: Command, policyOption: () => Option): Command {
  return cmd
    .addOption(policyOption())
    .addOption(new Option("--host <addr>", "address to listen on").default("127.0.0.1").env("CACHE_IO_HOST"))
    .addOption(new Option("--port <n>", "HTTPS port").default("8443").env("CACHE_IO_PORT"))
    .addOption(new Option("--certs <dir>", "directory with tls.crt, tls.key (and ca.crt); generated for localhost when missing").default("certs").env("CACHE_IO_CERTS"))
    .option("--no-generate-certs", "fail instead of generating certs when the directory has none (in-cluster)")
    .addOption(new Option("--max-body-bytes <n>", "largest AdmissionReview body accepted (413 above)").default(String(DEFAULT_LIMITS.bodyLimit)).env("CACHE_IO_MAX_BODY_BYTES"))
    .addOption(
      new Option("--max-in-flight-bytes <n>", "review body bytes buffered at once across all connections (503 above)")
        .default(String(DEFAULT_LIMITS.maxInFlightBytes))
        .env("CACHE_IO_MAX_IN_FLIGHT_BYTES"),
    )
    .addOption(new Option("--body-timeout-ms <n>", "a request's headers and body must arrive within this (408 after)").default(String(DEFAULT_LIMITS.bodyTimeoutMs)).env("CACHE_IO_BODY_TIMEOUT_MS"))
    .addOption(new Option("--max-connections <n>", "open connections at most; more are closed at accept").default(String(DEFAULT_LIMITS.maxConnections)).env("CACHE_IO_MAX_CONNECTIONS"))
    .addOption(
      new Option("--shutdown-delay-ms <ms>", "after SIGTERM, keep serving this long with every response closing its connection (Service endpoints update meanwhile), then stop")
        .default("5000")
        .env("CACHE_IO_SHUTDOWN_DELAY_MS")
        .argParser(milliseconds),
    );
}

/** A whole number of milliseconds, 0 included (0: no drain). */
function milliseconds(value: string): string {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError("must be a whole number of milliseconds (0: stop at once)");
  return value;
}
