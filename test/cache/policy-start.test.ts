// A policy file that is invalid when the cache starts: the real `cache-io cache` process
// keeps running NOT READY (the errors on /readyz and on file requests, policy metrics at
// 0), on the flags' root and port, and becomes ready when the file is fixed.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { killAll, spawnCache } from "./spawn-cache.js";

let origin: Origin;
let dir: string;

beforeAll(async () => {
  origin = await startOrigin();
  dir = mkdtempSync(join(tmpdir(), "cache-policy-start-"));
});

afterAll(async () => {
  await killAll();
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("an invalid policy at start", () => {
  it("starts not ready with the errors, refuses file requests with 503, and becomes ready when the file is fixed", async () => {
    const policyFile = join(dir, "policy.yaml");
    writeFileSync(policyFile, `identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: plenty}\n`);
    const c = await spawnCache(["--root", join(dir, "root"), "--policy", policyFile], { CACHE_IO_POLICY_POLL_MS: "200" });
    const ready = await fetchRaw(`${c.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body.toString()).toContain('cache.diskBudget: "plenty" is not a byte quantity');
    origin.put("/p.bin", pseudoRandom(1000, 81));
    const url = origin.url("/p.bin");
    const refused = await fetchRaw(c.url + objectPath(cacheKey(url), url));
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBeDefined();
    expect(refused.body.toString()).toMatch(/^error: the policy file is invalid, so the node cache serves no files until it is fixed: .*cache\.diskBudget/);
    expect(origin.gets("/p.bin")).toBe(0);
    let metrics = (await fetchRaw(`${c.url}/metrics`)).body.toString();
    expect(metrics).toContain("cache_io_policy_valid 0");
    expect(metrics).toContain('cache_io_policy_reloads_total{result="failure"} 1');
    expect(c.logs.some((l) => l.msg === "no valid policy; the cache is not ready and serves no files until the file is fixed")).toBe(true);

    writeFileSync(policyFile, `identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: 1Gi}\n`);
    await expect.poll(async () => (await fetchRaw(`${c.url}/readyz`)).status, { timeout: 10_000 }).toBe(200);
    const served = await fetchRaw(c.url + objectPath(cacheKey(url), url));
    expect(served.status).toBe(200);
    metrics = (await fetchRaw(`${c.url}/metrics`)).body.toString();
    expect(metrics).toContain("cache_io_policy_valid 1");
    expect(metrics).toContain('cache_io_policy_reloads_total{result="success"} 1');
  });
});
