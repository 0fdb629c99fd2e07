// Every request of a ranged fill, the first and each part (and each retry), goes
// through the origin client's `authorize` hook on its own: a credential that signs
// per request (S3 SigV4 signs the Range header too) sees every part's own headers.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConnectionPool } from "../../src/cache/fills/connections.js";
import { attempt } from "../../src/cache/fills/download.js";
import { cacheOriginRules } from "../../src/policy/load.js";
import { logger } from "../../src/shared/log.js";
import { cacheKey } from "../../src/shared/protocol.js";
import { pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { policyOf } from "./policy-of.js";

const MiB = 2 ** 20;
let origin: Origin;
let tmp: string;

beforeAll(async () => {
  origin = await startOrigin({ ranges: true });
  tmp = mkdtempSync(join(tmpdir(), "cache-parts-auth-"));
});

afterAll(async () => {
  await origin?.close();
  rmSync(tmp, { recursive: true, force: true });
});

it("calls authorize once per request with that request's Range, and sends what it returns", async () => {
  const content = pseudoRandom(5 * MiB, 120);
  const { sha256 } = origin.put("/signed.bin", content);
  origin.cue("/signed.bin", { status: 503, rangeStart: 3 * MiB }); // one part is retried: signed again
  const url = origin.url("/signed.bin");
  const key = cacheKey(url);
  const signed: string[] = [];
  const r = await attempt({
    key,
    url,
    tmpDir: tmp,
    tempPath: () => join(tmp, `${key}.single.part`),
    origin: {
      rules: cacheOriginRules(policyOf(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}`)),
      connectTimeout: 2000,
      idleTimeout: 5000,
      authorize: async (req) => {
        const range = req.headers.range ?? "none";
        signed.push(range);
        return { ...req, headers: { ...req.headers, authorization: `Signed range=${range}` } };
      },
    },
    connections: new ConnectionPool(() => 4),
    parts: { size: MiB, concurrency: 3, minFileSize: 2 * MiB },
    retries: 2,
    retryBaseMs: 10,
    conditional: {},
    signal: new AbortController().signal,
    log: logger("test"),
    onLength: () => undefined,
    onBytes: () => undefined,
    onBody: () => undefined,
  });
  expect(r.kind).toBe("body");
  if (r.kind !== "body") return;
  await r.body.release();
  expect(r.sha256).toBe(sha256);
  const asked = origin.requests.filter((q) => q.path === "/signed.bin");
  expect(asked).toHaveLength(5); // first part (2 MiB), three 1 MiB parts, one retry
  for (const q of asked) expect(q.headers.authorization).toBe(`Signed range=${q.headers.range}`);
  expect(signed.sort()).toEqual(asked.map((q) => String(q.headers.range)).sort());
});
