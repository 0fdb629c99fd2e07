// cache.prewarm on a real `cache-io cache` process: the listed files are fetched at start
// without any request, an entry the origin rules refuse is logged and skipped (the cache
// stays ready), a restart on the same root does not fetch them again, and a policy reload
// that adds an entry pre-warms it (only it).
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheKey, ensurePath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { killAll, killGroup, spawnCache } from "./spawn-cache.js";

let origin: Origin;
let dir: string;

beforeAll(async () => {
  origin = await startOrigin();
  dir = mkdtempSync(join(tmpdir(), "cache-prewarm-"));
});

afterAll(async () => {
  await killAll();
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

function policy(prewarm: string[]): string {
  return `identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {prewarm: ${JSON.stringify(prewarm)}}\n`;
}

describe("cache.prewarm", () => {
  it("fetches the files at start, skips a refused entry, keeps them over a restart, and pre-warms an entry a reload adds", async () => {
    const a = pseudoRandom(3 << 20, 91);
    const b = pseudoRandom(1 << 20, 92);
    origin.put("/warm/a.bin", a);
    origin.put("/warm/b.bin", b);
    const [urlA, urlB] = [origin.url("/warm/a.bin"), origin.url("/warm/b.bin")];
    const refused = "http://169.254.169.254/latest/meta-data/model.bin";
    const policyFile = join(dir, "policy.yaml");
    const root = join(dir, "root");
    writeFileSync(policyFile, policy([refused, urlA]));
    const env = { CACHE_IO_POLICY_POLL_MS: "200" };

    const first = await spawnCache(["--root", root, "--policy", policyFile], env);
    await expect.poll(() => first.logs.some((l) => l.msg === "pre-warmed"), { timeout: 15_000 }).toBe(true);
    expect(origin.gets("/warm/a.bin")).toBe(1);
    const skipped = first.logs.find((l) => l.msg === "pre-warm failed");
    expect(skipped?.err).toMatch(/169\.254\.169\.254/);
    expect((await fetchRaw(`${first.url}/readyz`)).status).toBe(200);
    // A pod asking now gets the cached copy at once.
    const hit = await fetchRaw(first.url + ensurePath(cacheKey(urlA), urlA));
    expect(hit.body.toString()).toMatch(/^cached a\.bin 3145728 bytes/);
    const exited = once(first.proc, "exit");
    killGroup(first.proc, "SIGTERM");
    await exited;

    const second = await spawnCache(["--root", root, "--policy", policyFile], env);
    await expect.poll(() => second.logs.some((l) => l.msg === "pre-warmed"), { timeout: 15_000 }).toBe(true);
    expect(origin.gets("/warm/a.bin")).toBe(1); // already on disk: no origin GET
    expect(origin.gets("/warm/b.bin")).toBe(0);

    writeFileSync(policyFile, policy([refused, urlA, urlB]));
    await expect.poll(() => origin.gets("/warm/b.bin"), { timeout: 15_000 }).toBe(1);
    await expect.poll(() => second.logs.filter((l) => l.msg === "pre-warmed").length, { timeout: 15_000 }).toBe(2);
    const hitB = await fetchRaw(second.url + ensurePath(cacheKey(urlB), urlB));
    expect(hitB.body.toString()).toMatch(/^cached b\.bin 1048576 bytes/);
    expect(origin.gets("/warm/a.bin")).toBe(1); // the reload pre-warmed only what it added
  }, 60_000);
});
