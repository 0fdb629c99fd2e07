// A download of a filling file that pins a sha256 (`/v1/objects/...&sha256=`) gets its last
// byte only if the published file has that sha256: when another caller's fill publishes
// other content while this reader is behind, the reader's response is cut, never completed.
import { mkdtempSync, rmSync } from "node:fs";
import { get, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { policyOf } from "./policy-of.js";

const MiB = 2 ** 20;
let origin: Origin;
let cache: RunningCache;
let root: string;

beforeAll(async () => {
  origin = await startOrigin();
  root = mkdtempSync(join(tmpdir(), "cache-pin-"));
  const policy = policyOf(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: 1Gi, sendTimeout: 60s}\n`);
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy });
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  rmSync(root, { recursive: true, force: true });
});

/** Read `res` to its end: the bytes, and whether it ended complete (or was cut). */
function drain(res: IncomingMessage): Promise<{ bytes: number; complete: boolean }> {
  return new Promise((resolve) => {
    let bytes = 0;
    res.on("data", (c: Buffer) => (bytes += c.length));
    res.on("end", () => resolve({ bytes, complete: res.complete }));
    res.on("error", () => resolve({ bytes, complete: false }));
    res.on("close", () => resolve({ bytes, complete: res.complete }));
  });
}

describe("a pinned download of a filling file", () => {
  it("is cut when the published content is not what it pinned, even if it fell behind until after the publish", async () => {
    const content = pseudoRandom(24 * MiB, 61);
    origin.put("/pin/model.bin", content);
    origin.rateFor.set("/pin/model.bin", 8 * MiB); // a 3 s fill: the download streams (past STREAM_AFTER_MS)
    const url = origin.url("/pin/model.bin");
    const wrong = "0".repeat(64);
    const ensured = fetchRaw(cache.url + ensurePath(cacheKey(url), url)); // unpinned: this fill publishes what the origin sends
    await new Promise((r) => setTimeout(r, 200));
    const res = await new Promise<IncomingMessage>((resolve, reject) => get(cache.url + objectPath(cacheKey(url), url, wrong), resolve).on("error", reject));
    expect(res.statusCode).toBe(200); // streaming: the pin can only be judged at the end
    res.pause(); // fall behind: most of the file is still unsent when the fill publishes
    expect((await ensured).status).toBe(200);
    res.resume();
    const got = await drain(res);
    expect(got.complete).toBe(false);
    expect(got.bytes).toBeLessThan(content.length);
  }, 30_000);

  it("completes when the published content is what it pinned, also after falling behind", async () => {
    const content = pseudoRandom(24 * MiB, 62);
    const { sha256 } = origin.put("/pin/right.bin", content);
    origin.rateFor.set("/pin/right.bin", 8 * MiB);
    const url = origin.url("/pin/right.bin");
    const ensured = fetchRaw(cache.url + ensurePath(cacheKey(url), url));
    await new Promise((r) => setTimeout(r, 200));
    const res = await new Promise<IncomingMessage>((resolve, reject) => get(cache.url + objectPath(cacheKey(url), url, sha256), resolve).on("error", reject));
    expect(res.statusCode).toBe(200);
    res.pause();
    expect((await ensured).status).toBe(200);
    res.resume();
    expect(await drain(res)).toEqual({ bytes: content.length, complete: true });
  }, 30_000);
});
