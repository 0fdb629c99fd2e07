// Hostile callers against a real cache: downloads capped in all and per client address
// (503 + Retry-After naming the field), stalled downloads cut after cache.sendTimeout
// while a well-behaved client is still served, buffers no bigger than the file; fills
// capped in all and per origin host, and abandoned when every waiter has left.
import { mkdtempSync, readdirSync, rmSync, existsSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import type { ServerOptions } from "../../src/cache/server.js";
import { policyOf } from "./policy-of.js";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";

const MIB = 2 ** 20;
let origin: Origin;
const caches: RunningCache[] = [];
const roots: string[] = [];
const sockets = new Set<Socket>();

beforeAll(async () => {
  origin = await startOrigin();
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const c of caches) await c.close(100);
  await origin?.close();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

async function newCache(yaml: string, resolve?: (host: string) => Promise<{ address: string; family: number }[]>, limits?: ServerOptions["limits"]): Promise<RunningCache> {
  const root = mkdtempSync(join(tmpdir(), "cache-limits-"));
  roots.push(root);
  const policy = policyOf(yaml);
  const c = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy, retryBaseMs: 20, limits, ...(resolve ? { resolve } : {}) });
  caches.push(c);
  return c;
}

/** A client from `localAddress` that asks for `path`, takes the first bytes and then stops reading. */
function stalledClient(c: RunningCache, path: string, localAddress: string): Promise<{ socket: Socket; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: c.port, localAddress });
    sockets.add(socket);
    socket.once("error", reject);
    socket.once("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: cache\r\n\r\n`));
    socket.once("data", (first: Buffer) => {
      socket.pause();
      resolve({ socket, head: first.toString("latin1", 0, 200) });
    });
  });
}

/** GET from a given local address, read it all. */
function getFrom(c: RunningCache, path: string, localAddress: string): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port: c.port, path, localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once("close", () => r())));

describe("downloads", () => {
  it("caps downloads per client and in all with 503 + Retry-After, cuts stalled ones after sendTimeout, and keeps serving others", async () => {
    const c = await newCache(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {maxDownloads: 6, maxDownloadsPerClient: 4, sendTimeout: 1500ms}`);
    const content = pseudoRandom(48 * MIB, 51);
    const { sha256 } = origin.put("/big.bin", content);
    const url = origin.url("/big.bin");
    const path = objectPath(cacheKey(url), url);
    expect((await getFrom(c, path, "127.0.0.1")).status).toBe(200); // cached

    const stalled = [];
    for (let i = 0; i < 4; i++) stalled.push(await stalledClient(c, path, "127.0.0.2"));
    for (const s of stalled) expect(s.head).toMatch(/^HTTP\/1\.1 200 OK/);
    const perClient = await getFrom(c, path, "127.0.0.2");
    expect(perClient.status).toBe(503);
    expect(perClient.headers["retry-after"]).toBe("5");
    expect(perClient.body.toString()).toBe(
      "error: client 127.0.0.2 already has 4 downloads running, the limit per client address (cache.maxDownloadsPerClient=4); finish those first, or raise cache.maxDownloadsPerClient\n",
    );
    const meanwhile = await getFrom(c, path, "127.0.0.1"); // another client is served while 127.0.0.2 is capped
    expect(meanwhile.status).toBe(200);
    expect(sha256Hex(meanwhile.body)).toBe(sha256);
    for (let i = 0; i < 2; i++) stalled.push(await stalledClient(c, path, "127.0.0.3"));
    const total = await getFrom(c, path, "127.0.0.4");
    expect(total.status).toBe(503);
    expect(total.body.toString()).toContain("the node cache is serving 6 downloads, its limit (cache.maxDownloads=6)");

    // The stalled downloads are cut after sendTimeout; then a well-behaved client is served in full.
    const t0 = Date.now();
    await expect.poll(() => c.cache.downloads.inUse, { timeout: 15_000 }).toBe(0);
    expect(Date.now() - t0).toBeGreaterThan(1000);
    for (const s of stalled) {
      let got = 0;
      s.socket.on("data", (d: Buffer) => (got += d.length));
      s.socket.resume();
      await closed(s.socket); // the cache ended the connection before the whole file went out
      expect(got).toBeLessThan(content.length);
    }
    const ok = await getFrom(c, path, "127.0.0.4");
    expect(ok.status).toBe(200);
    expect(sha256Hex(ok.body)).toBe(sha256);
    const metrics = (await fetchRaw(`${c.url}/metrics`)).body.toString();
    expect(metrics).toContain('cache_io_cache_downloads_refused_total{reason="max_downloads_per_client"} 1');
    expect(metrics).toContain('cache_io_cache_downloads_refused_total{reason="max_downloads"} 1');
  }, 30_000);

  it("reads a small file through a buffer no bigger than the file", async () => {
    const c = await newCache(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}`);
    origin.put("/ten.bin", Buffer.from("0123456789"));
    const url = origin.url("/ten.bin");
    expect((await fetchRaw(c.url + objectPath(cacheKey(url), url))).status).toBe(200);
    const spy = vi.spyOn(Buffer, "allocUnsafeSlow");
    try {
      const r = await fetchRaw(c.url + objectPath(cacheKey(url), url));
      expect(r.body.toString()).toBe("0123456789");
      expect(spy).toHaveBeenCalled();
      expect(Math.max(...spy.mock.calls.map(([n]) => n))).toBeLessThanOrEqual(10);
    } finally {
      spy.mockRestore();
    }
  });
});

describe("read buffers", () => {
  it("uses 64 KiB buffers while the shared large (1 MiB) ones are all out", async () => {
    const c = await newCache(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}`);
    const content = pseudoRandom(3 * MIB, 52);
    const { sha256 } = origin.put("/pooled.bin", content);
    const url = origin.url("/pooled.bin");
    const get = () => fetchRaw(c.url + objectPath(cacheKey(url), url));
    expect((await get()).status).toBe(200);
    const pool = c.cache.readBuffers;
    let taken = 0;
    while (pool.tryTake()) taken++; // as if that many stalled downloads held one each
    expect(taken).toBe(pool.max);
    const spy = vi.spyOn(Buffer, "allocUnsafeSlow");
    try {
      const small = await get();
      expect(sha256Hex(small.body)).toBe(sha256);
      expect(Math.max(...spy.mock.calls.map(([n]) => n))).toBe(64 * 1024);
      for (let i = 0; i < taken; i++) pool.give();
      spy.mockClear();
      const large = await get();
      expect(sha256Hex(large.body)).toBe(sha256);
      expect(Math.max(...spy.mock.calls.map(([n]) => n))).toBe(MIB);
      expect(pool.out).toBe(0); // every download gives its large buffers back
    } finally {
      spy.mockRestore();
    }
  });
});

describe("fills", () => {
  const names = ["a.example.test", "b.example.test", "c.example.test"];
  const resolve = async () => [{ address: "127.0.0.1", family: 4 }];

  /** A request that is given up after `ms` (the client goes away). */
  function abandon(c: RunningCache, url: string, ms: number): Promise<void> {
    return new Promise((done) => {
      const req = httpRequest(c.url + objectPath(cacheKey(url), url), { agent: false }, (res) => res.resume());
      req.on("error", () => done());
      req.on("close", () => done());
      setTimeout(() => req.destroy(), ms);
      req.end();
    });
  }

  it("caps fills in flight per origin host and in all (503 naming the field), and frees the slots when abandoned fills end", async () => {
    const c = await newCache(
      `origins: {allow: ["*.example.test"], allowPrivate: [${names.join(", ")}]}\ncache: {maxFills: 2, maxFillsPerHost: 1, abandonGrace: 200ms, originRetries: 0}`,
      resolve,
    );
    const u = (host: string, p: string) => `http://${host}:${origin.port}${p}`;
    for (const p of ["/s1", "/s2", "/s3", "/s4", "/s5"]) {
      origin.put(p, pseudoRandom(1000, 60));
      origin.cue(p, { stallMs: 4000 });
    }
    const first = abandon(c, u(names[0]!, "/s1"), 1500);
    await expect.poll(() => c.cache.filler.inFlight).toBe(1);
    const perHost = await fetchRaw(c.url + objectPath(cacheKey(u(names[0]!, "/s2")), u(names[0]!, "/s2")));
    expect(perHost.status).toBe(503);
    expect(perHost.headers["retry-after"]).toBe("5");
    expect(perHost.body.toString()).toContain("fills in flight from origin host a.example.test, the limit per host (cache.maxFillsPerHost=1)");
    const second = abandon(c, u(names[1]!, "/s3"), 1500);
    await expect.poll(() => c.cache.filler.inFlight).toBe(2);
    const total = await fetchRaw(c.url + objectPath(cacheKey(u(names[2]!, "/s5")), u(names[2]!, "/s5")));
    expect(total.status).toBe(503);
    expect(total.body.toString()).toContain("the node cache has 2 origin fills in flight, its limit (cache.maxFills=2)");
    await Promise.all([first, second]);
    // Their clients left: after abandonGrace the fills are dropped (the origin still has not answered).
    await expect.poll(() => c.cache.filler.inFlight, { timeout: 2000 }).toBe(0);
    const metrics = (await fetchRaw(`${c.url}/metrics`)).body.toString();
    expect(metrics).toContain('cache_io_cache_downloads_refused_total{reason="max_fills_per_host"} 1');
    expect(metrics).toContain('cache_io_cache_fill_errors_total{reason="abandoned"} 2');
  }, 20_000);

  it("serves the cached copy of a file due for revalidation while the fill cap is reached", async () => {
    const c = await newCache(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {maxFills: 1, revalidateAfter: 200ms, abandonGrace: 200ms}`);
    const { sha256 } = origin.put("/due.bin", pseudoRandom(10_000, 62));
    const due = origin.url("/due.bin");
    expect((await fetchRaw(c.url + objectPath(cacheKey(due), due))).status).toBe(200);
    origin.put("/hog.bin", pseudoRandom(1000, 63));
    origin.cue("/hog.bin", { stallMs: 3000 });
    const hog = abandon(c, origin.url("/hog.bin"), 1000);
    await expect.poll(() => c.cache.filler.inFlight).toBe(1);
    await sleep(250);
    const r = await fetchRaw(c.url + objectPath(cacheKey(due), due));
    expect(r.status).toBe(200);
    expect(sha256Hex(r.body)).toBe(sha256);
    expect(origin.gets("/due.bin")).toBe(1); // not revalidated: no fill slot
    await hog;
  });

  it("does not download or store a file whose five clients all gave up after 50 ms", async () => {
    const c = await newCache(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {abandonGrace: 300ms}`);
    const size = 8 * MIB;
    origin.put("/given-up.bin", pseudoRandom(size, 61));
    origin.rateFor.set("/given-up.bin", 2 * MIB); // 4 s to send it all
    const url = origin.url("/given-up.bin");
    const before = origin.stats.bytesSent;
    await Promise.all(Array.from({ length: 5 }, () => abandon(c, url, 50)));
    await expect.poll(() => c.cache.filler.inFlight, { timeout: 3000 }).toBe(0);
    const sent = origin.stats.bytesSent - before;
    await sleep(300);
    expect(origin.stats.bytesSent - before - sent).toBeLessThan(256 * 1024); // the origin connection was closed
    expect(sent).toBeLessThan(size / 2);
    expect(origin.gets("/given-up.bin")).toBe(1);
    expect(existsSync(join(c.cache.store.dir(cacheKey(url)), "data"))).toBe(false);
    expect(readdirSync(join(c.cache.store.root, "tmp"))).toEqual([]);
  }, 20_000);
});

describe("connections", () => {
  /** A raw connection; resolves when it is closed, with what the server sent. */
  function rawConnection(c: RunningCache, send: string): { socket: Socket; done: Promise<string> } {
    const socket = connect({ host: "127.0.0.1", port: c.port });
    sockets.add(socket);
    let got = "";
    socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
    socket.on("error", () => undefined);
    socket.once("connect", () => send && socket.write(send));
    return { socket, done: new Promise((r) => socket.once("close", () => r(got))) };
  }

  it("closes a connection whose request headers do not arrive within headersTimeout", async () => {
    const c = await newCache(`origins: {allow: ["127.0.0.1"]}`, undefined, { headersTimeout: 500, requestTimeout: 1000, connectionsCheckingInterval: 100 });
    const t0 = Date.now();
    const slow = rawConnection(c, "GET /healthz HTTP/1.1\r\nHost: cache\r\n"); // never ends its headers
    const answer = await slow.done;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(answer).toMatch(/^(HTTP\/1\.1 408|$)/);
  });

  it("closes connections past maxConnections at once", async () => {
    const c = await newCache(`origins: {allow: ["127.0.0.1"]}`, undefined, { maxConnections: 3 });
    const idle = [rawConnection(c, ""), rawConnection(c, ""), rawConnection(c, "")];
    await Promise.all(idle.map((i) => new Promise((r) => (i.socket.readyState === "open" ? r(null) : i.socket.once("connect", r)))));
    await sleep(100);
    const extra = rawConnection(c, "GET /healthz HTTP/1.1\r\nHost: cache\r\n\r\n");
    expect(await extra.done).toBe("");
    for (const i of idle) i.socket.destroy();
    await sleep(100);
    expect((await fetchRaw(`${c.url}/healthz`)).status).toBe(200);
  });
});
