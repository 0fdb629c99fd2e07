#!/usr/bin/env node
// The one binary: `cache-io webhook | cache | inject | certs | prepull | policy`.
// Each command's module is loaded only when it runs, so `inject` does not pay for
// the Kubernetes client and `cache` does not load the webhook.
import { Command, Option } from "commander";
import { IMAGE } from "../deploy/names.js";
import { VERSION } from "../shared/version.js";
import { addWebhookOptions } from "./webhook-options.js";

const program = new Command("cache-io")
  .description("Node-local cache for large read-only files, wired into pods by a mutating admission webhook")
  .showHelpAfterError()
  // Without this, `certs install --days N` would hand --days to the parent `certs`.
  .enablePositionalOptions()
  .version(VERSION);

const policyOption = () =>
  new Option("-p, --policy <file>", "policy YAML file (hot-reloaded); default: the embedded default policy").env("CACHE_IO_POLICY");

addWebhookOptions(program.command("webhook").description("serve the mutating admission webhook over HTTPS"), policyOption)
  .action(async (opts) => (await import("./webhook.js")).run(opts));

program
  .command("cache")
  .description("run the node cache (the DaemonSet's process)")
  .addOption(policyOption())
  .addOption(new Option("--host <addr>", "address to listen on").default("0.0.0.0").env("CACHE_IO_HOST"))
  .addOption(new Option("--port <n>", "port; default: the policy's cache.port").env("CACHE_IO_PORT"))
  .addOption(new Option("--root <dir>", "cache root; default: the policy's cache.root").env("CACHE_IO_ROOT"))
  .addOption(new Option("--node-name <name>", "this node's name, to watch its pods for files in use").env("NODE_NAME"))
  .action(async (opts) => (await import("./cache.js")).run(opts));

program
  .command("inject")
  .description("print workloads as the webhook would mutate them (like istioctl kube-inject)")
  .requiredOption("-f, --filename <file>", "YAML or JSON, multi-document; - for standard input")
  .addOption(policyOption())
  .option("-n, --namespace <ns>", "namespace the objects are admitted to (for per-namespace policy)", "default")
  .option("--copy-only", "as for a namespace whose Pod Security level forbids hostPath")
  .addOption(new Option("-o, --output <format>", "output format (default: that of the input)").choices(["yaml", "json"]))
  .action(async (opts) => (await import("./inject.js")).run(opts));

const certs = program
  .command("certs")
  .description("generate a CA and a serving cert for the webhook Service, and print the caBundle")
  .option("--out <dir>", "where to write ca.crt, ca.key, tls.crt, tls.key", "certs")
  .option("--service <name>", "webhook Service name", "cache-io-webhook")
  .option("--namespace <ns>", "webhook Service namespace", "cache-io")
  .option("--days <n>", "serving cert validity in days", "365")
  .action(async (opts) => (await import("./certs.js")).generate(opts));

certs
  .command("install")
  .description("in-cluster bootstrap: create or reuse the cert Secret, renew before expiry, patch the webhook's caBundle")
  .option("--namespace <ns>", "namespace of the Secret and Service", process.env.POD_NAMESPACE ?? "cache-io")
  .option("--service <name>", "webhook Service name", "cache-io-webhook")
  .option("--secret <name>", "TLS Secret name", "cache-io-webhook-tls")
  .option("--webhook-config <name>", "MutatingWebhookConfiguration name", "cache-io")
  .option("--days <n>", "serving cert validity in days", "365")
  .option("--renew-before <days>", "renew when fewer days remain", "30")
  .action(async (opts) => (await import("./certs.js")).install(opts));

const prepull = program.command("prepull").description("the pre-pull DaemonSet (images as init containers, then pause)");
prepull
  .command("render")
  .description("print the pre-pull DaemonSet for the policy's image list")
  .addOption(policyOption())
  .option("--namespace <ns>", "namespace of the DaemonSet", "cache-io")
  .option("--image <ref>", "the cache-io image (provides the no-op binary)", IMAGE)
  .addOption(new Option("-o, --output <format>", "output format").choices(["yaml", "json"]).default("yaml"))
  .action(async (opts) => (await import("./prepull.js")).render(opts));
prepull
  .command("reconcile")
  .description("keep the pre-pull DaemonSet in sync with the policy (server-side apply)")
  .addOption(policyOption())
  .option("--namespace <ns>", "namespace of the DaemonSet", process.env.POD_NAMESPACE ?? "cache-io")
  .option("--image <ref>", "the cache-io image (provides the no-op binary)", IMAGE)
  .option("--once", "apply once and exit instead of following policy changes")
  .action(async (opts) => (await import("./prepull.js")).reconcile(opts));
prepull
  .command("copy-noop")
  .description("copy the static no-op binary into a shared volume (first init container of the DaemonSet)")
  .requiredOption("--to <path>", "destination file")
  .action(async (opts) => (await import("./prepull.js")).copyNoop(opts));

const policy = program.command("policy").description("the policy file");
policy
  .command("check")
  .description("validate a policy file; name each bad field")
  .requiredOption("-f, --filename <file>", "policy YAML file; - for standard input")
  .action(async (opts) => (await import("./policy.js")).check(opts));
policy
  .command("default")
  .description("print the embedded default policy")
  .action(async () => (await import("./policy.js")).printDefault());

program
  .command("demo")
  .description("the whole path on one machine: an origin, the node cache, a pod injected, its init command run with curl")
  .option("--size-mib <n>", "size of the demo file in MiB", "256")
  .option("--origin-rate-mbps <n>", "origin throttle in MB/s", "60")
  .option("--keep", "keep the temporary cache root and print where it is")
  .action(async (opts) => (await import("./demo.js")).run(opts));

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`cache-io: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
