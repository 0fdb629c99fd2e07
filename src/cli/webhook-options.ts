// The flags of `cache-io webhook`, kept apart from webhook.ts so that defining the CLI
// does not load the server.
import { Option, type Command } from "commander";

export function addWebhookOptions(cmd: Command, policyOption: () => Option): Command {
  return cmd
    .addOption(policyOption())
    .addOption(new Option("--host <addr>", "address to listen on").default("127.0.0.1").env("CACHE_IO_HOST"))
    .addOption(new Option("--port <n>", "HTTPS port").default("8443").env("CACHE_IO_PORT"))
    .addOption(new Option("--certs <dir>", "directory with tls.crt, tls.key (and ca.crt); generated for localhost when missing").default("certs").env("CACHE_IO_CERTS"))
    .option("--no-generate-certs", "fail instead of generating certs when the directory has none (in-cluster)");
}
