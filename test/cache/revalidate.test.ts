// Revalidation after the policy's TTL: conditional GETs (ETag / Last-Modified), a
// changed origin yields a new `data` by rename while readers of the old one keep it,
// and an origin that is down during revalidation leaves the cached copy in service.
import { createReadStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { get as httpGet, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { parsePolicy } from "../../src/policy/load.js";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";

const TTL_MS = 300;
let origin: Origin;
let cache: RunningCache;
let root: string;

beforeAll(async () => {
  origin = await startOrigin();
  root = mkdtempSync(join(tmpdir(), "cache-reval-"));
  const r = parsePolicy(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {revalidateAfter: ${TTL_MS}ms, originRetries: 1}`);
  if (!r.ok) throw new Error(r.errors.join());
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => r.policy, retryBaseMs: 10 });
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

  it("keeps serving the cached copy when the origin fails during revalidation", async () => {
    const v1 = origin.put("/outage.bin", pseudoRandom(10_000, 34));
    await fetchRaw(objectUrl("/outage.bin"));
    await sleep(TTL_MS + 50);
    origin.cue("/outage.bin", { status: 503, times: 5 });
    const r = await fetchRaw(objectUrl("/outage.bin"));
    expect(r.status).toBe(200);
    expect(sha256Hex(r.body)).toBe(v1.sha256);
    expect(origin.gets("/outage.bin")).toBe(3);
  });
});
