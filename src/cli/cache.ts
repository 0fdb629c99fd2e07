// `cache-io cache`: run the node cache (the DaemonSet's process) until SIGTERM. The
// start log line carries the real port (`--port 0` picks a free one). A policy file that
// is invalid at start leaves the cache running NOT READY until the file is fixed.
import { resolve } from "node:path";
import { clusterConfig } from "../cache/in-use.js";
import { startCache } from "../cache/index.js";
import { WatchedPolicy } from "../policy/watched.js";
import { logger } from "../shared/log.js";

export interface CacheCliOptions {
  policy?: string;
  host?: string;
  port?: string;
  root?: string;
  nodeName?: string;
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new Error(`--port ${JSON.stringify(value)} is not a port number (0-65535; 0 picks a free port)`);
  return n;
}

export async function run(opts: CacheCliOptions): Promise<void> {
  const log = logger("cache");
  const port = opts.port === undefined ? undefined : parsePort(opts.port);
  const source = new WatchedPolicy(opts.policy, log, Number(process.env.CACHE_IO_POLICY_POLL_MS) || 2000, "no valid policy; the cache is not ready and serves no files until the file is fixed");
  // root and port are read once: from the flags, else the policy (the embedded default's while the file is invalid).
  const policy = source.current();
  const root = resolve(opts.root ?? policy.cache.root);
  const host = opts.host ?? "0.0.0.0";
  const kubeConfig = opts.nodeName ? await clusterConfig() : null;
  const running = await startCache({
    root,
    host,
    port: port ?? policy.cache.port,
    nodeName: opts.nodeName,
    kubeConfig,
    policy: () => source.current(),
    policyErrors: () => source.errors(),
    log,
  });
  source.observe({ onLoad: (errors) => running.cache.metrics.policyLoaded(errors) });
  const ready = source.errors().length ? "not ready: invalid policy" : "ready";
  log.info({ host, port: running.port, root, nodeName: opts.nodeName, podWatch: !!kubeConfig, identity: policy.identity.mode, verifiesTokens: !!running.cache.access.verifier, state: ready }, "cache listening");
  const shutdown = (signal: string) => {
    log.info({ signal }, "shutting down");
    source.stop();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}
