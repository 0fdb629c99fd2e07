// The cluster tier with identity.mode required (tokens of a loopback issuer this test
// holds keys of): a pod's fill on one node goes to the owner with the node cache's own
// ServiceAccount token and the pod's namespace in x-cache-io-on-behalf-of, and the owner
// fills it under that namespace's rules; a peer token the owner refuses (401) counts as
// a failed peer and the node fills from the origin itself.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";
import { kubeconfigFor, mintToken, newKey, startIssuer, type Issuer, type Key } from "../support/token-issuer.js";
import { metric, rankedNames, startNode, StaticPeers, type Node } from "./peers-support.js";
import { policyOf } from "./policy-of.js";

const OWN = { namespace: "cache-io", serviceAccount: "cache-io-cache" };
const policy = policyOf(`
origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: required}
`);
let issuer: Issuer;
let origin: Origin;
let key: Key;
const nodes: Node[] = [];

beforeAll(async () => {
  key = await newKey("k1");
  issuer = await startIssuer();
  issuer.keys = [key.jwk];
  origin = await startOrigin();
});

afterAll(async () => {
  for (const n of nodes) await n.close();
  await origin?.close();
  await issuer?.close();
});

/** Owner and asker for `path`'s key, both verifying tokens of the issuer; the asker's peer token from `peerToken`. */
async function pair(path: string, peerToken: (self: string) => Promise<string>): Promise<{ owner: Node; self: Node; url: string; content: Buffer }> {
  const content = pseudoRandom(2 * 2 ** 20, path.length);
  origin.put(path, content);
  const url = origin.url(path);
  const [ownerName, selfName] = rankedNames(cacheKey(url), 2, path.slice(1, 4));
  const source = new StaticPeers();
  const opts = (nodeName: string) => ({ nodeName, own: OWN, identityKubeConfig: kubeconfigFor(issuer.url) });
  const owner = await startNode(ownerName!, "127.0.0.2", () => policy, source, opts(ownerName!), () => peerToken(ownerName!));
  const self = await startNode(selfName!, "127.0.0.3", () => policy, source, opts(selfName!), () => peerToken(selfName!));
  nodes.push(owner, self);
  source.list = [owner.peer, self.peer];
  return { owner, self, url, content };
}

const podToken = (ns: string, node: string) => mintToken({ ns, sa: "default", node, key });

describe("peer requests carry the cache's own identity and the caller's namespace", () => {
  it("the owner fills for the pod's namespace, named in x-cache-io-on-behalf-of", async () => {
    const own = (node: string) => mintToken({ ns: OWN.namespace, sa: OWN.serviceAccount, node, key });
    const { owner, self, url, content } = await pair("/ida.bin", own);
    const r = await fetchRaw(self.running.url + objectPath(cacheKey(url), url), { headers: { authorization: `Bearer ${await podToken("team-a", self.name)}` } });
    expect(r.status, r.body.toString()).toBe(200);
    expect(sha256Hex(r.body)).toBe(sha256Hex(content));
    expect(await metric(self, "cache_io_cache_fill_sources_total", { source: "peer" })).toBe(1);
    // The owner's fill was the pod's namespace's (its quota and budget share are team-a's).
    expect(owner.running.cache.current(cacheKey(url))?.namespace).toBe("team-a");
    expect(origin.gets("/ida.bin")).toBe(1);
  });

  it("a peer token the owner refuses (not the cache's ServiceAccount) is a failed peer: the node fills from the origin", async () => {
    const notOwn = (node: string) => mintToken({ ns: "team-a", sa: "default", node, key });
    const { owner, self, url } = await pair("/idb.bin", notOwn);
    const r = await fetchRaw(self.running.url + objectPath(cacheKey(url), url), { headers: { authorization: `Bearer ${await podToken("team-a", self.name)}` } });
    expect(r.status, r.body.toString()).toBe(200);
    expect(await metric(self, "cache_io_cache_peer_failures_total", { peer: owner.name, reason: "unauthenticated" })).toBe(1);
    expect(await metric(self, "cache_io_cache_fill_sources_total", { source: "origin" })).toBe(1);
    expect(owner.running.cache.current(cacheKey(url))).toBeUndefined();
  });
});
