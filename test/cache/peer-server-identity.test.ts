// Who may ask on the peer port, with tokens of a loopback issuer this test holds keys of
// (the real API server's: test/cluster/peer-server.test.ts): only the node cache's own
// ServiceAccount, bound to a pod on any node, unexpired, for the cache's audience; the
// caller it names in x-cache-io-on-behalf-of gets that namespace's rules, its fill
// quota (identity.maxFillsPerNamespace) and its credentials; with identity.mode optional
// a peer without a token is anonymous, and the header it sends is not trusted.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { startAuthOrigin, writeSecretDir, type AuthOrigin } from "../support/auth-origin.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { kubeconfigFor, mintToken, newKey, startIssuer, type Issuer, type Key, type Mint } from "../support/token-issuer.js";
import { policyOf } from "./policy-of.js";

const NODE = "node-a";
const OWN = { namespace: "cache-io", serviceAccount: "cache-io-cache" };
let key: Key;
/** A peer's token: the cache's own ServiceAccount, bound to a node cache pod on another node. */
const peerToken = (o: Partial<Mint> = {}) => mintToken({ ns: OWN.namespace, sa: OWN.serviceAccount, node: "node-z", ...o, key: o.key ?? key });

let issuer: Issuer;
let origin: Origin;
let priv: AuthOrigin;
let dir: string;
const caches: RunningCache[] = [];
const bytes = pseudoRandom(64 * 1024, 9);

async function cacheWith(mode: "required" | "optional"): Promise<RunningCache> {
  const root = join(dir, mode);
  writeSecretDir(join(root, "secret"), { token: "hf-secret\n" });
  const policy = policyOf(`
origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: ${mode}, maxFillsPerNamespace: 1}
credentials: [{name: hf, match: {host: "${priv.host}", scheme: http}, namespaces: [team-a], kind: bearer, secretDir: ${join(root, "secret")}}]
cache: {prewarm: ["${origin.url("/warm.bin")}"]}
`);
  const c = await startCache({ root: join(root, "cache"), host: "127.0.0.1", port: 0, peerPort: 0, own: OWN, nodeName: NODE, identityKubeConfig: kubeconfigFor(issuer.url), policy: () => policy });
  caches.push(c);
  return c;
}

let strict: RunningCache;
let lax: RunningCache;

beforeAll(async () => {
  key = await newKey("k1");
  issuer = await startIssuer();
  issuer.keys = [key.jwk];
  origin = await startOrigin();
  for (const p of ["/a.bin", "/slow.bin", "/next.bin", "/warm.bin", "/cold.bin"]) origin.put(p, bytes);
  priv = await startAuthOrigin((h) => h.authorization === "Bearer hf-secret");
  priv.put("/m.bin", bytes);
  dir = mkdtempSync(join(tmpdir(), "cache-peer-identity-"));
  strict = await cacheWith("required");
  lax = await cacheWith("optional");
});

afterAll(async () => {
  await Promise.all(caches.map((c) => c.close(100)));
  await origin?.close();
  await priv?.close();
  await issuer?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function get(c: RunningCache, url: string, headers: Record<string, string>, port: "peer" | "main" = "peer") {
  return fetchRaw((port === "peer" ? c.peerUrl! : c.url) + objectPath(cacheKey(url), url), { headers });
}
const as = (token: string, onBehalf?: string) => ({ authorization: `Bearer ${token}`, ...(onBehalf ? { "x-cache-io-on-behalf-of": onBehalf } : {}) });

describe("peer tokens on the peer port (identity.mode required)", () => {
  it("the cache's own ServiceAccount on another node, for a named caller: the file", async () => {
    const r = await get(strict, origin.url("/a.bin"), as(await peerToken(), "team-a/default"));
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.body.equals(bytes)).toBe(true);
  });

  it("a peer naming no caller gets only the policy's pre-warm files (its own pre-warm), anything else 403", async () => {
    const warm = await get(strict, origin.url("/warm.bin"), as(await peerToken()));
    expect(warm.status, warm.body.toString()).toBe(200);
    expect(warm.body.equals(bytes)).toBe(true);
    const cold = await get(strict, origin.url("/cold.bin"), as(await peerToken()));
    expect(cold.status).toBe(403);
    expect(cold.body.toString()).toMatch(/needs x-cache-io-on-behalf-of.*cache\.prewarm/);
  });

  const refusals: Array<[string, () => Promise<string>, RegExp]> = [
    ["expired", () => peerToken({ expIn: -120 }), /the token expired at 20\d\d-/],
    ["for another audience", () => peerToken({ aud: "https://kubernetes.default.svc" }), /audience is "https:\/\/kubernetes.default.svc"/],
    ["bound to no pod (no node claim)", () => peerToken({ node: null }), /names no node/],
    ["of another ServiceAccount of the cache's namespace", () => peerToken({ sa: "default" }), /ServiceAccount cache-io\/default, not the node cache's own cache-io\/cache-io-cache/],
    ["of a pod (this node)", () => mintToken({ key, node: NODE }), /ServiceAccount team-a\/default, not the node cache's own/],
  ];
  for (const [name, token, message] of refusals) {
    it(`a token ${name} gets 401`, async () => {
      const r = await get(strict, origin.url("/a.bin"), as(await token(), "team-a/default"));
      expect(r.status).toBe(401);
      expect(r.headers["www-authenticate"]).toMatch(/^Bearer /);
      expect(r.body.toString()).toMatch(message);
    });
  }

  it("the named namespace's fill quota counts the peer's fills", async () => {
    origin.cue("/slow.bin", { stallMs: 3000 });
    const pod = await mintToken({ key, node: NODE });
    const slow = get(strict, origin.url("/slow.bin"), as(pod), "main");
    const t0 = Date.now();
    while (strict.cache.access.namespaceFills.held("team-a") < 1 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    const refused = await get(strict, origin.url("/next.bin"), as(await peerToken(), "team-a/default"));
    expect(refused.status).toBe(503);
    expect(refused.body.toString()).toMatch(/namespace "team-a" already has 1 fills .*identity\.maxFillsPerNamespace=1/);
    expect((await get(strict, origin.url("/next.bin"), as(await peerToken(), "team-c/default"))).status).toBe(200);
    expect((await slow).status).toBe(200);
  });

  it("the named namespace's credentials: only its namespaces get a private origin's file, on a miss and a hit", async () => {
    const url = priv.url("/m.bin");
    const other = await get(strict, url, as(await peerToken(), "team-c/default"));
    expect(other.status).toBe(403);
    expect(priv.seen).toHaveLength(0);
    const ok = await get(strict, url, as(await peerToken(), "team-a/default"));
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(ok.body.equals(bytes)).toBe(true);
    const hit = await get(strict, url, as(await peerToken(), "team-c/default"));
    expect(hit.status).toBe(403);
    expect(hit.body.toString()).toMatch(/namespace "team-c" may not use credential "hf"/);
  });
});

describe("identity.mode optional on the peer port", () => {
  it("a peer without a token is anonymous: public files, no private ones whatever caller it names", async () => {
    expect((await get(lax, origin.url("/a.bin"), {})).status).toBe(200);
    const r = await get(lax, priv.url("/m.bin"), { "x-cache-io-on-behalf-of": "team-a/default" });
    expect(r.status).toBe(401);
    expect(r.body.toString()).toMatch(/is a private origin \(credential "hf"\)/);
  });

  it("a peer with a token is verified, and then acts for the caller it names", async () => {
    expect((await get(lax, priv.url("/m.bin"), as("garbage", "team-a/default"))).status).toBe(401);
    const r = await get(lax, priv.url("/m.bin"), as(await peerToken(), "team-a/default"));
    expect(r.status, r.body.toString()).toBe(200);
  });
});
