// The peer port with the real control plane: a real node cache for one kwok node, with
// its peer listener, verifies REAL bound tokens (TokenRequest with boundObjectRef) of
// its own ServiceAccount projected into a node cache pod on ANOTHER node (a peer), and
// refuses every other token there (a pod's, garbage, none). The caller a peer names in
// x-cache-io-on-behalf-of gets its namespace's rules exactly like a pod: allow-list on a
// miss and on a hit. A peer's token on the main port is just a pod token (its node must
// be this node). Expired and wrong-audience peer tokens: test/cache/identity.test.ts
// (a real API server will not issue a token that expires within 10 minutes).
import { KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import type { Api } from "./api.js";
import { boundToken, scheduledPod } from "./bound-tokens.js";
import { describeCluster } from "./context.js";
import { adminApi, createNamespace, deleteNamespaces, serviceAccountToken, tokenKubeconfig } from "./kube.js";
import { freePort } from "./processes.js";

const NS_SYS = "peer-server-sys";
const NS_A = "peer-server-a";
const NS_B = "peer-server-b";
const CACHE_SA = "cache-io-cache";

describeCluster("the peer port verifies real tokens of the node cache's own ServiceAccount", (c) => {
  let api: Api;
  let origin: Origin;
  let cache: RunningCache;
  let dir: string;
  let policy: Policy;
  const node = c.nodes[0]!;
  const other = c.nodes[1]!;
  const content = pseudoRandom(128 * 1024, 21);
  const pods = new Map<string, V1Pod>();
  const tokens = new Map<string, string>();

  const ask = (base: string, path: string, headers: Record<string, string> = {}) => {
    const url = origin.url(path);
    return fetchRaw(base + objectPath(cacheKey(url), url), { headers });
  };
  const asPeer = (path: string, token: string | undefined, onBehalf?: string) =>
    ask(cache.peerUrl!, path, { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(onBehalf ? { "x-cache-io-on-behalf-of": onBehalf } : {}) });

  beforeAll(async () => {
    api = adminApi(c);
    dir = mkdtempSync(join(tmpdir(), "cache-io-peer-server-"));
    origin = await startOrigin();
    for (const p of ["/a/one.bin", "/a/two.bin", "/a/hit.bin"]) origin.put(p, content);
    for (const ns of [NS_SYS, NS_A, NS_B]) await createNamespace(api, ns);
    await api.must("POST", `/api/v1/namespaces/${NS_SYS}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: CACHE_SA } });
    const own = new KubeConfig();
    own.loadFromFile(tokenKubeconfig(c, await serviceAccountToken(api, NS_SYS, CACHE_SA), NS_SYS));
    const [port, peerPort] = [await freePort(node.ip), await freePort(node.ip)];
    const parsed = parsePolicy(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: required}
namespaces: {${NS_B}: {originsAllow: ["example.com"]}}
cache: {port: ${port}}
`);
    if (!parsed.ok) throw new Error(parsed.errors.join("; "));
    policy = parsed.policy;
    cache = await startCache({
      root: join(dir, "root"), host: node.ip, port, peerPort, nodeName: node.name, identityKubeConfig: own,
      own: { namespace: NS_SYS, serviceAccount: CACHE_SA }, policy: () => policy,
    });
    pods.set("peer-there", await scheduledPod(api, NS_SYS, "cache-there", other.name, CACHE_SA));
    pods.set("peer-here", await scheduledPod(api, NS_SYS, "cache-here", node.name, CACHE_SA));
    pods.set("app-there", await scheduledPod(api, NS_A, "app-there", other.name));
    pods.set("app-here", await scheduledPod(api, NS_A, "app-here", node.name));
    for (const [name, pod] of pods) tokens.set(name, await boundToken(api, pod));
  }, 180_000);

  afterAll(async () => {
    await cache?.close(100);
    await origin?.close();
    if (api) await deleteNamespaces(api, [NS_SYS, NS_A, NS_B]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("a peer's token (its own ServiceAccount, a pod on another node) gets the file for the caller it names", async () => {
    const r = await asPeer("/a/one.bin", tokens.get("peer-there"), `${NS_A}/default`);
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.body.equals(content)).toBe(true);
    expect(origin.gets("/a/one.bin")).toBe(1);
  });

  it("refused with 401 on the peer port: a pod's token (of this node or another), garbage, none", async () => {
    const cases: Array<[string | undefined, RegExp]> = [
      [tokens.get("app-there"), new RegExp(`ServiceAccount ${NS_A}/default, not the node cache's own ${NS_SYS}/${CACHE_SA}: the peer port`)],
      [tokens.get("app-here"), new RegExp(`ServiceAccount ${NS_A}/default, not the node cache's own`)],
      ["garbage", /not a JWT/],
      [await serviceAccountToken(api, NS_SYS, CACHE_SA), /audience/],
      [undefined, /no Authorization: Bearer header/],
    ];
    for (const [token, message] of cases) {
      const r = await asPeer("/a/two.bin", token, `${NS_A}/default`);
      expect(r.status, `${message}: ${r.body.toString()}`).toBe(401);
      expect(r.headers["x-cache-io-error"]).toBe("unauthenticated");
      expect(r.body.toString()).toMatch(message);
    }
    expect(origin.gets("/a/two.bin")).toBe(0);
  });

  it("the named caller's namespace rules apply: its allow-list on a miss and on a hit; no caller named is a 403", async () => {
    const peer = tokens.get("peer-there");
    expect((await asPeer("/a/hit.bin", peer, `${NS_A}/default`)).status).toBe(200);
    for (const path of ["/a/hit.bin", "/a/never.bin"]) {
      const r = await asPeer(path, peer, `${NS_B}/default`);
      expect(r.status, path).toBe(403);
      expect(r.body.toString()).toMatch(new RegExp(`namespace "${NS_B}" may not use .*its allow-list: \\["example.com"\\]`));
    }
    expect(origin.gets("/a/never.bin")).toBe(0);
    const anonymous = await asPeer("/a/hit.bin", peer);
    expect(anonymous.status).toBe(403);
    expect(anonymous.body.toString()).toMatch(/a peer request needs x-cache-io-on-behalf-of/);
    expect(anonymous.headers["x-cache-io-error"]).toBe("unauthenticated");
  });

  it("on the main port a peer's token is a pod token: accepted from a cache pod on this node only", async () => {
    const here = await ask(cache.url, "/a/one.bin", { authorization: `Bearer ${tokens.get("peer-here")}` });
    expect(here.status, here.body.toString()).toBe(200);
    const there = await ask(cache.url, "/a/one.bin", { authorization: `Bearer ${tokens.get("peer-there")}`, "x-cache-io-on-behalf-of": `${NS_A}/default` });
    expect(there.status).toBe(401);
    expect(there.body.toString()).toMatch(new RegExp(`bound to a pod on node "${other.name}", not this node "${node.name}"`));
  });
});
