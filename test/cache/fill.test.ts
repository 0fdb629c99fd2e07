// Fills against a real local origin and a real temp root: single flight under
// concurrency, retries of transient errors, and every refusal with nothing stored.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { policyOf } from "./policy-of.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";

const POLICY = `
origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
cache: {idleTimeout: 1s, connectTimeout: 2s, originRetries: 2, maxFileSize: 32Mi, diskBudget: 1Gi}
`;

let origin: Origin;
let cache: RunningCache;
let root: string;

beforeAll(async () => {
  origin = await startOrigin();
  root = mkdtempSync(join(tmpdir(), "cache-fill-"));
  const policy = policyOf(POLICY);
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy, retryBaseMs: 20 });
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  rmSync(root, { recursive: true, force: true });
});

const ensure = (url: string, sha?: string) => fetchRaw(cache.url + ensurePath(cacheKey(url), url, sha));
const object = (url: string) => fetchRaw(cache.url + objectPath(cacheKey(url), url));

/** Nothing of this URL is on disk: no data, no meta, and no temp file left behind. */
function expectNothingStored(url: string): void {
  const dir = join(root, "objects", cacheKey(url));
  expect(existsSync(join(dir, "data"))).toBe(false);
  expect(existsSync(join(dir, "meta.json"))).toBe(false);
  expect(readdirSync(join(root, "tmp")).filter((f) => f.startsWith(cacheKey(url)))).toEqual([]);
}

describe("single flight", () => {
  it("makes one origin GET for 100 concurrent ensure requests of a cold key; all see identical bytes", async () => {
    const content = pseudoRandom(6 * 2 ** 20, 7);
    const { sha256 } = origin.put("/concurrent.bin", content);
    origin.rateFor.set("/concurrent.bin", 3 * 2 ** 20); // ~2 s: long enough for every request to join
    const url = origin.url("/concurrent.bin");
    const answers = await Promise.all(Array.from({ length: 100 }, () => ensure(url)));
    expect(origin.gets("/concurrent.bin")).toBe(1);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.complete).toBe(true);
      expect(a.body.toString()).toMatch(new RegExp(`done concurrent\\.bin ${content.length} bytes .* sha256=${sha256}\\n$`));
    }
    const reads = await Promise.all(Array.from({ length: 10 }, () => object(url)));
    for (const r of reads) expect(sha256Hex(r.body)).toBe(sha256);
    expect(readFileSync(join(root, "objects", cacheKey(url), "data")).equals(content)).toBe(true);
    expect(origin.gets("/concurrent.bin")).toBe(1);
    const metrics = (await fetchRaw(`${cache.url}/metrics`)).body.toString();
    expect(metrics).toMatch(/cache_io_cache_coalesced_waiters_total \d+/);
    expect(Number(/cache_io_cache_coalesced_waiters_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(99);
  });

  it("serves concurrent object reads of a cold key from one origin GET", async () => {
    const content = pseudoRandom(2 * 2 ** 20, 8);
    const { sha256 } = origin.put("/objects-cold.bin", content);
    origin.rateFor.set("/objects-cold.bin", 4 * 2 ** 20);
    const url = origin.url("/objects-cold.bin");
    const reads = await Promise.all(Array.from({ length: 20 }, () => object(url)));
    expect(origin.gets("/objects-cold.bin")).toBe(1);
    for (const r of reads) {
      expect(r.status).toBe(200);
      expect(sha256Hex(r.body)).toBe(sha256);
    }
  });
});

describe("waiters with their own sha256", () => {
  it("lets a waiter with the right sha256 get the file although the fill was started by a request with a wrong one", async () => {
    const content = pseudoRandom(3 * 2 ** 20, 14);
    const { sha256 } = origin.put("/poisoned.bin", content);
    origin.rateFor.set("/poisoned.bin", 2 * 2 ** 20); // ~1.5 s
    const url = origin.url("/poisoned.bin");
    const bogus = ensure(url, "f".repeat(64));
    await sleep(300);
    const victim = await ensure(url, sha256);
    const attacker = await bogus;
    expect(victim.status).toBe(200);
    expect(victim.body.toString()).toMatch(new RegExp(`done poisoned\\.bin ${content.length} bytes .* sha256=${sha256}\\n$`));
    expect(attacker.body.toString()).toContain(`has sha256 ${sha256}, not the ${"f".repeat(64)} that was asked for`);
    expect(attacker.complete).toBe(false); // it had committed to 200 with progress: the stream is cut
    expect(origin.gets("/poisoned.bin")).toBe(1);
    expect(readFileSync(join(root, "objects", cacheKey(url), "data")).equals(content)).toBe(true);
  });
});

describe("retries", () => {
  it("recovers from origin 500s through retries", async () => {
    const { sha256 } = origin.put("/flaky.bin", pseudoRandom(100_000, 2));
    origin.cue("/flaky.bin", { status: 500, times: 2 });
    const r = await ensure(origin.url("/flaky.bin"));
    expect(r.status).toBe(200);
    expect(r.body.toString()).toContain(`sha256=${sha256}`);
    expect(origin.gets("/flaky.bin")).toBe(3);
  });

  it("recovers from a connection reset in the middle of the body", async () => {
    const content = pseudoRandom(500_000, 3);
    const { sha256 } = origin.put("/reset.bin", content);
    origin.cue("/reset.bin", { resetAfter: 100_000 });
    const r = await object(origin.url("/reset.bin"));
    expect(r.status).toBe(200);
    expect(sha256Hex(r.body)).toBe(sha256);
    expect(origin.gets("/reset.bin")).toBe(2);
  });

  it("gives up after originRetries with a 502 that names the origin's answer", async () => {
    origin.put("/down.bin", pseudoRandom(1000, 4));
    origin.cue("/down.bin", { status: 503, times: 10 });
    const url = origin.url("/down.bin");
    const r = await ensure(url);
    expect(r.status).toBe(502);
    expect(r.body.toString()).toContain(`error: origin answered 503 Service Unavailable for ${url}`);
    expect(origin.gets("/down.bin")).toBe(3);
    expectNothingStored(url);
  });

  it("does not retry a 404, and says to check the URL", async () => {
    const url = origin.url("/missing.bin");
    const r = await ensure(url);
    expect(r.status).toBe(502);
    expect(r.body.toString()).toMatch(/origin answered 404 Not Found .*check the URL in cache\.io\/files/);
    expect(origin.gets("/missing.bin")).toBe(1);
    expectNothingStored(url);
  });
});

describe("refusals: clear message, nothing stored", () => {
  it("refuses content whose sha256 is not the one asked for", async () => {
    origin.put("/wrong-sha.bin", pseudoRandom(10_000, 5));
    const url = origin.url("/wrong-sha.bin");
    const r = await ensure(url, "0".repeat(64));
    expect(r.status).toBe(502);
    expect(r.body.toString()).toMatch(/has sha256 [0-9a-f]{64}, not the 0{64} that was asked for; nothing was stored/);
    expectNothingStored(url);
  });

  it("refuses wrong bytes of the right length", async () => {
    const { sha256 } = origin.put("/corrupt.bin", pseudoRandom(10_000, 6));
    origin.cue("/corrupt.bin", { corrupt: true, times: 5 });
    const url = origin.url("/corrupt.bin");
    const r = await ensure(url, sha256);
    expect(r.status).toBe(502);
    expect(r.body.toString()).toContain(`not the ${sha256} that was asked for`);
    expectNothingStored(url);
  });

  it("refuses a truncated body (Content-Length longer than what came)", async () => {
    origin.put("/short.bin", pseudoRandom(200_000, 9));
    origin.cue("/short.bin", { truncateAfter: 50_000, times: 5 });
    const url = origin.url("/short.bin");
    const r = await ensure(url);
    expect(r.status).toBe(502);
    expect(r.body.toString()).toMatch(/origin closed the connection after \d+ of 200000 bytes/);
    expectNothingStored(url);
  });

  it("times out an origin that sends no headers (idleTimeout): 504, or a cut stream once ensure committed to 200", async () => {
    origin.put("/slow-headers.bin", pseudoRandom(1000, 10));
    origin.cue("/slow-headers.bin", { stallMs: 5000, times: 6 });
    const url = origin.url("/slow-headers.bin");
    const viaObjects = await object(url);
    expect(viaObjects.status).toBe(504);
    expect(viaObjects.body.toString()).toMatch(/sent nothing for 1000 ms \(cache\.idleTimeout\)/);
    // Three attempts take longer than ensure's grace period: it has answered 200 and
    // shown progress, so the failure can only cut the stream (curl then fails and retries).
    const viaEnsure = await ensure(url);
    expect(viaEnsure.status).toBe(200);
    expect(viaEnsure.complete).toBe(false);
    expect(viaEnsure.body.toString()).toMatch(/^fetching slow-headers\.bin from 127\.0\.0\.1:\d+ \(waiters=1\)\n(.*\n)*error: origin 127\.0\.0\.1:\d+ sent nothing for 1000 ms/);
    expectNothingStored(url);
  }, 20_000);

  it("times out an origin that stalls in the middle of the body", async () => {
    origin.put("/stall-body.bin", pseudoRandom(300_000, 11));
    origin.cue("/stall-body.bin", { stallAfter: 100_000, stallMs: 10_000, times: 5 });
    const url = origin.url("/stall-body.bin");
    // ensure: 504 within its first second, else a 200 whose stream ends with the error and is cut.
    const r = await ensure(url);
    expect(r.status === 504 || (r.status === 200 && !r.complete)).toBe(true);
    expect(r.body.toString()).toContain("cache.idleTimeout");
    expectNothingStored(url);
  }, 20_000);

  it("follows an allowed redirect and refuses one to a host outside the allow-list", async () => {
    const { sha256 } = origin.put("/target.bin", pseudoRandom(5000, 12));
    origin.redirect("/moved.bin", "/target.bin");
    const ok = await ensure(origin.url("/moved.bin"));
    expect(ok.status).toBe(200);
    expect(ok.body.toString()).toContain(`sha256=${sha256}`);
    origin.redirect("/escape.bin", "http://169.254.169.254/latest/meta-data/");
    const url = origin.url("/escape.bin");
    const r = await ensure(url);
    expect(r.status).toBe(403);
    expect(r.body.toString()).toContain('error: redirect to http://169.254.169.254/latest/meta-data/ refused: host "169.254.169.254" is not in the policy');
    expectNothingStored(url);
  });

  it("refuses a file over maxFileSize with 413", async () => {
    origin.put("/huge.bin", Buffer.alloc(33 * 2 ** 20));
    const url = origin.url("/huge.bin");
    const r = await ensure(url);
    expect(r.status).toBe(413);
    expect(r.body.toString()).toContain("cache.maxFileSize");
    expectNothingStored(url);
  });

  it("refuses bad keys and parameters with 400 before touching the origin", async () => {
    const url = origin.url("/target.bin");
    const gets = origin.stats.gets;
    const cases: [string, RegExp][] = [
      [`/v1/ensure/..?url=${encodeURIComponent(url)}`, /"\.\." is not a cache key/],
      [`/v1/objects/../../etc/passwd?url=${encodeURIComponent(url)}`, /"\.\.\/\.\.\/etc\/passwd" is not a cache key/],
      [`/v1/ensure/${"a".repeat(64)}?url=${encodeURIComponent(url)}`, /does not match url .* whose key is [0-9a-f]{64}/],
      [`/v1/ensure/${cacheKey(url)}`, /url= query parameter is missing/],
      [`/v1/ensure/${cacheKey(url)}?url=${encodeURIComponent(url)}&sha256=XYZ`, /sha256 "XYZ" must be 64 lowercase hex digits/],
      [`/v1/ensure/${cacheKey(url)}?url=${encodeURIComponent(url)}&evil=1`, /unknown query parameter "evil"/],
    ];
    for (const [path, message] of cases) {
      const r = await fetchRaw(cache.url + path);
      expect(r.status, path).toBe(400);
      expect(r.body.toString(), path).toMatch(message);
    }
    expect(origin.stats.gets).toBe(gets);
  });

  it("refuses an origin outside the allow-list with 403", async () => {
    const url = "http://files.example.org/model.bin";
    const r = await ensure(url);
    expect(r.status).toBe(403);
    expect(r.body.toString()).toContain('host "files.example.org" is not in the policy\'s origin allow-list');
    expectNothingStored(url);
  });
});

describe("resolved addresses", () => {
  let strict: RunningCache;
  let strictRoot: string;
  const resolveTo: Record<string, string> = {
    "loopback.example.test": "127.0.0.1",
    "metadata.example.test": "169.254.169.254",
    "inside.example.test": "127.0.0.1",
  };
  /** Names with several addresses: the first one allowed (127.0.0.2, by CIDR), a later one forbidden. */
  const several: Record<string, string[]> = { "mixed.example.test": ["127.0.0.2", "169.254.169.254"] };

  beforeAll(async () => {
    strictRoot = mkdtempSync(join(tmpdir(), "cache-strict-"));
    // The names are allowed; the loopback and link-local addresses they resolve to are not
    // (except inside.example.test, which allowPrivate names: the control case).
    const policy = policyOf(`origins: {allow: ["*.example.test"], allowPrivate: ["inside.example.test", "127.0.0.2/32"]}\ncache: {originRetries: 0, fillTimeout: 1500ms}`);
    const resolve = async (host: string) => (several[host] ?? [resolveTo[host] ?? "192.0.2.1"]).map((address) => ({ address, family: 4 }));
    strict = await startCache({ root: strictRoot, host: "127.0.0.1", port: 0, policy: () => policy, resolve });
  });

  afterAll(async () => {
    await strict?.close(100);
    rmSync(strictRoot, { recursive: true, force: true });
  });

  it.each([
    ["loopback.example.test", "127.0.0.1", "loopback"],
    ["metadata.example.test", "169.254.169.254", "linkLocal"],
  ])("refuses %s, which resolves to %s", async (host, address, range) => {
    const gets = origin.stats.gets;
    const url = `http://${host}:${origin.port}/target.bin`;
    const r = await fetchRaw(strict.url + ensurePath(cacheKey(url), url));
    expect(r.status).toBe(403);
    expect(r.body.toString()).toContain(`origin host "${host}" resolves to ${address}: address ${address} is ${range}`);
    expect(origin.stats.gets).toBe(gets);
    expect(existsSync(join(strictRoot, "objects", cacheKey(url), "data"))).toBe(false);
  });

  it("refuses a name that resolves to several addresses when any one of them is forbidden", async () => {
    const gets = origin.stats.gets;
    const url = `http://mixed.example.test:${origin.port}/target.bin`;
    const r = await fetchRaw(strict.url + ensurePath(cacheKey(url), url));
    expect(r.status).toBe(403);
    expect(r.body.toString()).toContain('origin host "mixed.example.test" resolves to 169.254.169.254: address 169.254.169.254 is linkLocal');
    expect(origin.stats.gets).toBe(gets);
  });

  it("bounds every wait by fillTimeout (504)", async () => {
    origin.put("/crawl.bin", pseudoRandom(2 ** 20, 13));
    origin.rateFor.set("/crawl.bin", 100_000);
    const url = `http://inside.example.test:${origin.port}/crawl.bin`;
    const r = await fetchRaw(strict.url + ensurePath(cacheKey(url), url));
    expect(r.status === 504 || (r.status === 200 && !r.complete)).toBe(true);
    expect(r.body.toString()).toContain(`fetching ${url} did not finish within 1500 ms (cache.fillTimeout)`);
    expect(existsSync(join(strictRoot, "objects", cacheKey(url), "data"))).toBe(false);
  });

  it("connects to the resolved address when allowPrivate names the host", async () => {
    const url = `http://inside.example.test:${origin.port}/target.bin`;
    const r = await fetchRaw(strict.url + objectPath(cacheKey(url), url));
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(5000);
  });
});
