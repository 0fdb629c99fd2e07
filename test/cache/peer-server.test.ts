// The peer port of a real node cache (identity off here; real tokens on it:
// test/cluster/peer-server.test.ts): its own listener that closes with the main one,
// only /v1/objects and /healthz, the origin's version of the bytes
// (x-cache-io-origin-version) and resumes against it (x-cache-io-if-origin-version with
// Range), error responses that say why for programs (x-cache-io-error,
// x-cache-io-origin-status) on both ports, cache.peers.maxBandwidth over all peer
// downloads together, peerBytes{out}.
import { mkdtempSync, rmSync } from "node:fs";
import { get, type IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { TokenBucket } from "../../src/cache/limits.js";
import type { Policy } from "../../src/policy/schema.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { policyOf } from "./policy-of.js";

const MB = 1_000_000;
let origin: Origin;
let dir: string;
let cache: RunningCache;
let policy: Policy;
const small = pseudoRandom(200_000, 3);
const big = pseudoRandom(3 * MB, 4);
const slow2 = pseudoRandom(4 * MB, 6);

const policyYaml = (extra = "") => `
origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: off}
cache: {root: ${dir}${extra}}
`;

beforeAll(async () => {
  origin = await startOrigin();
  origin.put("/small.bin", small);
  origin.put("/big.bin", big);
  origin.put("/slow.bin", pseudoRandom(1 * MB, 5));
  origin.rateFor.set("/slow.bin", 250_000);
  origin.put("/slow2.bin", slow2);
  origin.rateFor.set("/slow2.bin", 500_000);
  dir = mkdtempSync(join(tmpdir(), "cache-peer-server-"));
  policy = policyOf(policyYaml());
  cache = await startCache({ root: dir, host: "127.0.0.1", port: 0, peerPort: 0, policy: () => policy });
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A GET whose status and headers are known before its body ends. */
function headersOf(url: string, headers: Record<string, string>) {
  let body!: Promise<Buffer>;
  const head = new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
    const req = get(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      body = new Promise((done, fail) => {
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => done(Buffer.concat(chunks)));
        res.on("error", fail);
      });
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on("error", reject);
  });
  return { head, get body() { return head.then(() => body); } };
}

const objects = (path: string) => objectPath(cacheKey(origin.url(path)), origin.url(path));
const peer = (p: string, headers: Record<string, string> = {}) => fetchRaw(cache.peerUrl! + p, { headers });
const metric = async (line: string) => {
  const text = (await fetchRaw(`${cache.url}/metrics`)).body.toString();
  return Number(new RegExp(`^${line.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
};

describe("the peer port", () => {
  it("is its own listener, serving only /v1/objects and /healthz", async () => {
    expect(cache.peerPort).toBeGreaterThan(0);
    expect(cache.peerPort).not.toBe(cache.port);
    const r = await peer(objects("/small.bin"));
    expect(r.status).toBe(200);
    expect(r.body.equals(small)).toBe(true);
    expect((await peer("/healthz")).status).toBe(200);
    for (const p of [ensurePath(cacheKey(origin.url("/small.bin")), origin.url("/small.bin")), "/metrics", "/readyz"]) {
      const refused = await peer(p);
      expect(refused.status, p).toBe(404);
      expect(refused.body.toString()).toMatch(/on the peer port \(endpoints: \/v1\/objects\/<key>, \/healthz; pods use cache.port\)/);
      expect(refused.headers["x-cache-io-error"]).toBe("bad_request");
    }
    // the main port still serves everything
    expect((await fetchRaw(`${cache.url}/metrics`)).status).toBe(200);
  });

  it("sends the origin's version of a complete file, and resumes only against the same version", async () => {
    const p = objects("/small.bin");
    const whole = await peer(p);
    const version = JSON.parse(String(whole.headers["x-cache-io-origin-version"]));
    expect(version).toEqual({ size: small.length, etag: expect.stringMatching(/^"v\d+-/), lastModified: expect.any(String) });
    expect(whole.headers.etag).toMatch(/^"[0-9a-f]{64}"$/); // ours (the sha256), not the origin's

    const same = await peer(p, { range: "bytes=1000-", "x-cache-io-if-origin-version": String(whole.headers["x-cache-io-origin-version"]) });
    expect(same.status).toBe(206);
    expect(same.body.equals(small.subarray(1000))).toBe(true);
    expect(same.headers["x-cache-io-origin-version"]).toBe(whole.headers["x-cache-io-origin-version"]);

    for (const other of [{ ...version, etag: '"another"' }, { ...version, size: 1 }, { size: small.length }, "not json"]) {
      const r = await peer(p, { range: "bytes=1000-", "x-cache-io-if-origin-version": typeof other === "string" ? other : JSON.stringify(other) });
      expect(r.status, JSON.stringify(other)).toBe(200);
      expect(r.body.equals(small)).toBe(true);
    }
  });

  it("sends the origin's version of a file still filling while it streams it", async () => {
    const r = await peer(objects("/slow.bin"));
    expect(r.status).toBe(200);
    expect(r.headers.etag).toBeUndefined(); // it streamed: the sha256 was not known yet
    expect(JSON.parse(String(r.headers["x-cache-io-origin-version"]))).toEqual({ size: 1 * MB, etag: expect.stringMatching(/^"v\d+-/), lastModified: expect.any(String) });
  });

  it("a resume of a file still filling (Range + its version) streams at once as a 206; another version waits for the whole file", async () => {
    const p = objects("/slow2.bin");
    const t0 = performance.now();
    const first = headersOf(cache.peerUrl! + p, {});
    const { headers } = await first.head;
    const version = String(headers["x-cache-io-origin-version"]);
    const resumed = headersOf(cache.peerUrl! + p, { range: "bytes=100000-", "x-cache-io-if-origin-version": version });
    const head = await resumed.head;
    const headAt = (performance.now() - t0) / 1000;
    expect(head.status).toBe(206);
    expect(head.headers["content-range"]).toBe(`bytes 100000-${slow2.length - 1}/${slow2.length}`);
    const [whole, part] = await Promise.all([first.body, resumed.body]);
    const doneAt = (performance.now() - t0) / 1000;
    expect(whole.equals(slow2)).toBe(true);
    expect(part.equals(slow2.subarray(100000))).toBe(true);
    // 4 MB at 500 KB/s: the fill takes about 8 s; the resume was answered once its first MiB was on disk (fills write 1 MiB at a time).
    expect(doneAt - headAt).toBeGreaterThan(2.5);

    origin.put("/slow3.bin", small);
    origin.rateFor.set("/slow3.bin", 100_000);
    const q = objects("/slow3.bin");
    const again = headersOf(cache.peerUrl! + q, {});
    const v3 = JSON.parse(String((await again.head).headers["x-cache-io-origin-version"]));
    const other = await peer(q, { range: "bytes=100000-", "x-cache-io-if-origin-version": JSON.stringify({ ...v3, etag: '"old"' }) });
    expect(other.status).toBe(200);
    expect(other.body.equals(small)).toBe(true);
    await again.body;
  }, 30_000);

  it("error responses carry x-cache-io-error and the origin's status, on both ports", async () => {
    origin.cue("/gone.bin", { status: 404, times: 2 });
    origin.put("/gone.bin", small);
    for (const base of [cache.url, cache.peerUrl!]) {
      const r = await fetchRaw(base + objects("/gone.bin"));
      expect(r.status, base).toBe(502);
      expect(r.headers["x-cache-io-error"]).toBe("origin_status");
      expect(r.headers["x-cache-io-origin-status"]).toBe("404");
    }
    const refused = await peer(objectPath(cacheKey("http://example.com/x"), "http://example.com/x"));
    expect(refused.status).toBe(403);
    expect(refused.headers["x-cache-io-error"]).toBe("policy");
    expect(refused.headers["x-cache-io-origin-status"]).toBeUndefined();
  });

  it("a malformed x-cache-io-on-behalf-of is a 400", async () => {
    for (const bad of ["team-a", "team-a/default/x", "Team-A/default", "team-a/", "a/b, c/d"]) {
      const r = await peer(objects("/small.bin"), { "x-cache-io-on-behalf-of": bad });
      expect(r.status, bad).toBe(400);
      expect(r.body.toString()).toMatch(/is not "<namespace>\/<serviceaccount>"/);
    }
    expect((await peer(objects("/small.bin"), { "x-cache-io-on-behalf-of": "team-a/my.service-account" })).status).toBe(200);
  });

  it("cache.peers.maxBandwidth paces all peer downloads together; pods are not paced; peerBytes{out} counts", async () => {
    const p = objects("/big.bin");
    expect((await fetchRaw(cache.url + p)).status).toBe(200); // cached: the origin plays no part below
    const before = await metric('cache_io_cache_peer_bytes_total{direction="out"}');
    policy = policyOf(policyYaml(", peers: {maxBandwidth: 4M}"));
    const t0 = performance.now();
    const both = await Promise.all([peer(p), peer(p)]);
    const took = (performance.now() - t0) / 1000;
    for (const r of both) expect(r.body.equals(big)).toBe(true);
    // 6 MB at 4 MB/s, less a quarter second's burst: at least 1.25 s (bound 1.0 s for timer slack); unpaced it takes well under that.
    expect(took).toBeGreaterThan(1.0);
    expect(took).toBeLessThan(20);
    expect((await metric('cache_io_cache_peer_bytes_total{direction="out"}')) - before).toBe(2 * big.length);

    const t1 = performance.now();
    expect((await fetchRaw(cache.url + p)).body.equals(big)).toBe(true);
    expect((performance.now() - t1) / 1000).toBeLessThan(0.75);
    expect((await metric('cache_io_cache_peer_bytes_total{direction="out"}')) - before).toBe(2 * big.length);
    policy = policyOf(policyYaml());
  });

  it("with the tier off by policy, peers get 503 and are told to fill from the origin", async () => {
    policy = policyOf(policyYaml(", peers: {enabled: false}"));
    const r = await peer(objects("/small.bin"));
    expect(r.status).toBe(503);
    expect(r.body.toString()).toMatch(/cluster tier is off on this node \(cache.peers.enabled: false\)/);
    policy = policyOf(policyYaml());
  });
});

describe("startCache's peer listener", () => {
  it("closes with the main one", async () => {
    const root = join(dir, "second");
    const c = await startCache({ root, host: "127.0.0.1", port: 0, peerPort: 0, policy: () => policy });
    const peerPort = c.peerPort!;
    expect((await fetchRaw(`${c.peerUrl}/healthz`)).status).toBe(200);
    await c.close(100);
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(peerPort, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve(false)));
      s.once("error", () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  it("refuses a peer port that is the main port, naming both settings", async () => {
    await expect(startCache({ root: join(dir, "fourth"), host: "127.0.0.1", port: 18585, peerPort: 18585, policy: () => policy })).rejects.toThrow(
      /the peer port 18585 is the node cache's port too: give cache.peers.port \(or --peer-port\) another port than cache.port \(or --port\)/,
    );
  });

  it("is not started without peerPort", async () => {
    const c = await startCache({ root: join(dir, "third"), host: "127.0.0.1", port: 0, policy: () => policy });
    try {
      expect(c.peerServer).toBeUndefined();
      expect(c.peerUrl).toBeUndefined();
    } finally {
      await c.close(100);
    }
  });
});

describe("the peer bandwidth bucket (TokenBucket)", () => {
  it("lets a quarter second's bytes go at once, then queues takers at the rate, in order", () => {
    let now = 0;
    let rate = 1_000_000;
    const b = new TokenBucket(() => rate, () => now);
    expect(b.reserve(250_000)).toBe(0);
    expect(b.reserve(500_000)).toBe(500);
    expect(b.reserve(500_000)).toBe(1000); // a second taker waits behind the first
    now = 5000; // idle: the bucket refills, but no more than the burst
    expect(b.reserve(250_000)).toBe(0);
    expect(b.reserve(100_000)).toBe(100);
    rate = 0; // 0: no limit, at once
    expect(b.reserve(10_000_000)).toBe(0);
  });

  it("chunks are a twentieth of a second's bytes, 16 KiB to 1 MiB", () => {
    let rate = 1_000_000;
    const b = new TokenBucket(() => rate);
    expect(b.chunk()).toBe(50_000);
    rate = 100_000;
    expect(b.chunk()).toBe(16 << 10);
    rate = 0;
    expect(b.chunk()).toBe(1 << 20);
    rate = 1e9;
    expect(b.chunk()).toBe(1 << 20);
  });
});
