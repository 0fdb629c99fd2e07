// Cache keys of pre-signed URLs: signature and expiry parameters (S3, GCS, Azure SAS, OSS,
// CloudFront) are left out of the key, so one object is one cached file however often it
// is re-signed; the fetch still uses the caller's full URL, and no query reaches the logs.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningCache } from "../../src/cache/index.js";
import { keyIgnoreQuerySchema } from "../../src/policy/keys.js";
import { cacheOriginRules, parsePolicy } from "../../src/policy/load.js";
import { parseObjectRequest } from "../../src/cache/request.js";
import { decide } from "../../src/webhook/decide.js";
import { OBJECT_FILE, cacheKey, ensurePath, keyIgnoresQuery, keyUrl, normalizeUrl, objectDir } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, type Origin } from "../support/origin.js";
import { startLoggedCache, type LoggedCache } from "./logged-cache.js";

const S3_A = "https://b.s3.eu-west-1.amazonaws.com/m/w.bin?versionId=v2&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=600&X-Amz-SignedHeaders=host&X-Amz-Signature=aaaa&x-amz-content-sha256=UNSIGNED-PAYLOAD";
const S3_B = "https://b.s3.eu-west-1.amazonaws.com/m/w.bin?versionId=v2&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260102%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20260102T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=bbbb";

describe("keyUrl", () => {
  it.each([
    ["S3 SigV4 (other parameters such as versionId stay)", S3_A, "https://b.s3.eu-west-1.amazonaws.com/m/w.bin?versionId=v2"],
    ["GCS V4", "https://storage.googleapis.com/b/o.bin?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%2F20260101&X-Goog-Date=20260101T000000Z&X-Goog-Expires=600&X-Goog-SignedHeaders=host&X-Goog-Signature=ab12&generation=7", "https://storage.googleapis.com/b/o.bin?generation=7"],
    ["Azure SAS", "https://acct.blob.core.windows.net/c/b.bin?sv=2024-05-04&st=2026-01-01T00%3A00%3A00Z&se=2026-01-02T00%3A00%3A00Z&sr=b&sp=r&spr=https&sig=abc%2Bdef%3D", "https://acct.blob.core.windows.net/c/b.bin"],
    ["Azure-like names without sig= stay (another origin's own parameters)", "https://api.example.com/f?sp=2&se=x", "https://api.example.com/f?sp=2&se=x"],
    ["OSS V1", "https://b.oss-cn-hangzhou.aliyuncs.com/o.bin?OSSAccessKeyId=LTAI&Expires=1700000000&Signature=abc%3D", "https://b.oss-cn-hangzhou.aliyuncs.com/o.bin"],
    ["CloudFront", "https://d1.cloudfront.net/o.bin?Expires=1&Signature=x~y&Key-Pair-Id=K1", "https://d1.cloudfront.net/o.bin"],
    ["Expires without Signature stays", "https://example.com/o.bin?Expires=1", "https://example.com/o.bin?Expires=1"],
    ["no query, fragment removed", "https://example.com/o.bin#sha256=00", "https://example.com/o.bin"],
  ])("%s", (_, url, expected) => {
    expect(keyUrl(url)).toBe(expected);
  });

  it("an empty ignore list keys the whole normalized URL; the default keys S3 re-signings alike", () => {
    expect(keyUrl(S3_A, [])).toBe(normalizeUrl(S3_A));
    expect(cacheKey(S3_A, [])).not.toBe(cacheKey(S3_B, []));
    expect(cacheKey(S3_A)).toBe(cacheKey(S3_B));
    expect(cacheKey(S3_A)).not.toBe(cacheKey(S3_A.replace("versionId=v2", "versionId=v3")));
    expect(keyIgnoresQuery(S3_A)).toBe(true);
    expect(keyIgnoresQuery("https://example.com/o.bin?page=2")).toBe(false);
  });
});

describe("cache.keyIgnoreQuery (policy)", () => {
  it("defaults to the built-in list; [] keys whole URLs; own names add to default; a lone * is refused", () => {
    const keyWith = (v: unknown, url: string) => cacheKey(url, keyIgnoreQuerySchema.parse(v));
    expect(keyWith(undefined, S3_A)).toBe(cacheKey(S3_B));
    expect(keyWith([], S3_A)).toBe(cacheKey(S3_A, []));
    const own = "https://hub.example.com/f.bin?token=abc&rev=1";
    expect(keyWith(["default", "token"], own)).toBe(cacheKey("https://hub.example.com/f.bin?rev=1", []));
    expect(keyWith(["default", "token"], S3_A)).toBe(cacheKey(S3_B));
    expect(keyWith(["token"], S3_A)).toBe(cacheKey(S3_A, []));
    expect(keyIgnoreQuerySchema.safeParse(["*"]).error?.issues[0]?.message).toMatch(/a lone \* is refused/);
  });
});

describe("two pre-signed URLs of one object at the node cache", () => {
  let origin: Origin;
  let cache: RunningCache;
  let root: string;
  let logs: string[];
  let running: LoggedCache | undefined;

  beforeAll(async () => {
    running = await startLoggedCache("keys");
    ({ origin, cache, root, logs } = running);
  });

  afterAll(async () => {
    await running?.stop();
  });

  it("share one cached file, fetched from the origin once; no signature is logged", async () => {
    origin.put("/sas/model.bin", pseudoRandom(256 * 1024, 7));
    const a = `${origin.url("/sas/model.bin")}?sv=2024-05-04&se=2026-01-01&sp=r&sig=FIRSTSIGNATURE`;
    const b = `${origin.url("/sas/model.bin")}?sv=2024-05-04&se=2026-01-02&sp=r&sig=SECONDSIGNATURE`;
    expect(cacheKey(a)).toBe(cacheKey(b));
    const ra = await fetchRaw(cache.url + ensurePath(cacheKey(a), a));
    const rb = await fetchRaw(cache.url + ensurePath(cacheKey(b), b));
    expect([ra.status, rb.status]).toEqual([200, 200]);
    expect(origin.gets("/sas/model.bin")).toBe(1);
    expect(existsSync(join(objectDir(root, cacheKey(a)), OBJECT_FILE))).toBe(true);
    const text = logs.join("\n") + ra.body.toString() + rb.body.toString();
    expect(text).not.toMatch(/FIRSTSIGNATURE|SECONDSIGNATURE|se=2026/);
  });
});

describe("cache.keyIgnoreQuery reaches both sides", () => {
  const url = (token: string) => `https://files.example.com/m.bin?token=${token}&v=1`;
  const pod = (u: string) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "p", annotations: { "cache.io/files": u } },
    spec: { containers: [{ name: "app", image: "app:1" }] },
  });
  function webhookKey(policy: ReturnType<typeof policyFromYaml>, u: string): string {
    const d = decide(pod(u), policy, { namespace: "default", copyOnly: false });
    if (d.action !== "mutate") throw new Error(`not mutated: ${JSON.stringify(d)}`);
    const volume = d.pod.spec!.volumes!.find((v) => v.hostPath)!;
    return volume.hostPath!.path.split("/").pop()!;
  }
  function cacheSideKey(policy: ReturnType<typeof policyFromYaml>, u: string): string {
    const key = cacheKey(normalizeUrl(u), policy.cache.keyIgnoreQuery);
    const q = new URLSearchParams({ url: u }).toString();
    return parseObjectRequest(key, q, cacheOriginRules(policy), undefined, policy.cache.keyIgnoreQuery).key;
  }
  function policyFromYaml(yaml: string) {
    const r = parsePolicy(yaml);
    if (!r.ok) throw new Error(r.errors.join("; "));
    return r.policy;
  }

  it("a parameter the policy names is left out of the key by the webhook and the cache alike", () => {
    const p = policyFromYaml("cache: {keyIgnoreQuery: [default, token]}");
    expect(webhookKey(p, url("a"))).toBe(webhookKey(p, url("b")));
    expect(webhookKey(p, url("a"))).toBe(cacheSideKey(p, url("b")));
    expect(webhookKey(p, url("a"))).toBe(cacheKey("https://files.example.com/m.bin?v=1"));
  });

  it("with the default list the same parameter is part of the key, on both sides", () => {
    const p = policyFromYaml("{}");
    expect(webhookKey(p, url("a"))).not.toBe(webhookKey(p, url("b")));
    expect(webhookKey(p, url("a"))).toBe(cacheSideKey(p, url("a")));
  });

  it("an empty list keys whole URLs, also S3 signatures", () => {
    const p = policyFromYaml("cache: {keyIgnoreQuery: []}");
    expect(webhookKey(p, S3_A)).not.toBe(webhookKey(p, S3_B));
    expect(cacheSideKey(p, S3_A)).toBe(webhookKey(p, S3_A));
  });
});
