// Revalidation after the policy's TTL: conditional GETs (ETag / Last-Modified), a
// changed origin yields a new `data` by rename while readers of the old one keep it,
// and an origin that is down during revalidation leaves the cached copy in service.
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { get as httpGet, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { parsePolicy } from "../../src/policy/load.js";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";

const TTL_MS = 300;
const MAX_STALE_MS = 1500;
let origin: Origin;
let cache: RunningCache;
let root: string;
const logLines: string[] = [];

beforeAll(async () => {
  origin = await startOrigin();
  root = mkdtempSync(join(tmpdir(), "cache-reval-"));
  const r = parsePolicy(`identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {revalidateAfter: ${TTL_MS}ms, maxStale: ${MAX_STALE_MS}ms, originRetries: 1}`);
  if (!r.ok) throw new Error(r.errors.join());
  const log = pino({ level: "info" }, { write: (line: string) => void logLines.push(line) });
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => r.policy, retryBaseMs: 10, log });
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  rmSync(root, { recursive: true, force: true });
});

const objectUrl = (path: string) => cache.url + objectPath(cacheKey(origin.url(path)), origin.url(path));
const dataPath = (path: string) => join(root, "objects", cacheKey(origin.url(path)), "data");

/** Start a download and stop reading after the first chunk (the server holds the file open). */
function startSlowRead(url: string): Promise<{ res: IncomingMessage; first: Buffer }> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      res.once("data", (first: Buffer) => {
        res.pause();
        resolve({ res, first });
      });
    }).on("error", reject);
  });
}

async function readRest(res: IncomingMessage, first: Buffer): Promise<Buffer> {
  const chunks = [first];
  res.on("data", (c: Buffer) => chunks.push(c));
  res.resume();
  await new Promise((r) => res.once("end", r));
  return Buffer.concat(chunks);
}

describe("revalidation", () => {
  it("asks the origin with If-None-Match and If-Modified-Since after the TTL, and keeps the file on 304", async () => {
    const v1 = origin.put("/same.bin", pseudoRandom(50_000, 31));
    expect(sha256Hex((await fetchRaw(objectUrl("/same.bin"))).body)).toBe(v1.sha256);
    const inode = statSync(dataPath("/same.bin")).ino;
    await fetchRaw(objectUrl("/same.bin"));
    expect(origin.gets("/same.bin")).toBe(1); // fresh: no origin request
    await sleep(TTL_MS + 50);
    const r = await fetchRaw(objectUrl("/same.bin"));
    expect(sha256Hex(r.body)).toBe(v1.sha256);
    expect(origin.gets("/same.bin")).toBe(2);
    const conditional = origin.requests.filter((q) => q.path === "/same.bin").at(-1)!;
    expect(conditional.headers["if-none-match"]).toBe(v1.etag);
    expect(conditional.headers["if-modified-since"]).toMatch(/GMT$/);
    expect(origin.stats.notModified).toBeGreaterThanOrEqual(1);
    expect(statSync(dataPath("/same.bin")).ino).toBe(inode);
  });

  it("gives new requests the new content when the origin changed, while an open read of the old one still gets the old bytes", async () => {
    const old = pseudoRandom(8 * 2 ** 20, 32);
    const v1 = origin.put("/changing.bin", old);
    await fetchRaw(objectUrl("/changing.bin"));
    // A pod that mounted the old file (an open descriptor), and a client mid-download.
    const podRead = createReadStream(dataPath("/changing.bin"), { highWaterMark: 1024 });
    await new Promise<void>((r) => podRead.once("readable", () => r()));
    const slow = await startSlowRead(objectUrl("/changing.bin"));
    await sleep(TTL_MS + 50);
    const fresh = pseudoRandom(4 * 2 ** 20, 33);
    const v2 = origin.put("/changing.bin", fresh);
    const r = await fetchRaw(objectUrl("/changing.bin"));
    expect(r.headers.etag).toBe(`"${v2.sha256}"`);
    expect(sha256Hex(r.body)).toBe(v2.sha256);
    expect(origin.requests.filter((q) => q.path === "/changing.bin").at(-1)?.headers["if-none-match"]).toBe(v1.etag);
    expect(sha256Hex(await readRest(slow.res, slow.first))).toBe(v1.sha256);
    const podBytes: Buffer[] = [];
    for await (const c of podRead) podBytes.push(c as Buffer);
    expect(sha256Hex(Buffer.concat(podBytes))).toBe(v1.sha256);
  });

  it("keeps the inode when a 200 on revalidation brings identical bytes", async () => {
    const content = pseudoRandom(40_000, 35);
    const v1 = origin.put("/same-bytes.bin", content);
    await fetchRaw(objectUrl("/same-bytes.bin"));
    const inode = statSync(dataPath("/same-bytes.bin")).ino;
    const v2 = origin.put("/same-bytes.bin", content); // a new ETag: the conditional GET gets a 200
    expect(v2.etag).not.toBe(v1.etag);
    await sleep(TTL_MS + 50);
    const notModified = origin.stats.notModified;
    const r = await fetchRaw(objectUrl("/same-bytes.bin"));
    expect(sha256Hex(r.body)).toBe(v1.sha256);
    expect(origin.gets("/same-bytes.bin")).toBe(2);
    expect(origin.stats.notModified).toBe(notModified); // a 200, not a 304
    expect(statSync(dataPath("/same-bytes.bin")).ino).toBe(inode);
  });

  it("serves a stale copy while the origin fails transiently, for at most cache.maxStale, logged and counted", async () => {
    const v1 = origin.put("/outage.bin", pseudoRandom(10_000, 34));
    await fetchRaw(objectUrl("/outage.bin"));
    await sleep(TTL_MS + 50);
    origin.cue("/outage.bin", { status: 503, times: 100 });
    const r = await fetchRaw(objectUrl("/outage.bin"));
    expect(r.status).toBe(200);
    expect(sha256Hex(r.body)).toBe(v1.sha256);
    expect(origin.gets("/outage.bin")).toBe(3);
    expect(logLines.some((l) => l.includes('"msg":"revalidation failed; serving a stale copy"'))).toBe(true);
    const metrics = (await fetchRaw(`${cache.url}/metrics`)).body.toString();
    expect(metrics).toMatch(/cache_io_cache_stale_served_total [1-9]/);

    await sleep(MAX_STALE_MS);
    const late = await fetchRaw(objectUrl("/outage.bin"));
    expect(late.status).toBe(502);
    expect(late.body.toString()).toMatch(/origin answered 503 Service Unavailable .*; the cached copy is not served: .*more than cache\.revalidateAfter \+ cache\.maxStale/);
  });

  it.each([404, 410])("removes the cached copy when the origin answers %i on revalidation, and says so", async (status) => {
    const path = `/gone-${status}.bin`;
    origin.put(path, pseudoRandom(10_000, status));
    expect((await fetchRaw(objectUrl(path))).status).toBe(200);
    await sleep(TTL_MS + 50);
    origin.cue(path, { status, times: 10 });
    const r = await fetchRaw(objectUrl(path));
    expect(r.status).toBe(502);
    expect(r.body.toString()).toMatch(new RegExp(`origin answered ${status} .*; the cached copy was removed`));
    expect(existsSync(dataPath(path))).toBe(false);
    expect(cache.cache.current(cacheKey(origin.url(path)))).toBeUndefined();
    expect(origin.gets(path)).toBe(2);
  });
});
