// Crash safety and the startup scan: a cache process killed with SIGKILL in the middle
// of a fill never serves the partial file; after a restart a single-stream fill starts
// over and a ranged fill fetches only the parts it had not synced; stale and orphaned
// entries (and stale resume state) are cleaned at start.
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache } from "../../src/cache/index.js";
import { parsePolicy } from "../../src/policy/load.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";
import { killAll, spawnCache as spawnCacheProcess, type CacheProcess } from "./spawn-cache.js";

const POLICY_YAML = `identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\n`;
const PARTS_YAML = `${POLICY_YAML}cache: {parts: {size: 1Mi, concurrency: 2, minFileSize: 2Mi}}\n`;
const MiB = 2 ** 20;
let origin: Origin;
let dir: string;

beforeAll(async () => {
  origin = await startOrigin();
  dir = mkdtempSync(join(tmpdir(), "cache-crash-"));
  writeFileSync(join(dir, "policy.yaml"), POLICY_YAML);
  writeFileSync(join(dir, "parts.yaml"), PARTS_YAML);
});

afterAll(async () => {
  await killAll(); // also when a test failed before it stopped its process
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

function spawnCache(root: string, policy = "policy.yaml"): Promise<CacheProcess> {
  return spawnCacheProcess(["--root", root, "--policy", join(dir, policy)]);
}

/** Parts saved as synced in a ranged fill's resume state. */
function savedParts(root: string, key: string): number[] {
  try {
    return (JSON.parse(readFileSync(join(root, "tmp", `${key}.ranged.json`), "utf8")) as { done: number[] }).done;
  } catch {
    return [];
  }
}

describe("kill -9 in the middle of a fill", () => {
  it("never serves the partial file; after a restart the temp file is gone and the next request completes", async () => {
    const content = pseudoRandom(6 * 2 ** 20, 41);
    const { sha256 } = origin.put("/crash.bin", content);
    origin.rateFor.set("/crash.bin", 2 ** 20);
    const url = origin.url("/crash.bin");
    const key = cacheKey(url);
    const root = join(dir, "root");
    const first = await spawnCache(root);

    const waiting = fetchRaw(first.url + objectPath(key, url)).then((r) => r, (e: Error) => e);
    await expect.poll(() => origin.stats.bytesSent, { timeout: 10_000 }).toBeGreaterThan(2 ** 20);
    const temps = readdirSync(join(root, "tmp")).filter((f) => f.startsWith(key));
    expect(temps).toHaveLength(1);
    expect(existsSync(join(root, "objects", key, "data"))).toBe(false);

    const firstExit = once(first.proc, "exit");
    first.proc.kill("SIGKILL");
    await firstExit;
    const answer = await waiting;
    expect(answer instanceof Error || !answer.complete || answer.status !== 200).toBe(true);
    const partial = statSync(join(root, "tmp", temps[0]!)).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(content.length);
    expect(existsSync(join(root, "objects", key, "data"))).toBe(false);

    origin.rateFor.delete("/crash.bin");
    const second = await spawnCache(root);
    try {
      expect(readdirSync(join(root, "tmp"))).toEqual([]);
      expect(existsSync(join(root, "objects", key, "data"))).toBe(false);
      const r = await fetchRaw(second.url + objectPath(key, url));
      expect(r.status).toBe(200);
      expect(sha256Hex(r.body)).toBe(sha256);
      expect(origin.gets("/crash.bin")).toBe(2);
    } finally {
      second.proc.kill("SIGTERM");
    }
    const [code] = (await once(second.proc, "exit")) as [number];
    expect(code).toBe(0); // graceful shutdown on SIGTERM
  });
});

describe("kill -9 in the middle of a ranged fill", () => {
  it("resumes after a restart: only the parts not synced are fetched again, and the file is exact", async () => {
    origin.ranges = true;
    const content = pseudoRandom(12 * MiB, 43);
    const { sha256 } = origin.put("/resume.bin", content);
    origin.rateFor.set("/resume.bin", MiB); // per connection; 2 at once: ~6 s in all
    const url = origin.url("/resume.bin");
    const key = cacheKey(url);
    const root = join(dir, "resume");
    try {
      const first = await spawnCache(root, "parts.yaml");
      const waiting = fetchRaw(first.url + ensurePath(key, url)).then((r) => r, (e: Error) => e);
      await expect.poll(() => savedParts(root, key).length, { timeout: 20_000 }).toBeGreaterThanOrEqual(3);
      const exited = once(first.proc, "exit");
      first.proc.kill("SIGKILL");
      await exited;
      const answer = await waiting;
      expect(answer instanceof Error || !answer.complete || answer.status !== 200).toBe(true);
      expect(existsSync(join(root, "objects", key, "data"))).toBe(false);
      const done = savedParts(root, key);
      // Part 0 is minFileSize (2 MiB), the others 1 MiB each.
      const doneBytes = done.reduce((n, i) => n + (i === 0 ? 2 * MiB : MiB), 0);

      origin.rateFor.delete("/resume.bin");
      const sentBefore = origin.stats.bytesSent;
      const getsBefore = origin.gets("/resume.bin");
      const second = await spawnCache(root, "parts.yaml");
      try {
        expect(readdirSync(join(root, "tmp")).sort()).toEqual([`${key}.ranged`, `${key}.ranged.json`]);
        const r = await fetchRaw(second.url + objectPath(key, url));
        expect(r.status).toBe(200);
        expect(sha256Hex(r.body)).toBe(sha256);
        expect(readFileSync(join(root, "objects", key, "data")).equals(content)).toBe(true);
        expect(origin.stats.bytesSent - sentBefore).toBe(content.length - doneBytes);
        expect(origin.gets("/resume.bin") - getsBefore).toBe(11 - done.length); // 11 parts in all
        expect(readdirSync(join(root, "tmp"))).toEqual([]);
      } finally {
        second.proc.kill("SIGTERM");
        await once(second.proc, "exit");
      }
    } finally {
      origin.ranges = false;
    }
  }, 60_000);
});

describe("startup scan", () => {
  it("keeps complete files and young empty key directories; removes temp files, orphans and incomplete entries", async () => {
    const root = join(dir, "scan");
    const policy = (() => {
      const r = parsePolicy(POLICY_YAML);
      if (!r.ok) throw new Error(r.errors.join());
      return r.policy;
    })();
    const { sha256 } = origin.put("/keep.bin", pseudoRandom(100_000, 42));
    const keepUrl = origin.url("/keep.bin");
    const before = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy });
    expect((await fetchRaw(before.url + objectPath(cacheKey(keepUrl), keepUrl))).status).toBe(200);
    await before.close(100);

    const objects = join(root, "objects");
    const k = (n: number) => cacheKey(`http://example.test/${n}`);
    mkdirSync(join(objects, "not-a-key"));
    writeFileSync(join(objects, "not-a-key", "data"), "x");
    symlinkSync("/etc", join(objects, k(5)));
    mkdirSync(join(objects, k(1))); // young and empty: the kubelet may have just made it
    mkdirSync(join(objects, k(2))); // empty for an hour: orphaned
    utimesSync(join(objects, k(2)), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    mkdirSync(join(objects, k(3)));
    writeFileSync(join(objects, k(3), "data"), "bytes without meta");
    mkdirSync(join(objects, k(4)));
    writeFileSync(join(objects, k(4), "data"), "other bytes");
    writeFileSync(join(objects, k(4), "meta.json"), JSON.stringify({ key: k(4), url: "http://example.test/4", size: 11, sha256: "0".repeat(64), ino: "1", fetchedAt: "", validatedAt: "" }));
    mkdirSync(join(objects, k(7)));
    writeFileSync(join(objects, k(7), "data"), "old bytes without meta");
    utimesSync(join(objects, k(7)), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    writeFileSync(join(root, "tmp", `${k(6)}.abc.part`), "partial");
    const state = (n: number) => JSON.stringify({ v: 1, key: k(n), url: `http://example.test/${n}`, size: 4, etag: '"e"', partSize: 2, minFileSize: 2, done: [0] });
    writeFileSync(join(root, "tmp", `${k(8)}.ranged`), "abcd"); // resumable, young: kept
    writeFileSync(join(root, "tmp", `${k(8)}.ranged.json`), state(8));
    writeFileSync(join(root, "tmp", `${k(9)}.ranged`), "abcd"); // resumable but two days old: removed
    writeFileSync(join(root, "tmp", `${k(9)}.ranged.json`), state(9));
    utimesSync(join(root, "tmp", `${k(9)}.ranged.json`), new Date(Date.now() - 2 * 86_400_000), new Date(Date.now() - 2 * 86_400_000));
    writeFileSync(join(root, "tmp", `${k(10)}.ranged`), "abcd"); // no state: removed
    writeFileSync(join(root, "tmp", `${k(11)}.ranged.json`), state(11)); // no data: removed

    const gets = origin.gets("/keep.bin");
    const after = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy });
    try {
      expect(readdirSync(join(root, "tmp")).sort()).toEqual([`${k(8)}.ranged`, `${k(8)}.ranged.json`]);
      // Incomplete entries lose their files; their directory stays only while young (a pod may be starting).
      expect(readdirSync(objects).sort()).toEqual([cacheKey(keepUrl), k(1), k(3), k(4)].sort());
      expect(readdirSync(join(objects, k(3)))).toEqual([]);
      expect(readdirSync(join(objects, k(4)))).toEqual([]);
      expect(existsSync("/etc/passwd")).toBe(true); // the symlink went, not its target
      expect((await fetchRaw(`${after.url}/readyz`)).status).toBe(200);
      const r = await fetchRaw(after.url + objectPath(cacheKey(keepUrl), keepUrl));
      expect(sha256Hex(r.body)).toBe(sha256);
      expect(origin.gets("/keep.bin")).toBe(gets);
    } finally {
      await after.close(100);
    }
  });
});
