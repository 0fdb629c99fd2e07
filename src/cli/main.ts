#!/usr/bin/env node
// The one binary: `cache-io webhook | cache | inject | certs | prepull | policy | check`.
// Each command's module is loaded only when it runs, so `inject` does not pay for
// the Kubernetes client and `cache` does not load the webhook.
// Exit codes: 0 success, 1 a denial or failure, 2 a usage error (unknown command or
// option, a missing or bad option value), so scripts can tell "you called me wrong"
// from "what you asked for failed".
import { Command, InvalidArgumentError, Option } from "commander";
import { IMAGE } from "../deploy/names.js";
import { LOG_FORMATS, LOG_LEVELS, configureLogging, type LogSettings } from "../shared/log.js";
import { VERSION } from "../shared/version.js";
import { addWebhookOptions } from "./webhook-options.js";

const USAGE_EXIT = 2;

const program = new Command("cache-io")
  .description("Node-local cache for large read-only files, wired into pods by a mutating admission webhook")
  .showHelpAfterError()
  // Before any subcommand is defined, so every one inherits it. Commander has already
  // printed the error (and help hint); only the exit code is ours.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT))
  // Without this, `certs install --days N` would hand --days to the parent `certs`.
  .enablePositionalOptions()
  .version(VERSION);

// Option value parsers: a bad value is a usage error (exit 2) with commander's
// "option '--x <v>' argument 'y' is invalid." prefix. They return the string unchanged,
// so each command module's own types and checks stay as they are; an empty env var
// counts as unset.
function portArg(value: string): string | undefined {
  if (value === "") return undefined;
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError("Use a port number from 0 to 65535 (0 picks a free port).");
  return value;
}

function intArg(flag: string, min: number, max: number, unit = ""): (value: string) => string {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new InvalidArgumentError(`${flag} "${value}" must be a whole number${unit} from ${min} to ${max}.`);
    return value;
  };
}

function positiveIntArg(flag: string): (value: string) => string | undefined {
  return (value) => {
    if (value === "") return undefined;
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) <= 0) throw new InvalidArgumentError(`${flag} must be a positive integer, got "${value}".`);
    return value;
  };
}

function positiveArg(value: string): string {
  if (!(Number(value) > 0 && Number.isFinite(Number(value)))) throw new InvalidArgumentError("Use a positive number.");
  return value;
}

function dnsLabelArg(flag: string): (value: string) => string {
  return (value) => {
    if (value.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(value)) throw new InvalidArgumentError(`${flag} "${value}" is not a DNS-1123 label (lowercase letters, digits and '-', at most 63).`);
    return value;
  };
}

/** A DNS label, or unset when given empty (an empty env var). */
function optionalDnsLabel(flag: string): (value: string) => string | undefined {
  const check = dnsLabelArg(flag);
  return (value) => (value === "" ? undefined : check(value));
}

const policyOption = () =>
  new Option("-p, --policy <file>", "policy YAML file (hot-reloaded); default: the embedded default policy").env("CACHE_IO_POLICY");

/** --log-format and --log-level for the long-running commands; applied by the preAction hook below. */
function withLogOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--log-format <format>", "log lines on stdout: json, or text for people (default: json)").choices(LOG_FORMATS).env("CACHE_IO_LOG_FORMAT"))
    .addOption(new Option("--log-level <level>", "least severe level logged (default: info)").choices(LOG_LEVELS).env("CACHE_IO_LOG_LEVEL"));
}

// Before the command's module is imported, so its loggers are built with these settings.
program.hook("preAction", (_program, action) => {
  const { logFormat, logLevel } = action.opts<{ logFormat?: LogSettings["format"]; logLevel?: LogSettings["level"] }>();
  if (logFormat || logLevel) configureLogging({ format: logFormat, level: logLevel });
});

const webhook = addWebhookOptions(program.command("webhook").description("serve the mutating admission webhook over HTTPS"), policyOption);
// Its numeric flags (written `<n>`) are checked here too, so a bad value is a usage error.
for (const o of webhook.options) {
  if (o.long === "--port") o.argParser(portArg);
  else if (o.flags.endsWith("<n>")) o.argParser(positiveIntArg(o.long!));
}
withLogOptions(webhook).action(async (opts) => (await import("./webhook.js")).run(opts));

const cache = program
  .command("cache")
  .description("run the node cache (the DaemonSet's process)")
  .addOption(policyOption())
  .addOption(new Option("--host <addr>", "address to listen on").default("0.0.0.0").env("CACHE_IO_HOST"))
  .addOption(new Option("--port <n>", "port; default: the policy's cache.port").env("CACHE_IO_PORT").argParser(portArg))
  .addOption(new Option("--root <dir>", "cache root; default: the policy's cache.root").env("CACHE_IO_ROOT"))
  .addOption(new Option("--node-name <name>", "this node's name, to watch its pods for files in use (and, with --peers-service, to rank peers)").env("NODE_NAME"))
  .addOption(new Option("--peers-service <name>", "the node caches' headless Service; its EndpointSlices are the peers (the cluster tier: one origin fetch per cluster); absent: no tier").env("CACHE_IO_PEERS_SERVICE").argParser(optionalDnsLabel("--peers-service")))
  .addOption(new Option("--namespace <ns>", "the node cache's namespace (of the peers Service and its own ServiceAccount); default: cache-io").env("POD_NAMESPACE").argParser(optionalDnsLabel("--namespace")))
  .addOption(new Option("--service-account <name>", "the node cache's own ServiceAccount: the peer port takes only its tokens; default: cache-io-cache").env("CACHE_IO_SERVICE_ACCOUNT"))
  .addOption(new Option("--peer-token-file <path>", "the own projected ServiceAccount token sent to peers (re-read when the kubelet rotates it); default: /var/run/secrets/cache.io/peer/token").env("CACHE_IO_PEER_TOKEN_FILE"))
  .addOption(new Option("--peer-host <addr>", "address of the peer port; default: --host").env("CACHE_IO_PEER_HOST"))
  .addOption(new Option("--peer-port <n>", "the peer port; default: the policy's cache.peers.port").env("CACHE_IO_PEER_PORT").argParser(portArg));
withLogOptions(cache).action(async (opts) => (await import("./cache.js")).run(opts));

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
  .option("--service <name>", "webhook Service name", dnsLabelArg("--service"), "cache-io-webhook")
  .option("--namespace <ns>", "webhook Service namespace", dnsLabelArg("--namespace"), "cache-io")
  .option("--days <n>", "serving cert validity in days", intArg("--days", 1, 3650, " of days"), "365")
  .action(async (opts) => (await import("./certs.js")).generate(opts));

const certsInstall = certs
  .command("install")
  .description("in-cluster bootstrap: create or reuse the cert Secret, renew before expiry, patch the webhook's caBundle")
  .option("--namespace <ns>", "namespace of the Secret and Service", dnsLabelArg("--namespace"), process.env.POD_NAMESPACE ?? "cache-io")
  .option("--service <name>", "webhook Service name", dnsLabelArg("--service"), "cache-io-webhook")
  .option("--secret <name>", "TLS Secret name", "cache-io-webhook-tls")
  .option("--webhook-config <name>", "MutatingWebhookConfiguration name", "cache-io")
  .option("--days <n>", "serving cert validity in days", intArg("--days", 2, 3650, " of days"), "365")
  .option("--renew-before <days>", "renew when fewer days remain", intArg("--renew-before", 1, 3650, " of days"), "30");
withLogOptions(certsInstall).action(async (opts) => (await import("./certs.js")).install(opts));

const prepull = program.command("prepull").description("the pre-pull DaemonSet (images as init containers, then pause)");
prepull
  .command("render")
  .description("print the pre-pull DaemonSet for the policy's image list")
  .addOption(policyOption())
  .option("--namespace <ns>", "namespace of the DaemonSet", dnsLabelArg("--namespace"), "cache-io")
  .option("--image <ref>", "the cache-io image (provides the no-op binary)", IMAGE)
  .addOption(new Option("-o, --output <format>", "output format").choices(["yaml", "json"]).default("yaml"))
  .action(async (opts) => (await import("./prepull.js")).render(opts));
const reconcile = prepull
  .command("reconcile")
  .description("keep the pre-pull DaemonSet in sync with the policy (server-side apply)")
  .addOption(policyOption())
  .option("--namespace <ns>", "namespace of the DaemonSet", dnsLabelArg("--namespace"), process.env.POD_NAMESPACE ?? "cache-io")
  .option("--image <ref>", "the cache-io image (provides the no-op binary)", IMAGE)
  .option("--once", "apply once and exit instead of following policy changes");
withLogOptions(reconcile).action(async (opts) => (await import("./prepull.js")).reconcile(opts));
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
  .command("check")
  .description("check a cluster before (--pre) or after installing cache-io; exit 1 when a check fails (like linkerd check)")
  .option("--pre", "pre-install checks: API version and features, the installer's RBAC, the namespace's Pod Security labels")
  .option("-n, --namespace <ns>", "the namespace cache-io is (to be) installed in", dnsLabelArg("--namespace"), "cache-io")
  .option("--test-namespace <ns>", "opted-in namespace for the dry-run pod (default: the first labelled cache.io/inject=enabled)", dnsLabelArg("--test-namespace"))
  .addOption(new Option("-o, --output <format>", "output format").choices(["text", "json"]).default("text"))
  .action(async (opts) => (await import("../check/cli.js")).run(opts));

program
  .command("demo")
  .description("the whole path on one machine: an origin, the node cache, a pod injected, its init command run with curl")
  .option("--size-mib <n>", "size of the demo file in MiB", positiveArg, "256")
  .option("--origin-rate-mbps <n>", "origin throttle in MB/s", positiveArg, "60")
  .option("--keep", "keep the temporary cache root and print where it is")
  .action(async (opts) => (await import("./demo.js")).run(opts));

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`cache-io: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
