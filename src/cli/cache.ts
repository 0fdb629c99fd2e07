// `cache-io cache`: run the node cache (the DaemonSet's process) until SIGTERM. The
// start log line carries the real port (`--port 0` picks a free one).
import { resolve } from "node:path";
import { clusterConfig } from "../cache/in-use.js";
import { startCache } from "../cache/index.js";
import { PolicyStore } from "../policy/store.js";
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
  const store = opts.policy
    ? PolicyStore.fromFile(opts.policy, {
        onReload: () => log.info({ policy: opts.policy }, "policy reloaded"),
        onError: (errors) => log.error({ policy: opts.policy, errors }, "policy edit rejected; the last good policy stays in force"),
      })
    : PolicyStore.fromDefault();
  store.watch();
  const policy = store.current();
  const port = opts.port === undefined ? policy.cache.port : parsePort(opts.port);
  const host = opts.host ?? "0.0.0.0";
  const root = resolve(opts.root ?? policy.cache.root);
  const kubeConfig = opts.nodeName ? await clusterConfig() : null;
  const running = await startCache({ root, host, port, nodeName: opts.nodeName, kubeConfig, policy: () => store.current(), log });
  log.info({ host, port: running.port, root, nodeName: opts.nodeName, podWatch: !!kubeConfig }, "cache listening");
  const shutdown = (signal: string) => {
    log.info({ signal }, "shutting down");
    store.stop();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}
