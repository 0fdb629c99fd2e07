// Per-namespace disk shares through a real node cache: callers prove their namespace
// with tokens of the loopback issuer (test/support/token-issuer.ts), files come from a real loopback
// origin. A namespace at its share evicts its own oldest file, not another namespace's
// older one; a file bigger than its share is refused with 507; who filled a file
// survives a restart (meta.json). The Budget's rules alone: disk-share.test.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { kubeconfigFor, mintToken, newKey, startIssuer, type Issuer, type Key } from "../support/token-issuer.js";
import { policyOf } from "./policy-of.js";

const NODE = "node-a";
const MIB = 2 ** 20;
const POLICY = policyOf(`
origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: required, diskSharePerNamespace: 0.5}
namespaces: {team-c: {diskShare: 0.25}}
cache: {diskBudget: 8Mi, originRetries: 0, recentUseShare: 0}  # recent requests alone protect nothing here
`);

let issuer: Issuer;
let key: Key;
let origin: Origin;
let dir: string;
let cache: RunningCache | undefined;

const start = () => startCache({ root: dir, host: "127.0.0.1", port: 0, nodeName: NODE, identityKubeConfig: kubeconfigFor(issuer.url), policy: () => POLICY });

async function ask(ns: string, path: string) {
  const url = origin.url(path);
  return fetchRaw(cache!.url + objectPath(cacheKey(url), url), { headers: { authorization: `Bearer ${await mintToken({ ns, node: NODE, key })}` } });
}

beforeAll(async () => {
  key = await newKey("k1");
  issuer = await startIssuer();
  issuer.keys = [key.jwk];
  origin = await startOrigin();
  for (const [i, p] of ["/b/1.bin", "/a/1.bin", "/a/2.bin", "/a/3.bin", "/c/1.bin"].entries()) origin.put(p, pseudoRandom(2 * MIB, 40 + i));
  origin.put("/a/big.bin", pseudoRandom(5 * MIB, 49));
  dir = mkdtempSync(join(tmpdir(), "cache-disk-share-"));
  cache = await start();
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  await issuer?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("identity.diskSharePerNamespace at a real node cache", () => {
  it("a namespace at its share evicts its own oldest file, not another namespace's older one", async () => {
    for (const [ns, path] of [["team-b", "/b/1.bin"], ["team-a", "/a/1.bin"], ["team-a", "/a/2.bin"]]) {
      const r = await ask(ns!, path!);
      expect(r.status, r.body.toString()).toBe(200);
    }
    expect(cache!.cache.budget.usedBy("team-a")).toBe(4 * MIB); // its whole share of 8 MiB
    const r = await ask("team-a", "/a/3.bin");
    expect(r.status, r.body.toString()).toBe(200);
    expect(cache!.cache.budget.usedBy("team-a")).toBe(4 * MIB);
    expect(cache!.cache.budget.usedBy("team-b")).toBe(2 * MIB);
    // team-b's older file is still a hit; team-a's oldest was evicted and is fetched again
    expect((await ask("team-b", "/b/1.bin")).status).toBe(200);
    expect(origin.gets("/b/1.bin")).toBe(1);
    expect((await ask("team-a", "/a/1.bin")).status).toBe(200);
    expect(origin.gets("/a/1.bin")).toBe(2);
  });

  it("a file bigger than the namespace's share is refused with 507 naming the namespace, its use, its share and the field", async () => {
    const r = await ask("team-a", "/a/big.bin");
    expect(r.status).toBe(507);
    expect(r.body.toString()).toMatch(/disk share of namespace "team-a" exceeded: this file needs 5242880 more bytes, the namespace's files and fills on this node hold 4194304 bytes of its share 0\.5 of cache\.diskBudget \(4194304 bytes, identity\.diskSharePerNamespace\)/);
    const c = await ask("team-c", "/c/1.bin"); // 2 MiB, its override is 0.25 (2 MiB): fits exactly
    expect(c.status, c.body.toString()).toBe(200);
  });

  it("who filled a file survives a restart: the startup scan restores each namespace's use", async () => {
    const before = { a: cache!.cache.budget.usedBy("team-a"), b: cache!.cache.budget.usedBy("team-b"), c: cache!.cache.budget.usedBy("team-c") };
    await cache!.close(100);
    cache = undefined;
    cache = await start();
    expect({ a: cache.cache.budget.usedBy("team-a"), b: cache.cache.budget.usedBy("team-b"), c: cache.cache.budget.usedBy("team-c") }).toEqual(before);
    expect(before.a).toBeGreaterThan(0);
  });
});
