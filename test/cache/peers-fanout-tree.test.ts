// The relay tree with real node caches on 127.0.0.2-5 (identity off: a peer's node is the
// one it names in x-cache-io-node) and a real origin counting what it sends: with fanout 1
// four nodes missing a file at once form a chain (one origin GET, no node sends the file
// more than once), each hop starting as bytes flow; the busy answer names the peers served; a peer asked only-if-present
// starts no fill; a peer stream's last byte goes once the sha256 is verified, before the
// relay's own sync and publish.
import { request, type IncomingMessage } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";
import { metric, rankedNames, startNode, StaticPeers, type Node, serveFile } from "./peers-support.js";
import { policyOf } from "./policy-of.js";

const MiB = 2 ** 20;
const BASE = `identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\n`;
const OUT = { direction: "out" };
let origin: Origin;
let policy = policyOf(`${BASE}cache: {peers: {fanout: 1}}\n`);
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  origin = await startOrigin();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

afterAll(async () => {
  await origin?.close();
});

/** `n` nodes named in rendezvous order for `key` (the first owns it) on 127.0.0.(2+i), sharing one peer list (plus `extra` members that run nothing). */
async function cluster(key: string, n: number, extra: string[] = []): Promise<Node[]> {
  const source = new StaticPeers();
  const nodes: Node[] = [];
  for (const [i, name] of rankedNames(key, n).entries()) {
    const node = await startNode(name, `127.0.0.${2 + i}`, () => policy, source);
    cleanups.push(() => node.close());
    nodes.push(node);
  }
  source.list = [...nodes.map((x) => x.peer), ...extra.map((node) => ({ node, address: "127.0.0.1", port: 9 }))];
  return nodes;
}

const serve = (path: string, size: number, seed: number, rate?: number) => serveFile(origin, path, size, seed, rate);

/** A GET on node `n`'s peer port as node `as` (x-cache-io-node), with `headers`; resolves at the response head. */
function peerAsk(n: Node, url: string, as: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const r = request({ host: n.address, port: n.peer.port, path: objectPath(cacheKey(url), url), agent: false, headers: { "x-cache-io-node": as, ...headers } }, resolve);
    r.on("error", reject);
    r.end();
  });
}

async function text(res: IncomingMessage): Promise<string> {
  let s = "";
  for await (const c of res) s += String(c);
  return s;
}

describe("fanout 1: a chain", () => {
  it("four nodes missing a file at once: one origin GET, every node verified, no node sends the file to more than one peer", async () => {
    policy = policyOf(`${BASE}cache: {peers: {fanout: 1, idleTimeout: 8s}}\n`);
    const f = serve("/chain.bin", 16 * MiB, 21, 4 * MiB);
    const nodes = await cluster(f.key, 4);
    const sent = origin.stats.bytesSent;
    const got = await Promise.all(nodes.map((n) => fetchRaw(n.running.url + objectPath(f.key, f.url, f.sha256))));
    for (const r of got) {
      expect(r.status).toBe(200);
      expect(sha256Hex(r.body)).toBe(f.sha256);
    }
    expect(origin.gets("/chain.bin")).toBe(1);
    expect(origin.stats.bytesSent - sent).toBe(f.content.length);
    const out = await Promise.all(nodes.map((n) => metric(n, "cache_io_cache_peer_bytes_total", OUT)));
    for (const o of out) expect(o).toBeLessThanOrEqual(f.content.length);
    expect(out.reduce((a, b) => a + b, 0)).toBe(3 * f.content.length);
    for (const n of nodes.slice(1)) expect(await metric(n, "cache_io_cache_fill_sources_total", { source: "peer" })).toBe(1);
    // Following a busy answer is not a peer failure; it is counted as a redirect. Three askers, one place at the owner: at least two were sent on.
    for (const n of nodes) expect(await metric(n, "cache_io_cache_peer_failures_total")).toBe(0);
    const busy = await Promise.all(nodes.map((n) => metric(n, "cache_io_cache_peer_redirects_total", { kind: "busy" })));
    expect(busy.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it("a peer's stream of a growing file starts as soon as bytes flow into it, not STREAM_AFTER_MS (1 s) later", async () => {
    policy = policyOf(`${BASE}cache: {peers: {fanout: 1, idleTimeout: 8s}}\n`);
    const f = serve("/hops.bin", 64 * MiB, 26, 32 * MiB);
    const nodes = await cluster(f.key, 4);
    const t0 = Date.now();
    const got = Promise.all(nodes.map((n) => fetchRaw(n.running.url + objectPath(f.key, f.url, f.sha256))));
    // Every hop of the chain receives bytes well within the 1 s a pod's stream waits (for the ETag of a fill that ends soon).
    for (const n of nodes.slice(1)) await expect.poll(() => metric(n, "cache_io_cache_peer_bytes_total", { direction: "in" }), { timeout: 10_000, interval: 10 }).toBeGreaterThan(0);
    const started = Date.now() - t0;
    for (const r of await got) expect(sha256Hex(r.body)).toBe(f.sha256);
    expect(origin.gets("/hops.bin")).toBe(1);
    expect(started).toBeLessThan(900);
  }, 60_000);
});

describe("the serving side", () => {
  it("past the fanout: 503 busy naming the members it streams to (not the caller, not strangers); a finished stream frees the place", async () => {
    policy = policyOf(`${BASE}cache: {peers: {fanout: 1}}\n`);
    const f = serve("/busy.bin", 16 * MiB, 22);
    const [owner] = await cluster(f.key, 1, ["node-a", "node-b"]);
    expect((await fetchRaw(owner!.running.url + objectPath(f.key, f.url))).status).toBe(200); // complete at the owner
    const first = await peerAsk(owner!, f.url, "node-a");
    expect(first.statusCode).toBe(200);
    first.pause(); // a peer still receiving: its stream stays open
    const busy = await peerAsk(owner!, f.url, "node-b");
    expect(busy.statusCode).toBe(503);
    expect(busy.headers["x-cache-io-error"]).toBe("busy");
    expect(busy.headers["x-cache-io-peers-serving"]).toBe("node-a");
    expect(await text(busy)).toMatch(/streams \w+ to 1 peer\(s\) already \(cache.peers.fanout\); ask one of them: node-a/);
    const self = await peerAsk(owner!, f.url, "node-a"); // node-a itself is not pointed to itself
    expect(self.statusCode).toBe(503);
    expect(self.headers["x-cache-io-peers-serving"]).toBe("");
    await text(self);
    first.resume();
    expect((await text(first)).length).toBeGreaterThan(0);
    await expect.poll(async () => (await peerAsk(owner!, f.url, "node-b").then(async (r) => (r.destroy(), r.statusCode)))).toBe(200);
  }, 30_000);

  it("a stream of a caller outside the membership counts, but is not named", async () => {
    policy = policyOf(`${BASE}cache: {peers: {fanout: 1}}\n`);
    const f = serve("/stranger.bin", 16 * MiB, 23);
    const [owner] = await cluster(f.key, 1, ["node-b"]);
    expect((await fetchRaw(owner!.running.url + objectPath(f.key, f.url))).status).toBe(200);
    const first = await peerAsk(owner!, f.url, "not-a-member");
    first.pause();
    const busy = await peerAsk(owner!, f.url, "node-b");
    expect(busy.statusCode).toBe(503);
    expect(busy.headers["x-cache-io-peers-serving"]).toBe("");
    await text(busy);
    first.destroy();
  }, 30_000);

  it("asked only-if-present for a file it neither has nor fills: 404 not_present at once, no fill, the origin not asked", async () => {
    policy = policyOf(`${BASE}cache: {peers: {fanout: 3}}\n`);
    const f = serve("/absent.bin", 1 * MiB, 24);
    const [peer] = await cluster(f.key, 1);
    const gets = origin.gets("/absent.bin");
    const r = await peerAsk(peer!, f.url, "node-x", { "x-cache-io-if-present": "1" });
    expect(r.statusCode).toBe(404);
    expect(r.headers["x-cache-io-error"]).toBe("not_present");
    expect(await text(r)).toMatch(/has no copy of \w+ and is not filling one/);
    expect(peer!.running.cache.filler.inFlight).toBe(0);
    expect(origin.gets("/absent.bin")).toBe(gets);
    // With the file, the same request gets it.
    expect((await fetchRaw(peer!.running.url + objectPath(f.key, f.url))).status).toBe(200);
    const again = await peerAsk(peer!, f.url, "node-x", { "x-cache-io-if-present": "1" });
    expect(again.statusCode).toBe(200);
    await text(again);
  }, 30_000);
});

describe("the last byte of a peer stream", () => {
  it("goes once the relay verified the sha256, before its own sync and publish (a deep tree adds no fsync per hop)", async () => {
    policy = policyOf(`${BASE}cache: {peers: {fanout: 3, idleTimeout: 20s}}\n`);
    const f = serve("/release.bin", 16 * MiB, 25, 8 * MiB);
    const [owner, asker] = await cluster(f.key, 2);
    // The owner's publish (fsync, rename) takes 4 s longer than usual.
    const store = owner!.running.cache.store;
    const publish = store.publish.bind(store);
    let published = false;
    store.publish = async (...args: Parameters<typeof publish>) => {
      await sleep(4000);
      const meta = await publish(...args);
      published = true;
      return meta;
    };
    const ownClient = fetchRaw(owner!.running.url + objectPath(f.key, f.url, f.sha256));
    const r = await fetchRaw(asker!.running.url + objectPath(f.key, f.url, f.sha256));
    expect(published).toBe(false);
    expect(r.status).toBe(200);
    expect(sha256Hex(r.body)).toBe(f.sha256);
    expect(sha256Hex(readFileSync(join(asker!.root, "objects", f.key, "data")))).toBe(f.sha256);
    expect(await metric(asker!, "cache_io_cache_fill_sources_total", { source: "peer" })).toBe(1);
    // The owner's pod still waits for the publish (it mounts the file).
    const own = await ownClient;
    expect(published).toBe(true);
    expect(sha256Hex(own.body)).toBe(f.sha256);
  }, 60_000);
});
