// Helpers of the cluster-tier tests: a static PeerSource (membership from the API is
// tested in test/cluster/peers-membership.test.ts), real node caches on distinct
// loopback addresses (127.0.0.2...), each on its own root, and node names ordered by
// their rendezvous rank for a key (so a test knows which one is the owner).
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache, type RunningCache, type StartOptions } from "../../src/cache/index.js";
import { rank } from "../../src/cache/peers/rendezvous.js";
import type { Peer, PeerSource } from "../../src/cache/peers/types.js";
import type { Policy } from "../../src/policy/schema.js";
import { cacheKey } from "../../src/shared/protocol.js";
import { pseudoRandom, type Origin } from "../support/origin.js";

export class StaticPeers implements PeerSource {
  list: Peer[] = [];
  stopped = false;
  peers(): readonly Peer[] {
    return this.list;
  }
  stop(): void {
    this.stopped = true;
  }
}

export interface Node {
  name: string;
  address: string;
  running: RunningCache;
  root: string;
  peer: Peer;
  close(): Promise<void>;
}

/** A node cache on `address` (ports chosen by the kernel) whose peers come from `source`; `token` is its peer token. */
export async function startNode(
  name: string,
  address: string,
  policy: () => Policy,
  source: PeerSource | undefined,
  extra: Partial<StartOptions> = {},
  token: () => Promise<string> = async () => "test-token",
): Promise<Node> {
  const root = mkdtempSync(join(tmpdir(), `cache-peer-${name}-`));
  const running = await startCache({
    root,
    host: address,
    port: 0,
    ...(source ? { peerPort: 0 } : {}),
    policy,
    retryBaseMs: 20,
    ensureGraceMs: 100,
    progressIntervalMs: 200,
    ...(source ? { peers: { self: name, source, token } } : {}),
    ...extra,
  });
  let closed = false;
  return {
    name,
    address,
    running,
    root,
    peer: { node: name, address, port: running.peerPort ?? running.port },
    close: async () => {
      if (closed) return;
      closed = true;
      await running.close(100);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** `n` node names in their rendezvous order for `key`: the first is the owner. */
export function rankedNames(key: string, n: number, prefix = "node"): string[] {
  const candidates = Array.from({ length: n }, (_, i) => ({ node: `${prefix}-${i}` }));
  return rank(key, candidates).map((c) => c.node);
}

/** A fake peer on loopback answering every request with `handler` (a misbehaving node cache). */
export async function startFakePeer(address: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; requests: IncomingMessage["headers"][]; server: Server; close(): Promise<void> }> {
  const requests: IncomingMessage["headers"][] = [];
  const server = createServer((req, res) => {
    requests.push(req.headers);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A counter's value in a node's metrics (0 when absent). */
export async function metric(node: Node, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await node.running.cache.metrics.registry.getSingleMetric(name)?.get();
  const want = Object.entries(labels);
  return (m?.values ?? []).filter((v) => want.every(([k, x]) => v.labels[k] === x)).reduce((s, v) => s + v.value, 0);
}

/** A file on `origin` (throttled to `rate` bytes/s per connection when given): its URL, key, bytes and sha256. */
export function serveFile(origin: Origin, path: string, size: number, seed: number, rate?: number): { url: string; key: string; content: Buffer; sha256: string } {
  const content = pseudoRandom(size, seed);
  const { sha256 } = origin.put(path, content);
  if (rate) origin.rateFor.set(path, rate);
  const url = origin.url(path);
  return { url, key: cacheKey(url), content, sha256 };
}
