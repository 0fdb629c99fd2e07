// What is on disk is what was verified: a pod that writes into a cached file (a mount
// that should have been read-only) never gets its bytes served, also not to requests
// pinned with sha256; a touched but unchanged file is kept; old metas without change
// times are verified once. Publishing fsyncs the temp file before renaming it.
import { closeSync, openSync, readFileSync, rmSync, mkdtempSync, utimesSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { Store } from "../../src/cache/store.js";
import { policyOf } from "./policy-of.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";

const policy = policyOf(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}`);
let origin: Origin;
let root: string;
let cache: RunningCache;

beforeAll(async () => {
  origin = await startOrigin();
  root = mkdtempSync(join(tmpdir(), "cache-integrity-"));
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy });
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  rmSync(root, { recursive: true, force: true });
});

const data = (url: string) => join(root, "objects", cacheKey(url), "data");
const meta = (url: string) => JSON.parse(readFileSync(join(root, "objects", cacheKey(url), "meta.json"), "utf8")) as Record<string, unknown>;

/** What a pod with a read-write mount of the object directory can do: overwrite bytes in place. */
function writeInto(path: string, at: number, bytes: string): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, bytes, at);
  } finally {
    closeSync(fd);
  }
}

describe("bytes written into a cached file", () => {
  it("are never served: a pinned request and ensure get the verified bytes again from the origin", async () => {
    const content = pseudoRandom(2 * 2 ** 20, 71);
    const { sha256 } = origin.put("/tampered.bin", content);
    const url = origin.url("/tampered.bin");
    expect((await fetchRaw(cache.url + objectPath(cacheKey(url), url))).status).toBe(200);
    writeInto(data(url), 1000, "EVIL");

    const pinned = await fetchRaw(cache.url + objectPath(cacheKey(url), url, sha256));
    expect(pinned.status).toBe(200);
    expect(sha256Hex(pinned.body)).toBe(sha256);
    expect(origin.gets("/tampered.bin")).toBe(2);
    expect(sha256Hex(readFileSync(data(url)))).toBe(sha256);

    writeInto(data(url), 0, "X");
    const ensured = await fetchRaw(cache.url + ensurePath(cacheKey(url), url));
    expect(ensured.status).toBe(200);
    expect(ensured.body.toString()).toContain(`sha256=${sha256}`);
    expect(origin.gets("/tampered.bin")).toBe(3);
    expect(readFileSync(data(url)).equals(content)).toBe(true);
  });

  it("keeps a file whose times changed but whose bytes did not, without asking the origin", async () => {
    const { sha256 } = origin.put("/touched.bin", pseudoRandom(100_000, 72));
    const url = origin.url("/touched.bin");
    expect((await fetchRaw(cache.url + objectPath(cacheKey(url), url))).status).toBe(200);
    const before = meta(url);
    utimesSync(data(url), new Date(), new Date(Date.now() - 60_000));
    const again = await fetchRaw(cache.url + objectPath(cacheKey(url), url));
    expect(sha256Hex(again.body)).toBe(sha256);
    expect(origin.gets("/touched.bin")).toBe(1);
    expect(meta(url).mtimeNs).not.toBe(before.mtimeNs);
    expect(meta(url).ino).toBe(before.ino);
  });

  it("verifies once an entry whose meta has no change times (written by an older version), then records them", async () => {
    const { sha256 } = origin.put("/legacy.bin", pseudoRandom(100_000, 73));
    const url = origin.url("/legacy.bin");
    expect((await fetchRaw(cache.url + objectPath(cacheKey(url), url))).status).toBe(200);
    const { ctimeNs: _c, mtimeNs: _m, ...old } = meta(url);
    writeFileSync(join(root, "objects", cacheKey(url), "meta.json"), JSON.stringify(old));
    writeInto(data(url), 5, "tampered before the upgrade");
    const second = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy });
    try {
      const r2 = await fetchRaw(second.url + objectPath(cacheKey(url), url));
      expect(sha256Hex(r2.body)).toBe(sha256);
      expect(origin.gets("/legacy.bin")).toBe(2);
      expect(typeof meta(url).ctimeNs).toBe("string");
    } finally {
      await second.close(100);
    }
  });
});

describe("publishing", () => {
  it("fsyncs the temp file before renaming it over data", async () => {
    const calls: string[] = [];
    const realSync = Store.prototype.sync;
    const realMove = Store.prototype.move;
    const s1 = vi.spyOn(Store.prototype, "sync").mockImplementation(function (this: Store, path: string) {
      calls.push(`sync ${path}`);
      return realSync.call(this, path);
    });
    const s2 = vi.spyOn(Store.prototype, "move").mockImplementation(function (this: Store, from: string, to: string) {
      calls.push(`move ${from} ${to}`);
      return realMove.call(this, from, to);
    });
    try {
      origin.put("/synced.bin", pseudoRandom(50_000, 74));
      const url = origin.url("/synced.bin");
      expect((await fetchRaw(cache.url + objectPath(cacheKey(url), url))).status).toBe(200);
      const moveAt = calls.findIndex((c) => c.startsWith("move ") && c.endsWith(data(url)));
      expect(moveAt).toBeGreaterThan(0);
      const temp = calls[moveAt]!.split(" ")[1]!;
      expect(calls.slice(0, moveAt)).toContain(`sync ${temp}`);
      expect(calls.slice(moveAt)).toContain(`sync ${join(root, "objects", cacheKey(url))}`);
    } finally {
      s1.mockRestore();
      s2.mockRestore();
    }
  });
});
