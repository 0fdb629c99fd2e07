// The node cache as a library: start it on a root and a port (the CLI, the demo, tests
// and benchmarks all start it this way) and stop it gracefully.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { NodeCache, type NodeCacheOptions } from "./node-cache.js";
import { createCacheServer, type ServerOptions } from "./server.js";

export { NodeCache } from "./node-cache.js";
export type { NodeCacheOptions } from "./node-cache.js";
export type { Resolver } from "./origin.js";

export interface StartOptions extends NodeCacheOptions, ServerOptions {
  host?: string;
  /** 0 picks a free port; default: the policy's cache.port. */
  port?: number;
}

export interface RunningCache {
  cache: NodeCache;
  server: Server;
  port: number;
  /** http://host:port, with 127.0.0.1 for a wildcard host. */
  url: string;
  /** Stop accepting, abort fills (their waiters see an error), give open downloads `graceMs`, then cut them. */
  close(graceMs?: number): Promise<void>;
}

export async function startCache(o: StartOptions): Promise<RunningCache> {
  const cache = new NodeCache(o);
  await cache.start();
  const server = createCacheServer(cache, o);
  const host = o.host ?? "0.0.0.0";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? o.policy().cache.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return {
    cache,
    server,
    port,
    url: `http://${shown}:${port}`,
    close: async (graceMs = 5000) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      cache.stop();
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}
