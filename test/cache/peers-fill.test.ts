// The cluster tier's client side with real node caches on distinct loopback addresses
// (127.0.0.2-5), each on its own root, and a real origin counting what it sends: a file
// missed by four nodes at once comes from the origin once; an owner killed with SIGKILL
// mid-transfer leaves the others to finish from the next peer (origin bytes < 2x); a
// stalled peer is given up on after cache.peers.idleTimeout and the next one resumes
// from the byte reached; wrong bytes from a peer are refused; the owner's answer about
// the origin is final; with the tier off each node fills from the origin.
import { readFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";
import { metric, rankedNames, startFakePeer, startNode, StaticPeers, type Node, serveFile } from "./peers-support.js";
import { policyOf } from "./policy-of.js";
import { killAll, killGroup, spawnCache } from "./spawn-cache.js";

const MiB = 2 ** 20;
const BASE = `identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\n`;
const POLICY = `${BASE}cache: {originRetries: 1, peers: {idleTimeout: 8s, maxTries: 2}}\n`;
let origin: Origin;
let dir: string;
let policy = policyOf(POLICY);
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  origin = await startOrigin();
  dir = mkdtempSync(join(tmpdir(), "cache-peers-"));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  policy = policyOf(POLICY);
  origin.ranges = false;
});

afterAll(async () => {
  await killAll();
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Nodes named in rendezvous order for `key`, on 127.0.0.(2+i), sharing one static peer list of all of them. */
async function cluster(key: string, n: number, first = 0): Promise<{ nodes: Node[]; source: StaticPeers }> {
  const source = new StaticPeers();
  const names = rankedNames(key, n);
  const nodes: Node[] = [];
  for (let i = first; i < n; i++) {
    const node = await startNode(names[i]!, `127.0.0.${2 + i}`, () => policy, source);
    cleanups.push(() => node.close());
    nodes.push(node);
  }
  source.list = nodes.map((x) => x.peer);
  return { nodes, source };
}

const serve = (path: string, size: number, seed: number, rate?: number) => serveFile(origin, path, size, seed, rate);

const stored = (node: Node, key: string) => readFileSync(join(node.root, "objects", key, "data"));

describe("one origin fetch per cluster", () => {
  it("four nodes missing the same file at once: the owner fills it from the origin once, the others stream it from the owner", async () => {
    const f = serve("/four.bin", 16 * MiB, 11, 8 * MiB);
    const { nodes } = await cluster(f.key, 4);
    const sent = origin.stats.bytesSent;
    const got = await Promise.all(nodes.map((n) => fetchRaw(n.running.url + objectPath(f.key, f.url))));
    for (const r of got) {
      expect(r.status).toBe(200);
      expect(sha256Hex(r.body)).toBe(f.sha256);
    }
    expect(origin.gets("/four.bin")).toBe(1);
    expect(origin.stats.bytesSent - sent).toBe(f.content.length);
    const [owner, ...others] = nodes;
    expect(await metric(owner!, "cache_io_cache_peers")).toBe(4);
    expect(await metric(owner!, "cache_io_cache_fill_sources_total", { source: "origin" })).toBe(1);
    for (const n of others) {
      expect(await metric(n, "cache_io_cache_fill_sources_total", { source: "peer" })).toBe(1);
      expect(await metric(n, "cache_io_cache_peer_bytes_total", { direction: "in" })).toBe(f.content.length);
      expect(await metric(n, "cache_io_cache_origin_bytes_total")).toBe(0);
      expect(stored(n, f.key).equals(f.content)).toBe(true);
    }
  });

  it.each([
    { ranges: true, path: "/killed-ranges.bin" },
    { ranges: false, path: "/killed.bin" },
  ])("the owner killed with SIGKILL mid-transfer (origin ranges: $ranges): the others finish from the next peer or the origin, with verified bytes and origin bytes under 2x", async ({ ranges, path }) => {
    origin.ranges = ranges;
    const f = serve(path, 24 * MiB, 12, 6 * MiB);
    const names = rankedNames(f.key, 4);
    const policyFile = join(dir, "owner.yaml");
    writeFileSync(policyFile, POLICY);
    const ownerRoot = mkdtempSync(join(dir, "owner-"));
    const owner = await spawnCache(["--root", ownerRoot, "--policy", policyFile, "--host", "127.0.0.2"]);
    const ownerPort = Number(new URL(owner.url).port);
    const { nodes, source } = await cluster(f.key, 4, 1);
    source.list = [{ node: names[0]!, address: "127.0.0.2", port: ownerPort }, ...nodes.map((n) => n.peer)];
    const sent = origin.stats.bytesSent;
    const ownerClient = fetchRaw(`http://127.0.0.2:${ownerPort}${ensurePath(f.key, f.url)}`).catch((e: Error) => e);
    const clients = nodes.map((n) => fetchRaw(n.running.url + ensurePath(f.key, f.url)));
    // Every other node is streaming from the owner when it dies, with readers streaming the file as it fills.
    for (const n of nodes) await expect.poll(() => metric(n, "cache_io_cache_peer_bytes_total", { direction: "in" }), { timeout: 20_000, interval: 50 }).toBeGreaterThan(MiB);
    // Rank 1 completes its bytes from the origin when the origin serves ranges (else it starts over, cutting its readers).
    const readers = nodes.slice(ranges ? 0 : 1).map((n) => fetchRaw(n.running.url + objectPath(f.key, f.url)));
    killGroup(owner.proc);
    const done = await Promise.all(clients);
    // Ranks 2 and 3 resumed from rank 1 at the byte they had (same origin version), so their readers went on unbroken.
    for (const r of await Promise.all(readers)) {
      expect(r.complete).toBe(true);
      expect(sha256Hex(r.body)).toBe(f.sha256);
    }
    expect(await metric(nodes[0]!, "cache_io_cache_peer_bytes_total", { direction: "out" })).toBeLessThan(2 * f.content.length);
    await ownerClient;
    for (const [i, r] of done.entries()) {
      expect(r.status, r.body.toString()).toBe(200);
      expect(r.body.toString()).toMatch(/^done /m);
      expect(sha256Hex(stored(nodes[i]!, f.key))).toBe(f.sha256);
    }
    const originBytes = origin.stats.bytesSent - sent;
    expect(originBytes).toBeLessThan((ranges ? 1.3 : 2) * f.content.length);
    // The owner's; then rank 1's: the rest in parts, or part requests answered 200 (cut at once) and the whole file.
    expect(origin.gets(path)).toBeGreaterThanOrEqual(ranges ? 2 : 3);
    for (const n of nodes) expect(await metric(n, "cache_io_cache_peer_failures_total", { peer: names[0]! })).toBe(1);
    // Rank 1 fell back to the origin; ranks 2 and 3 got the file from rank 1.
    expect(await metric(nodes[0]!, "cache_io_cache_fill_sources_total", { source: "origin" })).toBe(1);
    for (const n of nodes.slice(1)) expect(await metric(n, "cache_io_cache_fill_sources_total", { source: "peer" })).toBe(1);
    rmSync(ownerRoot, { recursive: true, force: true });
  }, 60_000);
});

describe("peers that fail or misbehave", () => {
  it("gives up on a peer that stalls for cache.peers.idleTimeout and resumes from the byte reached at the next peer", async () => {
    policy = policyOf(`${BASE}cache: {peers: {idleTimeout: 1s, maxTries: 2}}\n`);
    const f = serve("/stall.bin", 4 * MiB, 13);
    const names = rankedNames(f.key, 3);
    const head = await fetchRaw(f.url, { method: "HEAD" });
    const version = JSON.stringify({ size: f.content.length, etag: head.headers.etag, lastModified: head.headers["last-modified"] });
    const half = 2 * MiB;
    const stalling = await startFakePeer("127.0.0.2", (_req, res) => {
      res.writeHead(200, { "content-length": f.content.length, "x-cache-io-origin-version": version });
      res.write(f.content.subarray(0, half)); // then nothing
    });
    cleanups.push(() => stalling.close());
    const source = new StaticPeers();
    const next = await startNode(names[1]!, "127.0.0.3", () => policy, source);
    cleanups.push(() => next.close());
    expect((await fetchRaw(next.running.url + ensurePath(f.key, f.url))).status).toBe(200); // a complete copy at the next peer
    const self = await startNode(names[2]!, "127.0.0.4", () => policy, source);
    cleanups.push(() => self.close());
    source.list = [{ node: names[0]!, address: "127.0.0.2", port: stalling.port }, next.peer, self.peer];
    const gets = origin.gets("/stall.bin");
    const t0 = Date.now();
    const r = await fetchRaw(self.running.url + objectPath(f.key, f.url));
    expect(r.status).toBe(200);
    expect(sha256Hex(r.body)).toBe(f.sha256);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(origin.gets("/stall.bin")).toBe(gets);
    expect(await metric(self, "cache_io_cache_peer_failures_total", { peer: names[0]!, reason: "idle" })).toBe(1);
    expect(await metric(self, "cache_io_cache_peer_bytes_total", { direction: "in" })).toBe(f.content.length);
    // Only the rest came from the next peer: it was asked for bytes=<half>-.
    expect(await metric(next, "cache_io_cache_served_bytes_total")).toBe(f.content.length - half);
    expect(stalling.requests[0]?.authorization).toBe("Bearer test-token");
  });

  it("refuses a peer's bytes that do not match its ETag or the sha256 asked for: nothing of them is published", async () => {
    const f = serve("/wrong.bin", 3 * MiB, 14);
    const names = rankedNames(f.key, 2);
    const garbage = pseudoRandom(f.content.length, 99);
    let claim = f.sha256; // first a lie: the right sha256 announced for other bytes
    const liar = await startFakePeer("127.0.0.2", (_req, res) => {
      res.writeHead(200, { "content-length": garbage.length, etag: `"${claim}"` });
      res.end(garbage);
    });
    cleanups.push(() => liar.close());
    const source = new StaticPeers();
    const self = await startNode(names[1]!, "127.0.0.3", () => policy, source);
    cleanups.push(() => self.close());
    source.list = [{ node: names[0]!, address: "127.0.0.2", port: liar.port }, self.peer];
    // The origin is down for this one: the peer's bytes are all there is, and they are not taken.
    origin.cue("/wrong.bin", { status: 404 });
    const refused = await fetchRaw(self.running.url + objectPath(f.key, f.url));
    expect(refused.status).toBe(502);
    expect(self.running.cache.current(f.key)).toBeUndefined();
    expect(existsSync(join(self.root, "objects", f.key, "data"))).toBe(false);
    expect(await metric(self, "cache_io_cache_peer_failures_total", { peer: names[0]!, reason: "checksum" })).toBe(1);
    // An honest ETag but not the sha256 the pod pinned: refused too; the origin's bytes are published.
    claim = sha256Hex(garbage);
    const pinned = await fetchRaw(self.running.url + objectPath(f.key, f.url, f.sha256));
    expect(pinned.status).toBe(200);
    expect(sha256Hex(pinned.body)).toBe(f.sha256);
    expect(liar.requests).toHaveLength(2);
    expect(await metric(self, "cache_io_cache_peer_failures_total", { peer: names[0]!, reason: "checksum" })).toBe(2);
    expect(await metric(self, "cache_io_cache_fill_sources_total", { source: "origin" })).toBe(1);
  });

  it("takes the owner's non-transient answer about the origin as final, and moves on from a busy peer", async () => {
    const f = serve("/final.bin", MiB, 15);
    const names = rankedNames(f.key, 2);
    let answer = { status: 502, reason: "origin_status", originStatus: "404", text: "origin answered 404 Not Found for http://127.0.0.1/final.bin" };
    const owner = await startFakePeer("127.0.0.2", (_req, res) => {
      res.writeHead(answer.status, { "x-cache-io-error": answer.reason, "x-cache-io-origin-status": answer.originStatus, "content-type": "text/plain" });
      res.end(`error: ${answer.text}\n`);
    });
    cleanups.push(() => owner.close());
    const source = new StaticPeers();
    const self = await startNode(names[1]!, "127.0.0.3", () => policy, source);
    cleanups.push(() => self.close());
    source.list = [{ node: names[0]!, address: "127.0.0.2", port: owner.port }, self.peer];
    const gets = origin.gets("/final.bin");
    const r = await fetchRaw(self.running.url + objectPath(f.key, f.url));
    expect(r.status).toBe(502);
    expect(r.body.toString()).toContain(`peer ${names[0]}: origin answered 404 Not Found`);
    expect(origin.gets("/final.bin")).toBe(gets);
    answer = { status: 503, reason: "busy", originStatus: "", text: "too many fills" };
    const ok = await fetchRaw(self.running.url + objectPath(f.key, f.url));
    expect(ok.status).toBe(200);
    expect(sha256Hex(ok.body)).toBe(f.sha256);
    expect(await metric(self, "cache_io_cache_peer_failures_total", { peer: names[0]!, reason: "busy" })).toBe(1);
  });

  it("fills a peer's request from the origin, never from the peers above (one hop at most)", async () => {
    const f = serve("/hop.bin", MiB, 18);
    const names = rankedNames(f.key, 2);
    const above = await startFakePeer("127.0.0.2", (_req, res) => res.writeHead(503).end());
    cleanups.push(() => above.close());
    const source = new StaticPeers();
    const node = await startNode(names[1]!, "127.0.0.3", () => policy, source);
    cleanups.push(() => node.close());
    source.list = [{ node: names[0]!, address: "127.0.0.2", port: above.port }, node.peer];
    const r = await fetchRaw(`http://127.0.0.3:${node.peer.port}${objectPath(f.key, f.url)}`);
    expect(r.status).toBe(200);
    expect(sha256Hex(r.body)).toBe(f.sha256);
    expect(above.requests).toHaveLength(0);
    expect(await metric(node, "cache_io_cache_fill_sources_total", { source: "origin" })).toBe(1);
  });

  it("with cache.peers.enabled false every node fills from the origin itself", async () => {
    policy = policyOf(`${BASE}cache: {peers: {enabled: false}}\n`);
    const f = serve("/off.bin", 2 * MiB, 16, 4 * MiB);
    const { nodes } = await cluster(f.key, 3);
    const got = await Promise.all(nodes.map((n) => fetchRaw(n.running.url + objectPath(f.key, f.url))));
    for (const r of got) expect(sha256Hex(r.body)).toBe(f.sha256);
    expect(origin.gets("/off.bin")).toBe(3);
    for (const n of nodes) expect(await metric(n, "cache_io_cache_peer_bytes_total", { direction: "in" })).toBe(0);
  });
});

describe("Fill.version", () => {
  it("is the origin's length and validators as soon as the origin answered, before the fill ends", async () => {
    const f = serve("/version.bin", 4 * MiB, 17, 2 * MiB);
    const node = await startNode("solo", "127.0.0.2", () => policy, undefined);
    cleanups.push(() => node.close());
    const a = await node.running.cache.acquire({ key: f.key, url: f.url });
    if (!("fill" in a)) throw new Error("expected a fill");
    await expect.poll(() => a.fill.version, { timeout: 5000, interval: 20 }).toBeDefined();
    expect(a.fill.bytes).toBeLessThan(f.content.length);
    const head = await fetchRaw(f.url, { method: "HEAD" });
    expect(a.fill.version).toEqual({ size: f.content.length, etag: head.headers.etag, lastModified: head.headers["last-modified"] });
    await node.running.cache.settle(a.fill, { key: f.key, url: f.url });
    a.fill.leave();
  });
});
