// `cache-io cache`: run the node cache (the DaemonSet's process) until SIGTERM. The
// start log line carries the real ports (`--port 0` picks a free one) and whether the
// cluster tier is on (and if not, why). A policy file that is invalid at start leaves
// the cache running NOT READY until the file is fixed.
import type { KubeConfig } from "@kubernetes/client-node";
import { resolve } from "node:path";
import { NAMES, NAMESPACE, PATHS } from "../deploy/names.js";
import { clusterConfig } from "../cache/in-use.js";
import { startCache, type OwnAccount } from "../cache/index.js";
import { EndpointSliceSource } from "../cache/peers/membership.js";
import { fileToken } from "../cache/peers/token.js";
import type { PeerSettings } from "../cache/peers/types.js";
import type { Policy } from "../policy/schema.js";
import { WatchedPolicy } from "../policy/watched.js";
import { logger, type Logger } from "../shared/log.js";

/** Where the DaemonSet projects the node cache's own token for peers (audience cache.io/node-cache). */
export const PEER_TOKEN_FILE = `${PATHS.peerTokenDir}/token`;

export interface CacheCliOptions {
  policy?: string;
  host?: string;
  port?: string;
  root?: string;
  nodeName?: string;
  peersService?: string;
  namespace?: string;
  serviceAccount?: string;
  peerTokenFile?: string;
  peerHost?: string;
  peerPort?: string;
}

function parsePort(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new Error(`${flag} ${JSON.stringify(value)} is not a port number (0-65535; 0 picks a free port)`);
  return n;
}

/** `off` is a short code for the start line (greppable); `why` the sentence logged beside it. */
type Tier = { on: true; settings: PeerSettings; peerPort: number; peerHost: string; own: OwnAccount } | { on: false; off: string; why: string };

/**
 * The cluster tier, when the flags and the environment allow it: the peers Service's
 * EndpointSlices (needs a cluster config), this node's name, and the own token. Whether
 * it is used is the policy's cache.peers.enabled, read on every fill and peer request.
 */
function peerTier(opts: CacheCliOptions, policy: Policy, kubeConfig: KubeConfig | null, host: string, log: Logger): Tier {
  if (!opts.peersService) return { on: false, off: "no-peers-service", why: "no --peers-service (CACHE_IO_PEERS_SERVICE): every fill goes to the origin" };
  if (!opts.nodeName) return { on: false, off: "no-node-name", why: "the cluster tier needs --node-name (NODE_NAME)" };
  if (!kubeConfig) return { on: false, off: "no-cluster-config", why: "the cluster tier needs a cluster config (in-cluster ServiceAccount or KUBECONFIG) to watch its peers" };
  const namespace = opts.namespace ?? NAMESPACE;
  const peerPort = opts.peerPort === undefined ? policy.cache.peers.port : parsePort("--peer-port", opts.peerPort);
  const source = new EndpointSliceSource({ kubeConfig, namespace, service: opts.peersService, defaultPort: peerPort, log });
  source.start().then(
    () => log.info({ peers: source.peers().length, service: opts.peersService, namespace }, "peers listed"),
    (err: Error) => log.error({ err: err.message }, "peer membership did not start"),
  );
  return {
    on: true,
    settings: { self: opts.nodeName, source, token: fileToken(opts.peerTokenFile ?? PEER_TOKEN_FILE) },
    peerPort,
    peerHost: opts.peerHost ?? host,
    own: { namespace, serviceAccount: opts.serviceAccount ?? NAMES.nodeCache },
  };
}

export async function run(opts: CacheCliOptions): Promise<void> {
  const log = logger("cache");
  const port = opts.port === undefined ? undefined : parsePort("--port", opts.port);
  const source = new WatchedPolicy(opts.policy, log, Number(process.env.CACHE_IO_POLICY_POLL_MS) || 2000, "no valid policy; the cache is not ready and serves no files until the file is fixed");
  // root and ports are read once: from the flags, else the policy (the embedded default's while the file is invalid).
  const policy = source.current();
  const root = resolve(opts.root ?? policy.cache.root);
  const host = opts.host ?? "0.0.0.0";
  const kubeConfig = opts.nodeName ? await clusterConfig() : null;
  const tier = peerTier(opts, policy, kubeConfig, host, log);
  const running = await startCache({
    root,
    host,
    port: port ?? policy.cache.port,
    nodeName: opts.nodeName,
    kubeConfig,
    policy: () => source.current(),
    policyErrors: () => source.errors(),
    log,
    ...(tier.on ? { peers: tier.settings, peerPort: tier.peerPort, peerHost: tier.peerHost, own: tier.own } : {}),
  });
  source.observe({ onLoad: (errors) => running.cache.metrics.policyLoaded(errors) });
  const ready = source.errors().length ? "not ready: invalid policy" : "ready";
  const enabled = policy.cache.peers.enabled;
  const peers = tier.on
    ? { peers: enabled ? "on" : "off", ...(enabled ? {} : { peersOff: "policy" }), peerHost: tier.peerHost, peerPort: running.peerPort, peersService: opts.peersService, serviceAccount: `${tier.own.namespace}/${tier.own.serviceAccount}` }
    : { peers: "off", peersOff: tier.off };
  if (!tier.on) log.info({ peersOff: tier.off }, `cluster tier off: ${tier.why}`);
  else if (!enabled) log.info({ peersOff: "policy" }, "cluster tier off by policy (cache.peers.enabled: false); it follows the policy when that changes");
  log.info({ host, port: running.port, root, nodeName: opts.nodeName, podWatch: !!kubeConfig, identity: policy.identity.mode, verifiesTokens: !!running.cache.access.verifier, ...peers, state: ready }, "cache listening");
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
