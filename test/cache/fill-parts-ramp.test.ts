// Parts of a ranged fill open progressively (src/cache/fills/ramp.ts): two at first,
// doubling each window while every connection is slower than RAMP_BELOW, never past
// cache.parts.concurrency or the parts left; a throttled origin still gets them all.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { initialParts, partsToAdd, RAMP_BELOW, RAMP_START } from "../../src/cache/fills/ramp.js";
import { cacheKey, ensurePath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { policyOf } from "./policy-of.js";

const MiB = 2 ** 20;
/** A window of `ms` in which `open` parts received `perConnection` bytes/s each. */
const window = (open: number, perConnection: number, more: { max?: number; waiting?: number } = {}) => ({
  open, max: more.max ?? 8, waiting: more.waiting ?? 100, bytes: (perConnection * open * 100) / 1000, ms: 100,
});

describe("partsToAdd", () => {
  it("doubles the open parts while each connection is slower than RAMP_BELOW", () => {
    expect(partsToAdd(window(2, 60e6))).toBe(2);
    expect(partsToAdd(window(4, 60e6))).toBe(4);
    expect(partsToAdd(window(2, RAMP_BELOW * 0.99))).toBe(2);
  });

  it("keeps the parts it has when each connection is fast", () => {
    expect(partsToAdd(window(2, 400e6))).toBe(0);
    expect(partsToAdd(window(2, RAMP_BELOW))).toBe(0);
  });

  it("never goes past cache.parts.concurrency or the parts not started yet", () => {
    expect(partsToAdd(window(6, 10e6))).toBe(2);
    expect(partsToAdd(window(8, 10e6))).toBe(0);
    expect(partsToAdd(window(4, 10e6, { waiting: 1 }))).toBe(1);
    expect(partsToAdd(window(2, 10e6, { max: 2 }))).toBe(0);
  });

  it("starts with RAMP_START parts, or all of them when cache.parts.rampBelow is 0", () => {
    expect(initialParts(8)).toBe(RAMP_START);
    expect(initialParts(1)).toBe(1);
    expect(initialParts(8, 0)).toBe(8);
    expect(partsToAdd(window(2, 60e6), 50e6)).toBe(0); // a lower threshold: 60 MB/s per connection is fast enough
  });

  it("adds nothing for an empty window or no open part", () => {
    expect(partsToAdd({ open: 2, max: 8, waiting: 10, bytes: 0, ms: 0 })).toBe(0);
    expect(partsToAdd({ open: 0, max: 8, waiting: 10, bytes: 0, ms: 100 })).toBe(0);
  });
});

const BASE = `origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\n`;
const DEFAULT = policyOf(`${BASE}cache: {idleTimeout: 10s, diskBudget: 1Gi, parts: {size: 1Mi, concurrency: 8, minFileSize: 2Mi, maxConnections: 32}}\n`);

describe("a fill from an origin that limits each connection", () => {
  let policy = DEFAULT;
  let origin: Origin;
  let cache: RunningCache;
  let root: string;

  beforeAll(async () => {
    origin = await startOrigin({ ranges: true });
    root = mkdtempSync(join(tmpdir(), "cache-ramp-"));
    cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy, retryBaseMs: 20 });
  });

  afterAll(async () => {
    await cache?.close(100);
    await origin?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("keeps RAMP_START parts when cache.parts.rampBelow says every connection is fast enough", async () => {
    const content = pseudoRandom(12 * MiB, 302);
    origin.put("/slow-kept.bin", content);
    origin.rateFor.set("/slow-kept.bin", 4 * MiB);
    const url = origin.url("/slow-kept.bin");
    policy = policyOf(`${BASE}cache: {idleTimeout: 10s, diskBudget: 1Gi, parts: {size: 1Mi, concurrency: 8, minFileSize: 2Mi, maxConnections: 32, rampBelow: 1}}\n`);
    origin.stats.maxActive = 0;
    try {
      const r = await fetchRaw(cache.url + ensurePath(cacheKey(url), url));
      expect(r.status).toBe(200);
      expect(readFileSync(join(root, "objects", cacheKey(url), "data")).equals(content)).toBe(true);
      expect(origin.stats.maxActive).toBe(RAMP_START);
    } finally {
      policy = DEFAULT;
    }
  });

  it("opens all 8 parts (cache.parts.concurrency) and stores the exact bytes", async () => {
    const content = pseudoRandom(26 * MiB, 301);
    origin.put("/slow.bin", content);
    origin.rateFor.set("/slow.bin", 4 * MiB); // 4 MiB/s per connection: far below RAMP_BELOW
    const url = origin.url("/slow.bin");
    origin.stats.maxActive = 0;
    const r = await fetchRaw(cache.url + ensurePath(cacheKey(url), url));
    expect(r.status).toBe(200);
    expect(readFileSync(join(root, "objects", cacheKey(url), "data")).equals(content)).toBe(true);
    expect(origin.stats.maxActive).toBe(8);
  });
});
