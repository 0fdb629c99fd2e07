// Query strings of URLs (pre-signed and SAS tokens) never leave the cache: not in its
// logs, error bodies, progress lines or metrics. Scheme, host and path stay visible.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { parsePolicy } from "../../src/policy/load.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";

const SECRET = "sv=2030&sig=Zm9vYmFyU0VDUkVU";
let origin: Origin;
let cache: RunningCache;
let root: string;
const logs: string[] = [];

beforeAll(async () => {
  origin = await startOrigin();
  root = mkdtempSync(join(tmpdir(), "cache-redact-"));
  const r = parsePolicy(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {originRetries: 1, idleTimeout: 2s}`);
  if (!r.ok) throw new Error(r.errors.join());
  const log = pino({ level: "debug" }, { write: (line: string) => void logs.push(line) });
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => r.policy, retryBaseMs: 10, log, ensureGraceMs: 100, progressIntervalMs: 100 });
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  rmSync(root, { recursive: true, force: true });
});

describe("query strings", () => {
  it("are redacted in logs, error bodies, progress lines and metrics", async () => {
    const bodies: string[] = [];
    const ask = async (path: string) => {
      const r = await fetchRaw(cache.url + path);
      bodies.push(r.body.toString());
      return r;
    };
    // A fill that streams progress and succeeds.
    origin.put("/signed.bin", pseudoRandom(2 ** 20, 91));
    origin.rateFor.set("/signed.bin", 2 ** 20);
    const ok = `${origin.url("/signed.bin")}?${SECRET}`;
    expect((await ask(ensurePath(cacheKey(ok), ok))).body.toString()).toMatch(/^fetching signed\.bin from 127\.0\.0\.1:\d+/);
    // Origin errors: 404, 503 after retries, a redirect refused by policy.
    const missing = `${origin.url("/missing.bin")}?${SECRET}`;
    expect((await ask(objectPath(cacheKey(missing), missing))).status).toBe(502);
    origin.put("/flaky.bin", pseudoRandom(1000, 92));
    origin.cue("/flaky.bin", { status: 503, times: 5 });
    const flaky = `${origin.url("/flaky.bin")}?${SECRET}`;
    expect((await ask(objectPath(cacheKey(flaky), flaky))).status).toBe(502);
    origin.redirect("/escape.bin", `http://169.254.169.254/latest/?${SECRET}`);
    const escape = `${origin.url("/escape.bin")}?${SECRET}`;
    expect((await ask(objectPath(cacheKey(escape), escape))).status).toBe(403);
    // Refused before any fetch: origin not allowed, key of another URL, wrong sha256.
    const outside = `https://files.example.org/model.bin?${SECRET}`;
    expect((await ask(objectPath(cacheKey(outside), outside))).status).toBe(403);
    expect((await ask(`/v1/objects/${"a".repeat(64)}?url=${encodeURIComponent(ok)}`)).status).toBe(400);
    expect((await ask(`/v1/objects/${"a".repeat(64)}?url=${encodeURIComponent(`not a url?${SECRET}`)}`)).status).toBe(400);
    expect((await ask(objectPath(cacheKey(ok), ok, "0".repeat(64)))).status).toBe(502);
    bodies.push((await fetchRaw(`${cache.url}/metrics`)).body.toString());

    const everything = [...bodies, ...logs].join("\n");
    expect(logs.some((l) => l.includes('"msg":"fill done"'))).toBe(true);
    expect(everything).toContain("?<redacted>");
    expect(everything).toContain(`${origin.url("/missing.bin")}?<redacted>`);
    expect(everything).not.toContain("Zm9vYmFyU0VDUkVU");
    expect(everything).not.toContain("sv=2030");
  }, 20_000);
});
