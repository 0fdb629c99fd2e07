// The HTTP surface of the node cache: object bytes with ETag, Last-Modified, Range,
// HEAD and 304s; ensure on a warm key; health, readiness, metrics; bad methods and paths.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { parsePolicy } from "../../src/policy/load.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";

let origin: Origin;
let cache: RunningCache;
let root: string;
const content = pseudoRandom(3 * 2 ** 20 + 17, 21);
let sha256 = "";
let url = "";

beforeAll(async () => {
  origin = await startOrigin();
  root = mkdtempSync(join(tmpdir(), "cache-http-"));
  const r = parsePolicy(`identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}`);
  if (!r.ok) throw new Error(r.errors.join());
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => r.policy });
  sha256 = origin.put("/files/model%20v1.bin", content).sha256;
  url = origin.url("/files/model%20v1.bin");
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  rmSync(root, { recursive: true, force: true });
});

const get = (headers: Record<string, string> = {}, method = "GET") => fetchRaw(cache.url + objectPath(cacheKey(url), url), { method, headers });

describe("GET and HEAD /v1/objects", () => {
  it("serves the bytes with a strong ETag from the content's sha256 and the origin's Last-Modified", async () => {
    const r = await get();
    expect(r.status).toBe(200);
    expect(r.body.equals(content)).toBe(true);
    const atOrigin = await fetchRaw(url, { method: "HEAD" });
    expect(r.headers).toMatchObject({
      etag: `"${sha256}"`,
      "content-length": String(content.length),
      "accept-ranges": "bytes",
      "content-type": "application/octet-stream",
      "last-modified": atOrigin.headers["last-modified"],
    });
  });

  it("answers HEAD with the same headers and no body", async () => {
    const r = await get({}, "HEAD");
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(0);
    expect(r.headers["content-length"]).toBe(String(content.length));
    expect(r.headers.etag).toBe(`"${sha256}"`);
  });

  it.each([
    ["bytes=10-19", 10, 19],
    ["bytes=-5", content.length - 5, content.length - 1],
    [`bytes=${content.length - 3}-`, content.length - 3, content.length - 1],
    [`bytes=100-${content.length + 1000}`, 100, content.length - 1],
  ])("serves the single range %s with 206", async (range, start, end) => {
    const r = await get({ range });
    expect(r.status).toBe(206);
    expect(r.headers["content-range"]).toBe(`bytes ${start}-${end}/${content.length}`);
    expect(r.body.equals(content.subarray(start, end + 1))).toBe(true);
  });

  it("answers an unsatisfiable range with 416 and the size", async () => {
    const r = await get({ range: `bytes=${content.length}-` });
    expect(r.status).toBe(416);
    expect(r.headers["content-range"]).toBe(`bytes */${content.length}`);
  });

  it("sends the whole file (200) for a range whose end is before its start (bytes=20-10)", async () => {
    const r = await get({ range: "bytes=20-10" });
    expect(r.status).toBe(200);
    expect(r.headers["content-range"]).toBeUndefined();
    expect(r.body.equals(content)).toBe(true);
  });

  it("sends the whole file for several ranges, or an If-Range that no longer matches", async () => {
    expect((await get({ range: "bytes=0-1,5-6" })).status).toBe(200);
    const r = await get({ range: "bytes=0-1", "if-range": '"other"' });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(content.length);
    expect((await get({ range: "bytes=0-1", "if-range": `"${sha256}"` })).status).toBe(206);
  });

  it("answers If-None-Match and If-Modified-Since with 304", async () => {
    expect((await get({ "if-none-match": `"${sha256}"` })).status).toBe(304);
    expect((await get({ "if-none-match": `"nope", W/"${sha256}"` })).status).toBe(304);
    expect((await get({ "if-none-match": '"nope"' })).status).toBe(200);
    const lastModified = (await get({}, "HEAD")).headers["last-modified"]!;
    expect((await get({ "if-modified-since": lastModified })).status).toBe(304);
    expect((await get({ "if-modified-since": new Date(Date.parse(lastModified) - 5000).toUTCString() })).status).toBe(200);
  });
});

describe("ensure on a warm key", () => {
  it("answers at once with one line naming the file, its size and sha256", async () => {
    const r = await fetchRaw(cache.url + ensurePath(cacheKey(url), url, sha256));
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe(`cached model v1.bin ${content.length} bytes sha256=${sha256}\n`);
    expect(origin.gets("/files/model%20v1.bin")).toBe(1);
  });
});

describe("service endpoints", () => {
  it("reports health and readiness", async () => {
    expect((await fetchRaw(`${cache.url}/healthz`)).status).toBe(200);
    const ready = await fetchRaw(`${cache.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body.toString()).toBe("ready\n");
  });

  it("exposes every cache metric and the process metrics in Prometheus text", async () => {
    const r = await fetchRaw(`${cache.url}/metrics`);
    expect(r.headers["content-type"]).toContain("text/plain");
    const text = r.body.toString();
    for (const name of [
      "cache_io_cache_hits_total", "cache_io_cache_misses_total", "cache_io_cache_coalesced_waiters_total",
      "cache_io_cache_origin_bytes_total", "cache_io_cache_served_bytes_total", "cache_io_cache_evictions_total",
      "cache_io_cache_fill_errors_total", "cache_io_cache_fills_in_progress", "cache_io_cache_disk_used_bytes",
      "cache_io_cache_disk_budget_bytes", "cache_io_cache_origin_requests_total", "process_resident_memory_bytes",
      "cache_io_cache_fill_duration_seconds", "cache_io_cache_stale_served_total", "cache_io_cache_downloads_refused_total",
      "cache_io_cache_ensured_bytes_total", "cache_io_build_info", "cache_io_policy_valid", "cache_io_policy_reloads_total",
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toContain(`cache_io_cache_disk_used_bytes ${content.length}`);
    expect(text).toContain(`cache_io_cache_origin_bytes_total ${content.length}`);
    expect(text).toMatch(/cache_io_cache_origin_requests_total\{result="ok"\} 1/);
    expect(Number(/cache_io_cache_served_bytes_total (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(content.length * 2);
    expect(text).toMatch(/^cache_io_build_info\{version="\d+\.\d+\.\d+[^"]*",component="cache"\} 1$/m);
    expect(text).toMatch(/^cache_io_cache_fill_duration_seconds_count\{result="ok"\} 1$/m);
    expect(Number(/^cache_io_cache_ensured_bytes_total (\d+)$/m.exec(text)?.[1])).toBe(content.length); // the one ensure above
    // promtool rejects gauges named like counters (prom-client's nodejs_active_*_total defaults).
    const gaugesNamedTotal = [...text.matchAll(/^# TYPE (\S+) gauge$/gm)].map((m) => m[1]).filter((n) => n!.endsWith("_total"));
    expect(gaugesNamedTotal).toEqual([]);
  });

  it("refuses other methods and unknown paths with a message", async () => {
    const post = await fetchRaw(cache.url + ensurePath(cacheKey(url), url), { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.body.toString()).toContain("use GET");
    const missing = await fetchRaw(`${cache.url}/v2/things`);
    expect(missing.status).toBe(404);
    expect(missing.body.toString()).toContain("endpoints: /v1/ensure/<key>");
  });
});
