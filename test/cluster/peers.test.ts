// The cluster tier with real processes and real addresses: node caches (the compiled CLI)
// on 127.0.0.2..127.0.0.5 as node-1..node-4, membership from a real EndpointSlice in the
// real API server, identity required (clients are pods with real bound tokens, peers the
// node cache's own ServiceAccount). Every scenario counts what the origin sent and checks
// the sha256 of what every client got.
import { afterAll, beforeAll, expect, it } from "vitest";
import { pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";
import { describeCluster } from "./context.js";
import { until } from "./kube.js";
import { owners, PeerCaches, type Got } from "./peer-caches.js";

const NODES = 4;
const MiB = 2 ** 20;
const ALL = [0, 1, 2, 3];
const SOURCES = "cache_io_cache_fill_sources_total";

describeCluster("the cluster tier: node caches on their own addresses, peers from EndpointSlices", (c) => {
  let origin: Origin;
  let h: PeerCaches;
  const small = pseudoRandom(1024 * 1024, 3);

  /** Serve a new file at `path` (16 MiB: below cache.parts.minFileSize, so one origin stream per fill). */
  function file(path: string, seed: number, rate?: number): { url: string; data: Buffer; sha256: string } {
    const data = pseudoRandom(16 * MiB, seed);
    origin.put(path, data);
    if (rate) origin.rateFor.set(path, rate);
    return { url: origin.url(path), data, sha256: sha256Hex(data) };
  }

  const index = (node: string) => h.nodes.findIndex((n) => n.name === node);

  function verified(g: Got, f: { data: Buffer; sha256: string }): void {
    expect(g, g.error).toMatchObject({ status: 200, bytes: f.data.length, sha256: f.sha256 });
  }

  /** Origin bytes and fill sources (summed over the running caches) spent by `body`. */
  async function spent<T>(body: () => Promise<T>): Promise<{ value: T; originBytes: number; origin: number; peer: number }> {
    const [bytes, o, p] = [origin.stats.bytesSent, await h.total(SOURCES, { source: "origin" }), await h.total(SOURCES, { source: "peer" })];
    const value = await body();
    return {
      value,
      originBytes: origin.stats.bytesSent - bytes,
      origin: (await h.total(SOURCES, { source: "origin" })) - o,
      peer: (await h.total(SOURCES, { source: "peer" })) - p,
    };
  }

  beforeAll(async () => {
    origin = await startOrigin({ ranges: true });
    origin.put("/smoke.bin", small);
    h = await PeerCaches.setup(c, { nodes: NODES, prefix: "peers", peers: "enabled: true, idleTimeout: 5s" });
    await h.setMembers(ALL);
    await Promise.all(ALL.map((i) => h.start(i)));
    await h.waitPeers(NODES);
  }, 240_000);

  afterAll(async () => {
    await h?.close();
    await origin?.close();
  });

  it("each node's cache serves its own node's pods (real bound tokens) and refuses a pod of another node", async () => {
    const url = origin.url("/smoke.bin");
    const got = await Promise.all(ALL.map((i) => h.get(i, url, sha256Hex(small))));
    for (const g of got) expect(g, g.error).toMatchObject({ status: 200, bytes: small.length, sha256: sha256Hex(small) });
    const wrongNode = await h.get(1, url, undefined, { as: 0 });
    expect(wrongNode.status).toBe(401);
    expect(wrongNode.error).toMatch(/bound to a pod on node "node-1", not this node "node-2"/);
  }, 120_000);

  it("the peer port takes only the node cache's own ServiceAccount, acting for a named caller", async () => {
    const url = origin.url("/smoke.bin");
    const pod = await h.peerGet(1, url, { token: await h.clientToken(1) });
    expect(pod.status).toBe(401);
    expect(pod.error).toMatch(/not the node cache's own peers-sys\/cache-io-node-cache: the peer port \(cache.peers.port\) serves only node caches/);
    const anonymous = await h.peerGet(1, url, { asNode: 0 });
    expect(anonymous.status).toBe(403);
    expect(anonymous.error).toMatch(/a peer request needs x-cache-io-on-behalf-of/);
    const forPod = await h.peerGet(1, url, { asNode: 0 }, { "x-cache-io-on-behalf-of": `${h.app}/default` });
    expect(forPod, forPod.error).toMatchObject({ status: 200, bytes: small.length, sha256: sha256Hex(small) });
  }, 60_000);

  it("4 caches, one client per node, the same cold file at once: the origin sends it once; 1 origin fill, 3 peer fills", async () => {
    const f = file("/one.bin", 1, 16e6);
    const owner = index(owners(f.url, h.nodes)[0]!);
    const out = await h.metric(owner, "cache_io_cache_peer_bytes_total", { direction: "out" });
    const s = await spent(() => Promise.all(ALL.map((i) => h.get(i, f.url, f.sha256))));
    for (const g of s.value) verified(g, f);
    expect(origin.gets("/one.bin")).toBe(1);
    expect(s.originBytes).toBe(f.data.length);
    expect({ origin: s.origin, peer: s.peer }).toEqual({ origin: 1, peer: 3 });
    expect(await h.metric(owner, "cache_io_cache_peer_bytes_total", { direction: "out" })).toBe(out + 3 * f.data.length);
  }, 120_000);

  /** Run `body`; afterwards all 4 caches run and are members again, also when it failed. */
  async function restoring(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } finally {
      for (const i of ALL) if (!h.running().includes(i)) await h.start(i);
      await h.setMembers(ALL);
      await h.waitPeers(NODES);
    }
  }

  /** Clients on every node ask for a 16 MiB file at 4 MB/s (about 4 s); the owner is SIGKILLed a quarter through. */
  async function ownerKilled(path: string, seed: number, ensure: boolean): Promise<{ got: Got[]; f: ReturnType<typeof file>; originBytes: number; owner: number }> {
    const f = file(path, seed, 4e6);
    const owner = index(owners(f.url, h.nodes)[0]!);
    const bytesBefore = origin.stats.bytesSent;
    const others = ALL.filter((i) => i !== owner);
    const asked = Promise.all(others.map((i) => h.get(i, f.url, f.sha256, { ensure })));
    const ownClient = h.get(owner, f.url, f.sha256).catch(() => undefined);
    asked.catch(() => undefined); // awaited below; no unhandled rejection if the wait fails first
    // a quarter of the file from the origin: the owner is filling, the peers stream from it
    await until("the owner a quarter through its fill", async () => (origin.stats.bytesSent - bytesBefore > 4 * MiB ? true : undefined));
    await h.kill(owner);
    const got = await asked;
    await ownClient;
    return { got, f, originBytes: origin.stats.bytesSent - bytesBefore, owner };
  }

  it("the owner SIGKILLed mid-transfer: every other pod (ensure, then the bytes) gets verified bytes, origin bytes < 2x", () => restoring(async () => {
    const { got, f, originBytes, owner } = await ownerKilled("/killed.bin", 2, true);
    for (const g of got) verified(g, f);
    expect(originBytes).toBeGreaterThan(f.data.length); // the owner's part, then the rest by the next in rank
    expect(originBytes).toBeLessThan(2 * f.data.length);
    expect(await h.total("cache_io_cache_peer_failures_total", { peer: h.nodes[owner]!.name })).toBeGreaterThanOrEqual(1);
  }), 180_000);

  it("the owner SIGKILLed mid-transfer: clients streaming /v1/objects on every other node are not cut", () => restoring(async () => {
    const { got, f, originBytes } = await ownerKilled("/killed-streaming.bin", 3, false);
    for (const g of got) verified(g, f);
    expect(originBytes).toBeLessThan(2 * f.data.length);
  }), 180_000);

  it("a node joins and leaves the EndpointSlice: ownership moves, the files are still served, no peer errors", () => restoring(async () => {
    const newcomer = 3;
    const before = [0, 1, 2];
    const named = (ix: number[]) => ix.map((i) => h.nodes[i]!);
    // a file node-4 owns once it joins, and its owner among node-1..3
    const pick = (prefix: string) => {
      for (let n = 0; ; n++) {
        const url = origin.url(`/${prefix}-${n}.bin`);
        if (owners(url, named(ALL))[0] === h.nodes[newcomer]!.name) return { path: `/${prefix}-${n}.bin`, oldOwner: index(owners(url, named(before))[0]!) };
      }
    };
    const failures = async () => (await Promise.all(before.map((i) => h.metric(i, "cache_io_cache_peer_failures_total")))).reduce((a, b) => a + b, 0);
    const failuresBefore = await failures();
    await h.setMembers(before);
    await h.waitPeers(3);

    // node-1..3 only: the file is filled by its owner among them
    const moved = pick("moves");
    const f = file(moved.path, 10);
    const asker = before.find((i) => i !== moved.oldOwner)!;
    verified(await h.get(asker, f.url, f.sha256), f);
    expect(origin.gets(moved.path)).toBe(1);

    // node-4 joins: it owns the file now; a node that has not got it asks node-4, which fills it
    await h.setMembers(ALL);
    await h.waitPeers(NODES);
    const third = before.find((i) => i !== moved.oldOwner && i !== asker)!;
    const out4 = await h.metric(newcomer, "cache_io_cache_peer_bytes_total", { direction: "out" });
    verified(await h.get(third, f.url, f.sha256), f);
    expect(await h.metric(newcomer, "cache_io_cache_peer_bytes_total", { direction: "out" })).toBe(out4 + f.data.length);
    expect(origin.gets(moved.path)).toBe(2);

    // a file node-4 fills while it is a member, then node-4 leaves (not ready, then removed):
    // the node that got it from node-4 is its owner among the rest and serves it
    const kept = pick("kept");
    const g = file(kept.path, 11);
    verified(await h.get(kept.oldOwner, g.url, g.sha256), g);
    await h.setMembers(ALL, [newcomer]);
    await h.waitPeers(3, before);
    const out4Left = await h.metric(newcomer, "cache_io_cache_peer_bytes_total", { direction: "out" });
    for (const i of before.filter((i) => i !== kept.oldOwner)) verified(await h.get(i, g.url, g.sha256), g);
    expect(origin.gets(kept.path)).toBe(1);
    expect(await h.metric(newcomer, "cache_io_cache_peer_bytes_total", { direction: "out" })).toBe(out4Left);
    await h.setMembers(before);
    await h.kill(newcomer, "SIGTERM");
    await h.waitPeers(3, before);
    const late = file("/after-leave.bin", 12);
    for (const i of before) verified(await h.get(i, late.url, late.sha256), late);
    expect(origin.gets("/after-leave.bin")).toBe(1);
    expect(await failures()).toBe(failuresBefore);
  }), 240_000);

  it("the tier off by policy: each node fills from the origin (origin bytes = N x)", async () => {
    await h.reloadPolicy("enabled: false");
    try {
      const f = file("/off.bin", 20, 16e6);
      const s = await spent(() => Promise.all(ALL.map((i) => h.get(i, f.url, f.sha256))));
      for (const g of s.value) verified(g, f);
      expect(origin.gets("/off.bin")).toBe(NODES);
      expect(s.originBytes).toBe(NODES * f.data.length);
      expect({ origin: s.origin, peer: s.peer }).toEqual({ origin: NODES, peer: 0 });
    } finally {
      await h.reloadPolicy("enabled: true, idleTimeout: 5s");
    }
  }, 120_000);
});
