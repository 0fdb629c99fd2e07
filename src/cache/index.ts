// The node cache as a library: start it on a root and a port (the CLI, the demo, tests
// and benchmarks all start it this way), with the peer port for other node caches when
// asked, and stop it gracefully.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { OwnAccount } from "./identity/verify.js";
import { NodeCache, type NodeCacheOptions } from "./node-cache.js";
import { createCacheServer, createPeerServer, type ServerOptions } from "./server.js";

export { NodeCache } from "./node-cache.js";
export type { NodeCacheOptions } from "./node-cache.js";
export type { Resolver } from "./origin.js";
export type { OwnAccount } from "./identity/verify.js";

export interface StartOptions extends NodeCacheOptions, ServerOptions {
  host?: string;
  /** 0 picks a free port; default: the policy's cache.port. */
  port?: number;
  /** The peer port (cache.peers.port; 0 picks a free one); absent: no peer listener. */
  peerPort?: number;
  /** Default: `host`. */
  peerHost?: string;
  /** The node cache's own ServiceAccount, whose tokens the peer port takes; default cache-io/cache-io-cache. */
  own?: OwnAccount;
}

export interface RunningCache {
  cache: NodeCache;
  server: Server;
  port: number;
  /** http://host:port, with 127.0.0.1 for a wildcard host. */
  url: string;
  /** The peer listener, when started. */
  peerServer?: Server;
  peerPort?: number;
  peerUrl?: string;
  /** Stop accepting, abort fills (their waiters see an error), give open downloads `graceMs`, then cut them. */
  close(graceMs?: number): Promise<void>;
}

export const DEFAULT_OWN_ACCOUNT: OwnAccount = { namespace: "cache-io", serviceAccount: "cache-io-cache" };

async function listen(server: Server, port: number, host: string): Promise<{ port: number; url: string }> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return { port: bound, url: `http://${shown}:${bound}` };
}

async function shut(server: Server, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
}

export async function startCache(o: StartOptions): Promise<RunningCache> {
  const mainPort = o.port ?? o.policy().cache.port;
  if (o.peerPort !== undefined && o.peerPort !== 0 && o.peerPort === mainPort && (o.peerHost ?? o.host) === o.host) {
    throw new Error(`the peer port ${o.peerPort} is the node cache's port too: give cache.peers.port (or --peer-port) another port than cache.port (or --port)`);
  }
  const cache = new NodeCache(o);
  await cache.start();
  const host = o.host ?? "0.0.0.0";
  const server = createCacheServer(cache, o);
  const peerServer = o.peerPort === undefined ? undefined : createPeerServer(cache, { ...o, own: o.own ?? DEFAULT_OWN_ACCOUNT });
  let main: { port: number; url: string };
  let peer: { port: number; url: string } | undefined;
  try {
    main = await listen(server, mainPort, host);
    if (peerServer) peer = await listen(peerServer, o.peerPort!, o.peerHost ?? host);
  } catch (err) {
    cache.stop();
    if (server.listening) await shut(server, 0);
    throw err;
  }
  return {
    cache,
    server,
    ...main,
    ...(peer ? { peerServer, peerPort: peer.port, peerUrl: peer.url } : {}),
    close: async (graceMs = 5000) => {
      // Both stop accepting first (shut closes synchronously), then the fills are aborted.
      const closed = [server, ...(peerServer ? [peerServer] : [])].map((s) => shut(s, graceMs));
      cache.stop();
      await Promise.all(closed);
    },
  };
}
