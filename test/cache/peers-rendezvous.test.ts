// Owner choice by rendezvous hashing: every node computes the same order, the owner is
// rank 0, removing a peer moves only the keys it owned, keys spread about evenly, and a
// node walks the ranking only up to itself.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { byWeight, peersToAsk, rank, weight } from "../../src/cache/peers/rendezvous.js";

const nodes = (n: number) => Array.from({ length: n }, (_, i) => ({ node: `node-${i}`, address: `10.0.0.${i}`, port: 8586 }));
const keys = (n: number) => Array.from({ length: n }, (_, i) => createHash("sha256").update(`https://origin/${i}`).digest("hex"));

describe("rendezvous hashing", () => {
  it("weighs a node for a key by the first 8 bytes of sha256(node\\nkey)", () => {
    const expected = createHash("sha256").update("node-a\nkey-1").digest().readBigUInt64BE(0);
    expect(weight("key-1", "node-a")).toBe(expected);
  });

  it("ranks the same way whatever order the peers are listed in", () => {
    const peers = nodes(8);
    for (const key of keys(50)) {
      const a = rank(key, peers).map((p) => p.node);
      const b = rank(key, [...peers].reverse()).map((p) => p.node);
      expect(b).toEqual(a);
      const w = a.map((n) => weight(key, n));
      for (let i = 1; i < w.length; i++) expect(w[i - 1]! >= w[i]!).toBe(true);
    }
  });

  it("breaks equal weights by node name", () => {
    const list = [{ node: "b", w: 5n }, { node: "c", w: 9n }, { node: "a", w: 5n }];
    expect(list.sort(byWeight).map((x) => x.node)).toEqual(["c", "a", "b"]);
  });

  it("moves only the removed peer's keys when a peer leaves", () => {
    const peers = nodes(8);
    const gone = peers[3]!;
    const rest = peers.filter((p) => p !== gone);
    let moved = 0;
    for (const key of keys(2000)) {
      const before = rank(key, peers);
      const after = rank(key, rest);
      // The order of the others is unchanged: the removed one is simply left out.
      expect(after.map((p) => p.node)).toEqual(before.filter((p) => p !== gone).map((p) => p.node));
      if (before[0] !== after[0]) {
        moved++;
        expect(before[0]).toBe(gone);
        expect(after[0]).toBe(before[1]);
      }
    }
    expect(moved).toBeGreaterThan(2000 / 8 / 2);
  });

  it.each([4, 8])("spreads owners about evenly over %i peers", (n) => {
    const peers = nodes(n);
    const owned = new Map<string, number>();
    const total = 4000;
    for (const key of keys(total)) {
      const owner = rank(key, peers)[0]!.node;
      owned.set(owner, (owned.get(owner) ?? 0) + 1);
    }
    expect(owned.size).toBe(n);
    for (const count of owned.values()) {
      expect(count).toBeGreaterThan((total / n) * 0.8);
      expect(count).toBeLessThan((total / n) * 1.2);
    }
  });

  it("asks the peers ranked above this node, at most maxTries; the owner asks nobody", () => {
    const peers = nodes(5);
    const key = keys(1)[0]!;
    const order = rank(key, peers).map((p) => p.node);
    expect(peersToAsk(key, peers, order[0]!, 2)).toEqual([]);
    expect(peersToAsk(key, peers, order[1]!, 2).map((p) => p.node)).toEqual([order[0]]);
    expect(peersToAsk(key, peers, order[4]!, 2).map((p) => p.node)).toEqual(order.slice(0, 2));
    expect(peersToAsk(key, peers, order[4]!, 8).map((p) => p.node)).toEqual(order.slice(0, 4));
    // A node not in the list (not ready yet) walks the ranking like any other.
    expect(peersToAsk(key, peers, "elsewhere", 3).map((p) => p.node)).toEqual(order.slice(0, 3));
  });
});
