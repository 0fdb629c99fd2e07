// A real node cache with cache.proxies in its policy, in front of a real tinyproxy: a
// cold fill (one stream, and a ranged fill in parts) goes through the proxy to the
// checked address; a policy edit that drops the entry sends the next fill direct.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";
import { cacheKey, ensurePath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { startProxy, type Proxy } from "../support/proxy.js";

const MiB = 2 ** 20;
let proxy: Proxy;
let origin: Origin;
let cache: RunningCache;
let root: string;
let policy: Policy;

function load(proxies: string): Policy {
  const r = parsePolicy(`identity: {mode: "off"}
origins: {allow: ["*.proxied.test"], allowPrivate: ["127.0.0.1"]}
cache: {originRetries: 0, parts: {size: 1Mi, minFileSize: 1Mi, concurrency: 3}, proxies: ${proxies}}`);
  if (!r.ok) throw new Error(r.errors.join("; "));
  return r.policy;
}

beforeAll(async () => {
  proxy = await startProxy();
  origin = await startOrigin({ ranges: true });
  root = mkdtempSync(join(tmpdir(), "cache-proxy-node-"));
  policy = load(`[{host: "*.proxied.test", url: "${proxy.url}"}]`);
  const resolve = async () => [{ address: "127.0.0.1", family: 4 }];
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policy, resolve, retryBaseMs: 10 });
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  await proxy?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function ensure(path: string, content: Buffer) {
  const { sha256 } = origin.put(path, content);
  const url = `http://files.proxied.test:${origin.port}${path}`;
  const r = await fetchRaw(cache.url + ensurePath(cacheKey(url), url, sha256));
  return { status: r.status, text: r.body.toString() };
}

it("fills a file through the proxy, and each part of a ranged fill", async () => {
  const before = proxy.requests().length;
  expect((await ensure("/one.bin", pseudoRandom(200_000, 51))).status).toBe(200);
  expect(proxy.requests().slice(before)).toEqual([`CONNECT 127.0.0.1:${origin.port}`]);
  const mid = proxy.requests().length;
  expect((await ensure("/parts.bin", pseudoRandom(5 * MiB, 52))).status).toBe(200);
  const parts = origin.requests.filter((q) => q.path === "/parts.bin");
  expect(parts.length).toBeGreaterThanOrEqual(5);
  expect(proxy.requests().slice(mid)).toEqual(parts.map(() => `CONNECT 127.0.0.1:${origin.port}`));
});

it("follows a policy edit: without the entry, the next fill goes direct", async () => {
  policy = load("[]");
  const before = proxy.requests().length;
  expect((await ensure("/direct.bin", pseudoRandom(100_000, 53))).status).toBe(200);
  expect(proxy.requests().slice(before)).toEqual([]);
});
