// Parallel ranged fills against a real local origin (ranges on, each connection
// throttled): parts fetched at once and bound to one version by If-Range, the per-node
// connection cap, fallbacks to one stream, an object that changes mid-fill, parts that
// fail and are retried from the byte they reached; /v1/objects streaming a file while
// it fills, and cut when the fill fails.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { request, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";
import { policyOf } from "./policy-of.js";

const MiB = 2 ** 20;
const POLICY = `
origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
cache: {idleTimeout: 5s, originRetries: 2, diskBudget: 1Gi, parts: {size: 1Mi, concurrency: 4, minFileSize: 2Mi, maxConnections: 32}}
`;

let origin: Origin;
let cache: RunningCache;
let root: string;
let policy = policyOf(POLICY);

beforeAll(async () => {
  origin = await startOrigin({ ranges: true });
  root = mkdtempSync(join(tmpdir(), "cache-parts-"));
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy, retryBaseMs: 20 });
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  rmSync(root, { recursive: true, force: true });
});

beforeEach(() => {
  origin.ranges = true;
  origin.noValidators = false;
  origin.stats.maxActive = 0;
  policy = policyOf(POLICY);
});

/** The first request's range: the first part, max(parts.size, parts.minFileSize). */
const FIRST = `bytes=0-${2 * MiB - 1}`;
const ensure = (url: string) => fetchRaw(cache.url + ensurePath(cacheKey(url), url));
const stored = (url: string) => readFileSync(join(root, "objects", cacheKey(url), "data"));
const rangesAsked = (path: string) => origin.requests.filter((r) => r.path === path).map((r) => r.headers.range);

describe("ranged fills", () => {
  it("fetches the parts of a file at once, each bound to the version by If-Range, and stores the exact bytes", async () => {
    const content = pseudoRandom(8 * MiB, 101);
    const { sha256, etag } = origin.put("/big.bin", content);
    origin.rateFor.set("/big.bin", 2 * MiB); // per connection: one stream would take 4 s
    const url = origin.url("/big.bin");
    const t0 = Date.now();
    const r = await ensure(url);
    const secs = (Date.now() - t0) / 1000;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toContain(`sha256=${sha256}`);
    expect(stored(url).equals(content)).toBe(true);
    const asked = origin.requests.filter((q) => q.path === "/big.bin");
    expect(asked).toHaveLength(7); // the first GET (its range is minFileSize) and 6 parts
    expect(asked[0]!.headers.range).toBe(FIRST);
    for (const q of asked.slice(1)) expect(q.headers["if-range"]).toBe(etag);
    expect(new Set(asked.slice(1).map((q) => q.headers.range))).toEqual(new Set(Array.from({ length: 6 }, (_, i) => `bytes=${(i + 2) * MiB}-${(i + 3) * MiB - 1}`)));
    expect(origin.stats.maxActive).toBe(4);
    expect(secs).toBeLessThan(3.5); // 4 connections at 2 MiB/s: ~1 s of data per connection pair; generous for a loaded machine
  });

  it("keeps to cache.parts.maxConnections across fills", async () => {
    policy = policyOf(POLICY.replace("maxConnections: 32", "maxConnections: 2"));
    const a = pseudoRandom(4 * MiB, 102);
    const b = pseudoRandom(4 * MiB, 103);
    origin.put("/cap-a.bin", a);
    origin.put("/cap-b.bin", b);
    origin.rateFor.set("/cap-a.bin", 4 * MiB);
    origin.rateFor.set("/cap-b.bin", 4 * MiB);
    const [ra, rb] = await Promise.all([ensure(origin.url("/cap-a.bin")), ensure(origin.url("/cap-b.bin"))]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    expect(stored(origin.url("/cap-a.bin")).equals(a)).toBe(true);
    expect(stored(origin.url("/cap-b.bin")).equals(b)).toBe(true);
    expect(origin.stats.maxActive).toBe(2);
  });

  it("reads an origin without range support (200 to bytes=0-) as one stream", async () => {
    origin.ranges = false;
    const content = pseudoRandom(5 * MiB, 104);
    origin.put("/noranges.bin", content);
    const url = origin.url("/noranges.bin");
    expect((await ensure(url)).status).toBe(200);
    expect(stored(url).equals(content)).toBe(true);
    expect(origin.gets("/noranges.bin")).toBe(1);
  });

  it("reads a file under minFileSize in one request", async () => {
    const content = pseudoRandom(2 * MiB - 5, 105);
    origin.put("/small.bin", content);
    const url = origin.url("/small.bin");
    expect((await ensure(url)).status).toBe(200);
    expect(stored(url).equals(content)).toBe(true);
    expect(rangesAsked("/small.bin")).toEqual([FIRST]);
  });

  it("falls back to one plain stream when no validator binds the ranges to one version", async () => {
    origin.noValidators = true;
    const content = pseudoRandom(4 * MiB, 106);
    origin.put("/novalidator.bin", content);
    const url = origin.url("/novalidator.bin");
    expect((await ensure(url)).status).toBe(200);
    expect(stored(url).equals(content)).toBe(true);
    expect(rangesAsked("/novalidator.bin")).toEqual([FIRST, undefined]);
  });
});

describe("failures", () => {
  it("retries a failing part on its own, from the byte it reached", async () => {
    const content = pseudoRandom(6 * MiB, 107);
    origin.put("/flaky.bin", content);
    origin.cue("/flaky.bin", { status: 503, rangeStart: 2 * MiB });
    origin.cue("/flaky.bin", { resetAfter: 300_000, rangeStart: 4 * MiB });
    const url = origin.url("/flaky.bin");
    const sentBefore = origin.stats.bytesSent;
    expect((await ensure(url)).status).toBe(200);
    expect(stored(url).equals(content)).toBe(true);
    const asked = rangesAsked("/flaky.bin");
    expect(asked.filter((r) => r === `bytes=${2 * MiB}-${3 * MiB - 1}`)).toHaveLength(2);
    // The retry of the cut part asks only for what did not arrive (an RST may drop a little of what was sent).
    const resumedAt = asked.map((r) => /^bytes=(\d+)-/.exec(r ?? "")?.[1]).map(Number).find((s) => s > 4 * MiB && s < 5 * MiB);
    expect(resumedAt).toBeGreaterThan(4 * MiB + 100_000);
    expect(asked.filter((r) => r === FIRST)).toHaveLength(1); // the fill itself did not start over
    expect(origin.stats.bytesSent - sentBefore).toBeLessThan(content.length + 2 * 256 * 1024); // only socket slack twice over
  });

  it("starts over when the object changes mid-fill: the bytes stored are the new version's, never a mix", async () => {
    const v1 = pseudoRandom(8 * MiB, 108);
    const v2 = pseudoRandom(8 * MiB, 109);
    origin.put("/changing.bin", v1);
    origin.rateFor.set("/changing.bin", 2 * MiB);
    const url = origin.url("/changing.bin");
    const answer = ensure(url);
    await expect.poll(() => origin.gets("/changing.bin"), { timeout: 10_000 }).toBeGreaterThanOrEqual(4);
    const { sha256 } = origin.put("/changing.bin", v2);
    origin.rateFor.delete("/changing.bin");
    const r = await answer;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toContain(`sha256=${sha256}`);
    expect(stored(url).equals(v2)).toBe(true);
    const o = await fetchRaw(cache.url + objectPath(cacheKey(url), url));
    expect(sha256Hex(o.body)).toBe(sha256);
  });

  it("fails the fill with a clear error when a part keeps failing, and leaves no temp file", async () => {
    const content = pseudoRandom(4 * MiB, 110);
    origin.put("/broken.bin", content);
    origin.cue("/broken.bin", { status: 500, rangeStart: 3 * MiB, times: 10 });
    const url = origin.url("/broken.bin");
    const r = await ensure(url);
    expect(r.status).toBe(502);
    expect(r.body.toString()).toMatch(/origin answered 500/);
    expect(existsSync(join(root, "objects", cacheKey(url), "data"))).toBe(false);
    expect(readdirSync(join(root, "tmp")).filter((f) => f.startsWith(cacheKey(url)))).toEqual([]);
    expect(rangesAsked("/broken.bin").filter((x) => x === `bytes=${3 * MiB}-${4 * MiB - 1}`).length).toBeGreaterThanOrEqual(3);
  });
});

describe("reading while filling", () => {
  /** GET /v1/objects, noting whether the fill had published when the first body bytes came. */
  const download = (url: string, sha256?: string) =>
    new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer; complete: boolean; publishedAtFirstByte: boolean | undefined }>((resolve, reject) => {
      const data = join(root, "objects", cacheKey(url), "data");
      const req = request(cache.url + objectPath(cacheKey(url), url, sha256), (res) => {
        const chunks: Buffer[] = [];
        let publishedAtFirstByte: boolean | undefined;
        res.on("data", (c: Buffer) => {
          publishedAtFirstByte ??= existsSync(data);
          chunks.push(c);
        });
        const done = (complete: boolean) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete, publishedAtFirstByte });
        res.on("end", () => done(res.complete));
        res.on("error", () => done(false));
      });
      req.on("error", reject);
      req.end();
    });

  it("streams the file as its parts land: bytes before the fill ends, in order, never an unwritten byte", async () => {
    const content = pseudoRandom(16 * MiB, 111);
    origin.put("/growing.bin", content);
    origin.rateFor.set("/growing.bin", MiB); // 4 connections: ~4 s
    const url = origin.url("/growing.bin");
    const r = await download(url);
    expect(r.status).toBe(200);
    expect(r.complete).toBe(true);
    expect(r.headers["content-length"]).toBe(String(content.length));
    expect(r.headers.etag).toBeUndefined(); // the sha256 is known only at the end
    expect(r.publishedAtFirstByte).toBe(false);
    // Unwritten bytes of the sparse temp file read as zeros: any of them would break equality.
    expect(r.body.equals(content)).toBe(true);
    expect(stored(url).equals(content)).toBe(true);
  });

  it("holds the last byte back until the bytes are verified: a wrong sha256 gets a cut stream, never a complete one", async () => {
    const content = pseudoRandom(6 * MiB, 113);
    origin.put("/pinned.bin", content);
    origin.rateFor.set("/pinned.bin", MiB);
    const url = origin.url("/pinned.bin");
    const r = await download(url, "0".repeat(64));
    expect(r.status).toBe(200);
    expect(r.complete).toBe(false);
    expect(r.body.length).toBe(content.length - 1);
  });

  it("cuts the stream when the fill fails, so the client never sees a complete file", async () => {
    const content = pseudoRandom(8 * MiB, 112);
    origin.put("/dying.bin", content);
    origin.rateFor.set("/dying.bin", MiB);
    origin.cue("/dying.bin", { status: 404, rangeStart: 7 * MiB, times: 10 });
    const url = origin.url("/dying.bin");
    const r = await download(url);
    expect(r.status).toBe(200);
    expect(r.complete).toBe(false);
    expect(r.body.length).toBeGreaterThan(0);
    expect(r.body.length).toBeLessThan(content.length);
    expect(r.body.equals(content.subarray(0, r.body.length))).toBe(true);
    expect(existsSync(join(root, "objects", cacheKey(url), "data"))).toBe(false);
  });
});
