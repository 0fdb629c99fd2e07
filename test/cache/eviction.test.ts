// The disk budget: filling past it evicts the least recently used file that is not in
// use and never one that is. "In use" comes from a list+watch of this node's pods,
// served here by a local HTTP stand-in of the Kubernetes API (it answers only requests
// whose fieldSelector is spec.nodeName=<this node>), and from recent requests.
import { KubeConfig } from "@kubernetes/client-node";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import type { Policy } from "../../src/policy/schema.js";
import { policyOf } from "./policy-of.js";
import { cacheKey, objectDir, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";

const MIB = 2 ** 20;
const NODE = "node-a";
const HOST_ROOT = "/var/lib/cache-io"; // policy.cache.root: the host path the webhook writes into pods

const POLICY = policyOf(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: 3Mi, root: ${HOST_ROOT}}`);

/** The Kubernetes API as far as the pod watch uses it: list and watch pods of one node. */
class FakeApiServer {
  server: Server;
  pods = new Map<string, object>();
  watchers = new Set<ServerResponse>();
  selectors: string[] = [];
  rv = 1;

  constructor() {
    this.server = createServer((req, res) => {
      const u = new URL(req.url ?? "/", "http://x");
      const selector = u.searchParams.get("fieldSelector") ?? "";
      this.selectors.push(selector);
      if (u.pathname !== "/api/v1/pods" || selector !== `spec.nodeName=${NODE}`) {
        return void res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ kind: "Status", code: 400, message: `unexpected ${req.url}` }));
      }
      if (u.searchParams.get("watch") === "true") {
        res.writeHead(200, { "content-type": "application/json" });
        this.watchers.add(res);
        res.on("close", () => this.watchers.delete(res));
        return;
      }
      const list = { kind: "PodList", apiVersion: "v1", metadata: { resourceVersion: String(this.rv) }, items: [...this.pods.values()] };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(list));
    });
  }

  event(type: "ADDED" | "DELETED", name: string, keys: string[]): void {
    const pod = podMounting(name, keys, String(++this.rv));
    if (type === "ADDED") this.pods.set(name, pod);
    else this.pods.delete(name);
    for (const w of this.watchers) w.write(`${JSON.stringify({ type, object: pod })}\n`);
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    const port = (this.server.address() as AddressInfo).port;
    kc.loadFromOptions({
      // The client refuses plain http unless skipTLSVerify is set; the stand-in is loopback-only.
      clusters: [{ name: "stand-in", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: "cache" }],
      contexts: [{ name: "stand-in", cluster: "stand-in", user: "cache" }],
      currentContext: "stand-in",
    });
    return kc;
  }
}

/** A running pod whose mount-mode volumes are these cache keys (as the webhook writes them). */
function podMounting(name: string, keys: string[], resourceVersion: string): object {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", uid: `uid-${name}`, resourceVersion },
    spec: {
      nodeName: NODE,
      containers: [{ name: "app", image: "app" }],
      volumes: keys.map((k) => ({ name: `cache-io-${k.slice(0, 16)}`, hostPath: { path: objectDir(HOST_ROOT, k), type: "DirectoryOrCreate" } })),
    },
    status: { phase: "Running" },
  };
}

let origin: Origin;
const roots: string[] = [];
const caches: RunningCache[] = [];

beforeAll(async () => {
  origin = await startOrigin();
  for (const name of "abcdefgh") origin.put(`/${name}.bin`, pseudoRandom(MIB, name.charCodeAt(0)));
});

afterAll(async () => {
  for (const c of caches) await c.close(100);
  await origin?.close();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

async function newCache(extra: { kubeConfig?: KubeConfig; recentUseMs?: number; policy?: () => Policy; policyCheckMs?: number }): Promise<RunningCache> {
  const root = mkdtempSync(join(tmpdir(), "cache-evict-"));
  roots.push(root);
  const c = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => POLICY, nodeName: NODE, ...extra });
  caches.push(c);
  return c;
}

const url = (name: string) => origin.url(`/${name}.bin`);
const fill = (c: RunningCache, name: string) => fetchRaw(c.url + objectPath(cacheKey(url(name)), url(name)));
const stored = (c: RunningCache, name: string) => existsSync(join(c.cache.store.dir(cacheKey(url(name))), "data"));

describe("disk budget", () => {
  it("evicts the least recently used file when a fill would pass the budget", async () => {
    const c = await newCache({ recentUseMs: 0 });
    for (const n of ["a", "b", "c"]) expect((await fill(c, n)).status).toBe(200);
    await fill(c, "a"); // a is now more recently used than b
    expect((await fill(c, "d")).status).toBe(200);
    await sleep(50);
    expect(["a", "b", "c", "d"].map((n) => stored(c, n))).toEqual([true, false, true, true]);
    expect(c.cache.budget.used()).toBe(3 * MIB);
    const metrics = (await fetchRaw(`${c.url}/metrics`)).body.toString();
    expect(metrics).toContain("cache_io_cache_evictions_total 1");
    expect(metrics).toContain(`cache_io_cache_disk_used_bytes ${3 * MIB}`);
    expect(metrics).toContain(`cache_io_cache_disk_budget_bytes ${3 * MIB}`);
  });

  it("never evicts a file a pod on this node mounts, and refuses with 507 when nothing else can go", async () => {
    const api = new FakeApiServer();
    api.server.listen(0, "127.0.0.1");
    await new Promise((r) => api.server.once("listening", r));
    try {
      api.event("ADDED", "early", [cacheKey(url("e"))]); // already running when the cache starts: seen by the list
      const c = await newCache({ recentUseMs: 0, kubeConfig: api.kubeConfig() });
      await expect.poll(() => c.cache.inUse.watchState).toBe("synced");
      for (const n of ["e", "f", "g"]) expect((await fill(c, n)).status).toBe(200);
      await expect.poll(() => api.watchers.size).toBeGreaterThan(0);
      api.event("ADDED", "later", [cacheKey(url("f"))]); // started later: seen by the watch
      await expect.poll(() => c.cache.inUse.has(cacheKey(url("f")))).toBe(true);

      expect((await fill(c, "h")).status).toBe(200); // e and f are in use: g (the newest!) goes
      await sleep(50);
      expect(["e", "f", "g", "h"].map((n) => stored(c, n))).toEqual([true, true, false, true]);

      api.event("ADDED", "third", [cacheKey(url("h"))]);
      await expect.poll(() => c.cache.inUse.has(cacheKey(url("h")))).toBe(true);
      const refused = await fill(c, "a");
      expect(refused.status).toBe(507);
      expect(refused.body.toString()).toMatch(/disk budget exceeded: .* 3 file\(s\) \(3145728 bytes\) are mounted by running pods on this node; raise cache\.diskBudget/);
      expect(stored(c, "a")).toBe(false);

      api.event("DELETED", "early", [cacheKey(url("e"))]); // the pod ended: e may go now
      await expect.poll(() => c.cache.inUse.has(cacheKey(url("e")))).toBe(false);
      expect((await fill(c, "a")).status).toBe(200);
      await sleep(50);
      expect(["a", "e", "f", "h"].map((n) => stored(c, n))).toEqual([true, false, true, true]);
      expect(new Set(api.selectors)).toEqual(new Set([`spec.nodeName=${NODE}`]));
    } finally {
      api.server.closeAllConnections();
      api.server.close();
    }
  });

  it("lets recent requests protect at most cache.recentUseShare of the budget: past it the least recently requested are evicted", async () => {
    const c = await newCache({ recentUseMs: 60_000 }); // share 0.5 of 3 MiB: one 1 MiB file
    for (const n of ["a", "b", "c"]) expect((await fill(c, n)).status).toBe(200);
    expect((await fill(c, "d")).status).toBe(200);
    await sleep(50);
    expect(["a", "b", "c", "d"].map((n) => stored(c, n))).toEqual([false, true, true, true]);
  });

  it("refuses with 507 naming what protects the files when recent requests hold the whole share", async () => {
    const policy = policyOf(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: 3Mi, recentUseShare: 1}`);
    const c = await newCache({ recentUseMs: 60_000, policy: () => policy });
    for (const n of ["a", "b", "c"]) expect((await fill(c, n)).status).toBe(200);
    const r = await fill(c, "d");
    expect(r.status).toBe(507);
    expect(r.body.toString()).toContain(
      "nothing more can be evicted: 3 file(s) (3145728 bytes) were requested in the last 60s (cache.recentUseWindow), which protects files up to cache.recentUseShare=1 of the budget; raise cache.diskBudget",
    );
    expect(["a", "b", "c", "d"].map((n) => stored(c, n))).toEqual([true, true, true, false]);
  });

  it("remembers at most cache.recentUseMaxKeys recent requests; forgotten ones are evictable", async () => {
    const policy = policyOf(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: 3Mi, recentUseShare: 1, recentUseMaxKeys: 2}`);
    const c = await newCache({ recentUseMs: 60_000, policy: () => policy });
    for (const n of ["a", "b", "c"]) expect((await fill(c, n)).status).toBe(200);
    expect(c.cache.inUse.recentKeys).toBe(2);
    expect((await fill(c, "d")).status).toBe(200);
    await sleep(50);
    expect(["a", "b", "c", "d"].map((n) => stored(c, n))).toEqual([false, true, true, true]);
    expect(c.cache.inUse.recentKeys).toBe(2);
  });

  it("evicts for the bytes that arrive, not for the Content-Length the origin announces", async () => {
    const policy = policyOf(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: 3Mi, originRetries: 0}`);
    const c = await newCache({ recentUseMs: 0, policy: () => policy });
    for (const n of ["a", "b", "c"]) expect((await fill(c, n)).status).toBe(200);
    origin.put("/liar.bin", pseudoRandom(100_000, 99));
    origin.cue("/liar.bin", { announce: 3 * MIB }); // announces 3 MiB, sends 100 kB, closes
    const r = await fill(c, "liar");
    expect(r.status).toBe(502);
    expect(r.body.toString()).toContain("origin closed the connection after 100000 of 3145728 bytes");
    await sleep(50);
    expect(["a", "b", "c"].map((n) => stored(c, n))).toEqual([false, true, true]); // room for 100 kB: one file
    expect(c.cache.budget.used()).toBe(2 * MIB);
  });

  it("refuses at once (507, nothing evicted) a file whose announced length can never fit", async () => {
    const c = await newCache({ recentUseMs: 0 });
    for (const n of ["a", "b", "c"]) expect((await fill(c, n)).status).toBe(200);
    origin.put("/big.bin", pseudoRandom(100_000, 98));
    origin.cue("/big.bin", { announce: 4 * MIB });
    const r = await fill(c, "big");
    expect(r.status).toBe(507);
    expect(r.body.toString()).toContain(`this file needs ${4 * MIB} more bytes`);
    expect(["a", "b", "c"].map((n) => stored(c, n))).toEqual([true, true, true]);
  });

  it("refuses an origin without Content-Length that grows past what can be freed, and stores nothing", async () => {
    const policy = policyOf(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: 3Mi, recentUseShare: 1, originRetries: 0}`);
    const c = await newCache({ recentUseMs: 60_000, policy: () => policy });
    for (const n of ["a", "b"]) expect((await fill(c, n)).status).toBe(200);
    origin.put("/unsized.bin", pseudoRandom(2 * MIB, 97));
    origin.cue("/unsized.bin", { noLength: true });
    const r = await fill(c, "unsized");
    expect(r.status).toBe(507);
    expect(r.body.toString()).toContain("disk budget exceeded");
    expect(stored(c, "unsized")).toBe(false);
    expect(["a", "b"].map((n) => stored(c, n))).toEqual([true, true]);
    expect(readdirSync(join(c.cache.store.root, "tmp"))).toEqual([]);
    expect(c.cache.budget.used()).toBe(2 * MIB);
  });

  it("evicts nothing until the pod watch has synced", async () => {
    const api = createServer((_req, res) => void res.writeHead(500, { "content-type": "application/json" }).end('{"kind":"Status","code":500,"message":"etcd unavailable"}'));
    api.listen(0, "127.0.0.1");
    await new Promise((r) => api.once("listening", r));
    try {
      const kc = new KubeConfig();
      const port = (api.address() as AddressInfo).port;
      kc.loadFromOptions({
        clusters: [{ name: "down", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
        users: [{ name: "cache" }],
        contexts: [{ name: "down", cluster: "down", user: "cache" }],
        currentContext: "down",
      });
      const c = await newCache({ recentUseMs: 0, kubeConfig: kc });
      for (const n of ["a", "b", "c"]) expect((await fill(c, n)).status).toBe(200);
      const r = await fill(c, "d");
      expect(r.status).toBe(507);
      expect(r.body.toString()).toContain("nothing can be evicted until the watch of this node's pods has synced");
      expect(["a", "b", "c", "d"].map((n) => stored(c, n))).toEqual([true, true, true, false]);
    } finally {
      api.closeAllConnections();
      api.close();
    }
  });

  it("evicts down to a budget that a reloaded policy shrank", async () => {
    let policy = POLICY;
    const c = await newCache({ recentUseMs: 0, policy: () => policy, policyCheckMs: 50 });
    for (const n of ["a", "b", "c"]) expect((await fill(c, n)).status).toBe(200);
    policy = policyOf(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: 1Mi, root: ${HOST_ROOT}}`);
    await expect.poll(() => c.cache.budget.used(), { timeout: 5000 }).toBe(MIB);
    await sleep(50);
    expect(["a", "b", "c"].map((n) => stored(c, n))).toEqual([false, false, true]);
  });
});
