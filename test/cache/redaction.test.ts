// Query strings of URLs (pre-signed and SAS tokens) never leave the cache: not in its
// logs, error bodies, progress lines or metrics. Scheme, host and path stay visible.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningCache } from "../../src/cache/index.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, type Origin } from "../support/origin.js";
import { startLoggedCache, type LoggedCache } from "./logged-cache.js";

const SECRET = "sv=2030&sig=Zm9vYmFyU0VDUkVU";
let origin: Origin;
let cache: RunningCache;
let logs: string[];
let running: LoggedCache | undefined;

beforeAll(async () => {
  running = await startLoggedCache("redact", "2s");
  ({ origin, cache, logs } = running);
});

afterAll(async () => {
  await running?.stop();
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
