// When a private origin refuses: a real node cache (identity required, callers of
// namespace "ml" with tokens of the loopback issuer, test/support/token-issuer.ts) fills
// from a real bearer-token origin (test/support/auth-origin.ts) and from versitygw, an S3
// gateway that verifies SigV4, with credentials from Secret directories written as the
// kubelet writes them. A wrong token, a wrong S3 key, a URL no credential matches, and a
// credential revoked (its Secret file changed) before a revalidation: the /v1/ensure
// answer (what the init container gets) carries the origin's status, the credential's
// name and what to check; cache_io_cache_origin_auth_failures_total{credential} counts it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { cacheKey, ensurePath } from "../../src/shared/protocol.js";
import { startAuthOrigin, writeSecretDir, type AuthOrigin } from "../support/auth-origin.js";
import { fetchRaw, pseudoRandom } from "../support/origin.js";
import { startS3, type S3Server } from "../support/s3/versitygw.js";
import { kubeconfigFor, mintToken, newKey, startIssuer, type Issuer, type Key } from "../support/token-issuer.js";
import { policyOf } from "./policy-of.js";

const NODE = "node-a";
const GOOD = "hf_good_token";
const REVALIDATE_MS = 1000;

let issuer: Issuer;
let key: Key;
let origin: AuthOrigin;
let s3: S3Server;
let dir: string;
let cache: RunningCache;
const body = pseudoRandom(64 * 1024, 3);

beforeAll(async () => {
  key = await newKey("k1");
  issuer = await startIssuer();
  issuer.keys = [key.jwk];
  origin = await startAuthOrigin((h) => h.authorization === `Bearer ${GOOD}`);
  for (const p of ["/models/m.bin", "/wrong/m.bin", "/open/m.bin"]) origin.put(p, body);
  s3 = await startS3();
  s3.put("bucket", "m.bin", body);
  dir = mkdtempSync(join(tmpdir(), "cache-origin-auth-"));
  writeSecretDir(join(dir, "hf"), { token: GOOD });
  writeSecretDir(join(dir, "hf-wrong"), { token: "hf_not_the_token" });
  writeSecretDir(join(dir, "s3-wrong"), { "access-key-id": s3.accessKeyId, "secret-access-key": "not-the-secret" });
  const policy = policyOf(`
origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: required}
cache: {originRetries: 0, revalidateAfter: ${REVALIDATE_MS}ms, maxStale: 0s, root: ${dir}/root}
credentials:
  - {name: hf, kind: bearer, match: {host: "${origin.host}", pathPrefix: /models/, scheme: http}, namespaces: [ml], secretDir: ${dir}/hf}
  - {name: hf-wrong, kind: bearer, match: {host: "${origin.host}", pathPrefix: /wrong/, scheme: http}, namespaces: [ml], secretDir: ${dir}/hf-wrong}
  - {name: s3-wrong, kind: s3, region: ${s3.region}, match: {host: "${s3.host}", pathPrefix: /bucket/, scheme: http}, namespaces: [ml], secretDir: ${dir}/s3-wrong}
`);
  cache = await startCache({ root: join(dir, "root"), host: "127.0.0.1", port: 0, nodeName: NODE, identityKubeConfig: kubeconfigFor(issuer.url), policy: () => policy });
}, 600_000);

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  await s3?.close();
  await issuer?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The init container's request for `url`, with a token of a pod in namespace ml. */
async function ensure(url: string) {
  const token = await mintToken({ ns: "ml", node: NODE, key });
  const r = await fetchRaw(cache.url + ensurePath(cacheKey(url), url), { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, originStatus: r.headers["x-cache-io-origin-status"], text: r.body.toString() };
}

async function authFailures(credential: string): Promise<number> {
  const text = (await fetchRaw(`${cache.url}/metrics`)).body.toString();
  const m = new RegExp(`^cache_io_cache_origin_auth_failures_total\\{credential="${credential}"\\} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

describe("an origin's 401/403 to a fill names the credential and what to check", () => {
  it("a wrong bearer token: the origin's 403, the credential's name and the hint, counted", async () => {
    const r = await ensure(origin.url("/wrong/m.bin"));
    expect(r.status).toBe(502);
    expect(r.originStatus).toBe("403");
    expect(r.text).toMatch(/^error: origin answered 403 Forbidden for http:\/\/127\.0\.0\.1:\d+\/wrong\/m\.bin.*; sent with credential hf-wrong: the credential was refused: it may be wrong, revoked or expired, or lack read access to this object; fix the Secret or role it names/);
    expect(r.text).not.toContain("hf_not_the_token");
    expect(await authFailures("hf-wrong")).toBe(1);
  });

  it("S3 with a wrong secret key: versitygw's 403, the credential's name and the hint, counted", async () => {
    const r = await ensure(`${s3.endpoint}/bucket/m.bin`);
    expect(r.status).toBe(502);
    expect(r.originStatus).toBe("403");
    expect(r.text).toMatch(/^error: origin answered 403 Forbidden for http:\/\/127\.0\.0\.1:\d+\/bucket\/m\.bin.*; sent with credential s3-wrong: the credential was refused/);
    expect(r.text).not.toContain("not-the-secret");
    expect(await authFailures("s3-wrong")).toBe(1);
  });

  it("a URL no credential matches: the origin's 401 and how to add one, counted as credential none", async () => {
    const r = await ensure(origin.url("/open/m.bin"));
    expect(r.status).toBe(502);
    expect(r.originStatus).toBe("401");
    expect(r.text).toMatch(/origin answered 401 Unauthorized .*; no credential in the policy matches this origin and path: add one under credentials:/);
    expect(await authFailures("none")).toBe(1);
  });

  it("a credential revoked before a revalidation (its Secret file changed): reported the same way, and the stale copy is not served", async () => {
    const url = origin.url("/models/m.bin");
    const first = await ensure(url);
    expect(first.status, first.text).toBe(200);
    writeSecretDir(join(dir, "hf"), { token: "hf_revoked_token" });
    await sleep(REVALIDATE_MS + 1200); // past revalidateAfter, and past the once-a-second Secret re-read
    const r = await ensure(url);
    expect(r.status).toBe(502);
    expect(r.originStatus).toBe("403");
    expect(r.text).toMatch(/origin answered 403 Forbidden for http:\/\/127\.0\.0\.1:\d+\/models\/m\.bin.*; sent with credential hf: the credential was refused: it may be wrong, revoked or expired.*the cached copy is not served/);
    expect(origin.seen.at(-1)?.headers.authorization).toBe("Bearer hf_revoked_token"); // the changed Secret was read
    expect(await authFailures("hf")).toBe(1);
  });
});
