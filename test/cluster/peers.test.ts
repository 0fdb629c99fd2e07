// The cluster tier with real processes and real addresses: node caches (the compiled CLI)
// on 127.0.0.2..127.0.0.5 as node-1..node-4, membership from a real EndpointSlice in the
// real API server, identity required (clients are pods with real bound tokens, peers the
// node cache's own ServiceAccount). Every scenario counts what the origin sent and checks
// the sha256 of what every client got.
import { afterAll, beforeAll, expect, it } from "vitest";
import { pseudoRandom, sha256Hex, startOrigin, type Origin } from "../support/origin.js";
import { describeCluster } from "./context.js";
import { PeerCaches } from "./peer-caches.js";

const NODES = 4;

describeCluster("the cluster tier: node caches on their own addresses, peers from EndpointSlices", (c) => {
  let origin: Origin;
  let h: PeerCaches;
  const small = pseudoRandom(1024 * 1024, 3);

  beforeAll(async () => {
    origin = await startOrigin({ ranges: true });
    origin.put("/smoke.bin", small);
    h = await PeerCaches.setup(c, { nodes: NODES, prefix: "peers", peers: "enabled: true", tierFlags: false });
    await h.setMembers([0, 1, 2, 3]);
    await Promise.all(h.nodes.map((_, i) => h.start(i)));
  }, 240_000);

  afterAll(async () => {
    await h?.close();
    await origin?.close();
  });

  it("each node's cache serves its own node's pods (real bound tokens) and refuses a pod of another node", async () => {
    const url = origin.url("/smoke.bin");
    const got = await Promise.all(h.nodes.map((_, i) => h.get(i, url, sha256Hex(small))));
    for (const g of got) expect(g, g.error).toMatchObject({ status: 200, bytes: small.length, sha256: sha256Hex(small) });
    const wrongNode = await h.get(1, url, undefined, { as: 0 });
    expect(wrongNode.status).toBe(401);
    expect(wrongNode.error).toMatch(/bound to a pod on node "node-1", not this node "node-2"/);
  }, 120_000);

  it.todo("4 caches, one client per node, the same cold file at once: the origin sends it once; 1 origin fill, 3 peer fills");
  it.todo("the owner SIGKILLed mid-transfer: every other client gets verified bytes, origin bytes < 2x");
  it.todo("a node joins and leaves the EndpointSlice: ownership moves, the files are still served, no peer errors");
  it.todo("the tier off by policy: each node fills from the origin (origin bytes = N x)");
});
