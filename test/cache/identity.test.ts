// Who may ask the node cache: a real node cache for node "node-a" verifies bearer tokens
// against a real issuer on loopback (OIDC discovery + JWKS over HTTP, read through a
// kubeconfig as the cache reads the API server's) with keys this test holds, and applies
// the caller's namespace rules itself: origin allow-list (also on a hit) and fills in
// flight per namespace. The real API server's own tokens: test/cluster/identity.test.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import type { Policy } from "../../src/policy/schema.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import { startAuthOrigin, writeSecretDir } from "../support/auth-origin.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { kubeconfigFor, mintToken, newKey, startIssuer, type Issuer, type Key, type Mint } from "../support/token-issuer.js";
import { policyOf } from "./policy-of.js";

const NODE = "node-a";
let signing: Key;
const mint = (o: Partial<Mint> = {}) => mintToken({ node: NODE, ...o, key: o.key ?? signing });

let issuer: Issuer;
let origin: Origin;
let dir: string;
let cache: RunningCache;
let policy: Policy;
const bytes = pseudoRandom(64 * 1024, 7);

beforeAll(async () => {
  signing = await newKey("k1");
  issuer = await startIssuer();
  issuer.keys = [signing.jwk];
  origin = await startOrigin();
  origin.put("/a/model.bin", bytes);
  origin.put("/a/other.bin", bytes);
  dir = mkdtempSync(join(tmpdir(), "cache-identity-"));
  // team-a may use the loopback origin; team-b only example.com; team-q has a quota of one fill.
  policy = policyOf(`
origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: required, maxFillsPerNamespace: 1}
namespaces:
  team-b: {originsAllow: ["example.com"]}
cache: {root: ${dir}}
`);
  cache = await startCache({ root: dir, host: "127.0.0.1", port: 0, nodeName: NODE, identityKubeConfig: kubeconfigFor(issuer.url), issuer: { minRefreshMs: 60_000 }, policy: () => policy });
});

afterAll(async () => {
  await cache?.close(100);
  await origin?.close();
  await issuer?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const fileUrl = (p: string) => origin.url(p);
function ask(path: string, token?: string, kind: "ensure" | "objects" = "objects") {
  const url = fileUrl(path);
  const p = kind === "ensure" ? ensurePath(cacheKey(url), url) : objectPath(cacheKey(url), url);
  return fetchRaw(cache.url + p, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
}

describe("the node cache's callers prove who they are", () => {
  it("a valid token of a pod on this node gets the file, on both endpoints", async () => {
    const t = await mint();
    const r = await ask("/a/model.bin", t, "ensure");
    expect(r.status, r.body.toString()).toBe(200);
    const o = await ask("/a/model.bin", t);
    expect(o.status).toBe(200);
    expect(o.body.equals(bytes)).toBe(true);
  });

  const refusals: Array<[string, () => Promise<string | undefined>, RegExp]> = [
    ["missing", async () => undefined, /^error: no Authorization: Bearer header/],
    ["garbage", async () => "not-a-jwt", /^error: the bearer token is not a JWT/],
    ["expired", () => mint({ expIn: -120 }), /^error: the token expired at 20\d\d-/],
    ["for another audience", () => mint({ aud: "https://kubernetes.default.svc" }), /audience is "https:\/\/kubernetes.default.svc", not "cache.io\/node-cache"/],
    ["of a pod on another node", () => mint({ node: "node-b" }), /bound to a pod on node "node-b", not this node "node-a"/],
    ["without a node claim", () => mint({ node: null }), /names no node/],
    ["from another issuer", () => mint({ iss: "https://evil.example" }), /issuer is "https:\/\/evil.example"/],
  ];
  for (const [name, token, message] of refusals) {
    it(`a token ${name} gets 401 with WWW-Authenticate and a one-line reason`, async () => {
      const r = await ask("/a/model.bin", await token());
      expect(r.status).toBe(401);
      expect(r.headers["www-authenticate"]).toMatch(/^Bearer /);
      const text = r.body.toString();
      expect(text).toMatch(message);
      expect(text.trim().split("\n")).toHaveLength(1);
    });
  }

  it("a token signed by a key the issuer does not publish is refused; the keys are re-read at most once per backoff", async () => {
    const rogue = await newKey("rogue");
    const before = issuer.jwksGets;
    for (let i = 0; i < 5; i++) {
      const r = await ask("/a/model.bin", await mint({ key: rogue }));
      expect(r.status).toBe(401);
      expect(r.body.toString()).toMatch(/signature does not verify/);
    }
    expect(issuer.jwksGets - before).toBeLessThanOrEqual(1);
  });

  it("probes and metrics need no token; the metrics count refusals", async () => {
    for (const p of ["/healthz", "/readyz", "/metrics"]) expect((await fetchRaw(cache.url + p)).status).toBe(200);
    expect((await fetchRaw(cache.url + "/metrics")).body.toString()).toMatch(/cache_io_cache_auth_total\{result="refused"\} [1-9]/);
  });

  it("a verified token is remembered: many requests, one signature check each token, no key reads", async () => {
    const t = await mint();
    const before = issuer.jwksGets;
    for (let i = 0; i < 20; i++) expect((await ask("/a/model.bin", t, "ensure")).status).toBe(200);
    expect(issuer.jwksGets).toBe(before);
    expect(cache.cache.access.verifier!.cached).toBeGreaterThan(0);
  });
});

describe("the caller's namespace rules, at the cache", () => {
  it("namespace team-b may not fetch an origin outside its allow-list: 403 naming the namespace and its list", async () => {
    const r = await ask("/a/other.bin", await mint({ ns: "team-b" }));
    expect(r.status).toBe(403);
    expect(r.body.toString()).toMatch(/namespace "team-b" may not use http:\/\/127\.0\.0\.1:\d+\/a\/other\.bin: .*its allow-list: \["example.com"\]/);
    expect(origin.gets("/a/other.bin")).toBe(0);
  });

  it("nor read team-a's cached file by its URL (a hit)", async () => {
    expect((await ask("/a/model.bin", await mint())).status).toBe(200);
    const r = await ask("/a/model.bin", await mint({ ns: "team-b" }));
    expect(r.status).toBe(403);
    expect(r.body.toString()).toMatch(/namespace "team-b"/);
    const e = await ask("/a/model.bin", await mint({ ns: "team-b" }), "ensure");
    expect(e.status).toBe(403);
  });
});

describe("fills in flight per namespace (identity.maxFillsPerNamespace)", () => {
  it("a namespace at its cap gets 503 for a new fill; another namespace and joiners of its fill go on", async () => {
    origin.put("/a/slow.bin", bytes);
    origin.put("/a/next.bin", bytes);
    origin.put("/a/c.bin", bytes);
    origin.cue("/a/slow.bin", { stallMs: 4000 });
    const a = await mint();
    const slow = ask("/a/slow.bin", a);
    const t0 = Date.now();
    while (cache.cache.access.namespaceFills.held("team-a") < 1 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    const refused = await ask("/a/next.bin", a);
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBeDefined();
    expect(refused.body.toString()).toMatch(/namespace "team-a" already has 1 fills .* \(identity\.maxFillsPerNamespace=1\)/);
    // team-c has its own slot; a second team-a caller of the same file joins the fill in flight.
    expect((await ask("/a/c.bin", await mint({ ns: "team-c" }))).status).toBe(200);
    const [first, joined] = await Promise.all([slow, ask("/a/slow.bin", await mint())]);
    expect([first.status, joined.status]).toEqual([200, 200]);
    expect(origin.gets("/a/slow.bin")).toBe(1);
    expect(cache.cache.access.namespaceFills.held("team-a")).toBe(0);
    expect((await ask("/a/next.bin", a)).status).toBe(200);
  }, 30_000);
});

describe("private origins: a credential's namespaces, at the cache (identity.mode optional)", () => {
  it("only its namespaces' callers get a file fetched with it, also on a hit; anonymous callers get 401, public files still", async () => {
    const priv = await startAuthOrigin((h) => h.authorization === "Bearer hf-secret");
    const root = join(dir, "private");
    const c2 = { cache: undefined as RunningCache | undefined };
    try {
      priv.put("/m.bin", bytes);
      writeSecretDir(join(root, "secret"), { token: "hf-secret\n" });
      const p2 = policyOf(`
origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: optional}
credentials: [{name: hf, match: {host: "${priv.host}", scheme: http}, namespaces: [team-a], kind: bearer, secretDir: ${join(root, "secret")}}]
`);
      c2.cache = await startCache({ root: join(root, "cache"), host: "127.0.0.1", port: 0, nodeName: NODE, identityKubeConfig: kubeconfigFor(issuer.url), policy: () => p2 });
      const get = (url: string, token?: string) => fetchRaw(c2.cache!.url + objectPath(cacheKey(url), url), token ? { headers: { authorization: `Bearer ${token}` } } : {});
      const url = priv.url("/m.bin");
      const anon = await get(url);
      expect(anon.status).toBe(401);
      expect(anon.body.toString()).toMatch(/is a private origin \(credential "hf"\)/);
      const other = await get(url, await mint({ ns: "team-c" }));
      expect(other.status).toBe(403);
      expect(priv.seen).toHaveLength(0);
      const ok = await get(url, await mint());
      expect(ok.status, ok.body.toString()).toBe(200);
      expect(ok.body.equals(bytes)).toBe(true);
      const hit = await get(url, await mint({ ns: "team-c" }));
      expect(hit.status).toBe(403);
      expect(hit.body.toString()).toMatch(/namespace "team-c" may not use credential "hf" .*\["team-a"\]/);
      expect(priv.seen).toHaveLength(1);
      expect((await get(fileUrl("/a/model.bin"))).status).toBe(200); // anonymous, public origin: optional mode serves it
    } finally {
      await c2.cache?.close(100);
      await priv.close();
    }
  });
});

describe("identity.mode required without a way to verify", () => {
  it("runs NOT READY, and file requests get 503 saying what to start it with", async () => {
    const root = join(dir, "unverified");
    const c3 = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => policyOf("identity: {mode: required}") });
    try {
      const ready = await fetchRaw(c3.url + "/readyz");
      expect(ready.status).toBe(503);
      expect(ready.body.toString()).toMatch(/identity\.mode is required, but this node cache cannot verify tokens: start it with --node-name/);
      const url = fileUrl("/a/model.bin");
      const r = await fetchRaw(c3.url + objectPath(cacheKey(url), url), { headers: { authorization: `Bearer ${await mint()}` } });
      expect(r.status).toBe(503);
    } finally {
      await c3.close(100);
    }
  });
});

describe("the API server's keys cannot be read", () => {
  it("file requests get 503 with Retry-After, and the keys are not read again on every request", async () => {
    const down = await startIssuer();
    down.down = true;
    const c4 = await startCache({ root: join(dir, "down"), host: "127.0.0.1", port: 0, nodeName: NODE, identityKubeConfig: kubeconfigFor(down.url), policy: () => policy });
    try {
      const url = fileUrl("/a/model.bin");
      for (let i = 0; i < 20; i++) {
        const r = await fetchRaw(c4.url + objectPath(cacheKey(url), url), { headers: { authorization: `Bearer ${await mint()}` } });
        expect(r.status).toBe(503);
        expect(r.headers["retry-after"]).toBe("10");
        expect(r.body.toString()).toMatch(/cannot verify tokens now: the API server's issuer keys could not be read: GET .*openid-configuration: 500/);
      }
      expect(down.discoveryGets).toBeLessThanOrEqual(2);
    } finally {
      await c4.close(100);
      await down.close();
    }
  });
});
