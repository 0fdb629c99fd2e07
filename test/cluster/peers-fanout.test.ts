// The relay tree with real processes and real addresses: node caches (the compiled CLI) on
// 127.0.0.2..5 as fan-1..fan-4, membership from a real EndpointSlice, identity required
// (each cache learns a caller's node from its verified peer token), cache.peers.fanout 1:
// the file spreads as a chain. Counts what the origin sent and what each node sent to
// peers, and checks the sha256 of what every pod got; a relay in the middle of the chain
// is SIGKILLed mid-transfer.
import { afterAll, beforeAll, expect, it } from "vitest";
import { pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";
import { describeCluster } from "./context.js";
import { until } from "./kube.js";
import { owners, PeerCaches, type Got } from "./peer-caches.js";

const NODES = 4;
const MiB = 2 ** 20;
const ALL = [0, 1, 2, 3];
const OUT = "cache_io_cache_peer_bytes_total";
const SOURCES = "cache_io_cache_fill_sources_total";

describeCluster("the relay tree: cache.peers.fanout 1, node caches on their own addresses, peers from EndpointSlices", (c) => {
  let origin: Origin;
  let h: PeerCaches;

  /** A new file at `path` served at `rate` bytes/s (0: unthrottled). */
  function file(path: string, size: number, seed: number, rate: number): { url: string; data: Buffer; sha256: string } {
    const data = pseudoRandom(size, seed);
    origin.put(path, data);
    if (rate) origin.rateFor.set(path, rate);
    return { url: origin.url(path), data, sha256: sha256Hex(data) };
  }

  function verified(g: Got, f: { data: Buffer; sha256: string }): void {
    expect(g, g.error).toMatchObject({ status: 200, bytes: f.data.length, sha256: f.sha256 });
  }

  const sentToPeers = (nodes: number[]) => Promise.all(nodes.map((i) => h.metric(i, OUT, { direction: "out" })));

  beforeAll(async () => {
    origin = await startOrigin({ ranges: true });
    h = await PeerCaches.started(c, { nodes: NODES, prefix: "fanout", nodePrefix: "fan", peers: "fanout: 1, idleTimeout: 5s" });
  }, 240_000);

  afterAll(async () => {
    await h?.close();
    await origin?.close();
  });

  it("4 nodes, one cold file at once: 1 origin GET, every pod verified, no node sends the file to peers more than once (a chain)", async () => {
    const f = file("/chain.bin", 16 * MiB, 31, 4e6);
    const before = await sentToPeers(ALL);
    const [o, p] = [await h.total(SOURCES, { source: "origin" }), await h.total(SOURCES, { source: "peer" })];
    const got = await Promise.all(ALL.map((i) => h.get(i, f.url, f.sha256)));
    for (const g of got) verified(g, f);
    expect(origin.gets("/chain.bin")).toBe(1);
    const out = (await sentToPeers(ALL)).map((x, i) => x - before[i]!);
    for (const x of out) expect(x).toBeLessThanOrEqual(f.data.length);
    expect(out.reduce((a, b) => a + b, 0)).toBe(3 * f.data.length);
    expect((await h.total(SOURCES, { source: "origin" })) - o).toBe(1);
    expect((await h.total(SOURCES, { source: "peer" })) - p).toBe(3);
  }, 120_000);

  it("a busy answer names the node a peer's verified token is bound to, not the one it claims", async () => {
    const f = file("/named.bin", 32 * MiB, 33, 0);
    const holder = 3;
    verified(await h.get(holder, f.url, f.sha256), f);
    const onBehalf = { "x-cache-io-on-behalf-of": `${h.app}/default` };
    // fan-1's cache (its own token) claims to be fan-3; it keeps the only place (fanout 1) by not reading.
    const first = await h.peerOpen(holder, f.url, 0, { ...onBehalf, "x-cache-io-node": h.nodes[2]!.name });
    try {
      expect(first.statusCode).toBe(200);
      const busy = await h.peerGet(holder, f.url, { asNode: 1 }, onBehalf);
      expect(busy.status).toBe(503);
      expect(busy.error).toMatch(new RegExp(`\\(cache.peers.fanout\\); ask one of them: ${h.nodes[0]!.name}\\n`));
    } finally {
      first.destroy();
    }
  }, 60_000);

  it("a relay in the middle of the chain SIGKILLed mid-transfer: every other pod gets verified bytes, origin bytes < 2x", async () => {
    const f = file("/relay-killed.bin", 32 * MiB, 32, 4e6);
    const owner = h.nodes.findIndex((n) => n.name === owners(f.url, h.nodes)[0]);
    const others = ALL.filter((i) => i !== owner);
    const sent = origin.stats.bytesSent;
    const before = await sentToPeers(ALL);
    const clients = ALL.map((i) => h.get(i, f.url, f.sha256).catch((e: Error) => ({ status: -1, bytes: 0, sha256: "", error: e.message })));
    try {
      // A node other than the owner that streams the file on to another: a relay.
      const relay = await until("a relay streaming the file on", async () => {
        const out = await sentToPeers(others);
        const j = out.findIndex((x, k) => x - before[others[k]!]! > 2 * MiB);
        return j >= 0 ? others[j]! : undefined;
      }, 60_000);
      expect(origin.stats.bytesSent - sent).toBeLessThan(f.data.length / 2);
      await h.kill(relay);
      const got = await Promise.all(clients);
      for (const i of ALL.filter((i) => i !== relay)) verified(got[i]!, f);
      expect(origin.stats.bytesSent - sent).toBeLessThan(2 * f.data.length);
      expect(await h.total("cache_io_cache_peer_failures_total", { peer: h.nodes[relay]!.name })).toBeGreaterThanOrEqual(1);
    } finally {
      await Promise.all(clients);
      for (const i of ALL) if (!h.running().includes(i)) await h.start(i);
      await h.waitPeers(NODES);
    }
  }, 180_000);
});

describeCluster("the relay tree: 8 node caches, the default cache.peers.fanout (3)", (c) => {
  let origin: Origin;
  let h: PeerCaches;
  const EIGHT = [0, 1, 2, 3, 4, 5, 6, 7];

  beforeAll(async () => {
    origin = await startOrigin({ ranges: true });
    h = await PeerCaches.started(c, { nodes: 8, prefix: "fanout8", nodePrefix: "fan8", peers: "idleTimeout: 5s" });
  }, 300_000);

  afterAll(async () => {
    await h?.close();
    await origin?.close();
  });

  it("8 nodes, one cold file at once: 1 origin GET, every pod verified, the owner sends the file 3 times (not 7), no node more", async () => {
    const data = pseudoRandom(16 * MiB, 41);
    origin.put("/eight.bin", data);
    origin.rateFor.set("/eight.bin", 4e6);
    const f = { url: origin.url("/eight.bin"), data, sha256: sha256Hex(data) };
    const owner = h.nodes.findIndex((n) => n.name === owners(f.url, h.nodes)[0]);
    const got = await Promise.all(EIGHT.map((i) => h.get(i, f.url, f.sha256)));
    for (const g of got) expect(g, g.error).toMatchObject({ status: 200, bytes: data.length, sha256: f.sha256 });
    expect(origin.gets("/eight.bin")).toBe(1);
    const out = await Promise.all(EIGHT.map((i) => h.metric(i, OUT, { direction: "out" })));
    expect(out[owner]).toBe(3 * data.length);
    for (const x of out) expect(x).toBeLessThanOrEqual(3 * data.length);
    expect(out.reduce((a, b) => a + b, 0)).toBe(7 * data.length);
  }, 180_000);
});
