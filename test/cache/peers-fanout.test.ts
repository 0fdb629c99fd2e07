// The pure parts of the relay tree: how many streams of one file a node serves and whom
// its busy answer names (cache.peers.fanout), the hint header's parse, and the order in
// which a miss asks its peers (rendezvous, hints first, failures, the hop bound).
import { describe, expect, it } from "vitest";
import { AskOrder, MAX_HINT_HOPS, type Ask } from "../../src/cache/peers/ask-order.js";
import { claimedNode, formatServing, MAX_HINTS, parseServing, PeerStreams, whoToHint } from "../../src/cache/peers/fanout.js";
import type { Peer } from "../../src/cache/peers/types.js";

const peer = (node: string): Peer => ({ node, address: `10.0.0.${node.length}`, port: 8586 });
const members = new Set(["a", "b", "c", "d", "e", "f"]);
const isMember = (n: string) => members.has(n);

describe("PeerStreams: at most fanout streams per file", () => {
  it("opens fanout streams of a key, then answers busy naming them; a closed stream frees its place", () => {
    let fanout = 2;
    const s = new PeerStreams(() => fanout);
    const one = s.open("k", "a", isMember);
    const two = s.open("k", "b", isMember);
    expect("stream" in one && "stream" in two).toBe(true);
    expect(s.open("k", "c", isMember)).toEqual({ busy: true, serving: ["a", "b"] });
    expect("stream" in s.open("other", "c", isMember)).toBe(true);
    if (!("close" in one)) throw new Error("unreachable");
    one.close();
    one.close(); // twice is once
    expect(s.count("k")).toBe(1);
    expect("stream" in s.open("k", "c", isMember)).toBe(true);
    fanout = 3; // the policy hot-reloads
    expect("stream" in s.open("k", "d", isMember)).toBe(true);
    expect(s.open("k", "e", isMember)).toMatchObject({ busy: true });
  });

  it("streams of unknown callers count against the fanout but are not named", () => {
    const s = new PeerStreams(() => 2);
    s.open("k", undefined, isMember);
    s.open("k", "zz-not-a-member", isMember);
    expect(s.open("k", "a", isMember)).toEqual({ busy: true, serving: [] });
  });
});

describe("whoToHint", () => {
  it("names the most advanced first (bytes sent to it), each node once, never the caller or a node outside the membership", () => {
    const streams = [
      { node: "a", start: 0, sent: 10 },
      { node: "b", start: 100, sent: 5 },
      { node: "c", start: 0, sent: 50 },
      { node: "a", start: 0, sent: 200 },
      { node: "stranger", start: 0, sent: 999 },
      { node: undefined, start: 0, sent: 999 },
    ];
    expect(whoToHint(streams, undefined, isMember)).toEqual(["a", "c", "b"]);
    expect(whoToHint(streams, "a", isMember)).toEqual(["c", "b"]);
  });

  it("does not rank by the Range a caller asked for (a peer asking from byte 10^12 is not put first)", () => {
    const streams = [
      { node: "a", start: 0, sent: 50 },
      { node: "b", start: 1e12, sent: 0 },
    ];
    expect(whoToHint(streams, undefined, isMember)).toEqual(["a", "b"]);
  });

  it("names at most MAX_HINTS nodes", () => {
    const many = Array.from({ length: 40 }, (_, i) => ({ node: `n${i}`, start: 0, sent: i }));
    const got = whoToHint(many, undefined, () => true);
    expect(got).toHaveLength(MAX_HINTS);
    expect(got[0]).toBe("n39");
  });
});

describe("the busy answer's header", () => {
  it("round-trips node names; drops what is not a node name, duplicates and more than MAX_HINTS", () => {
    expect(parseServing(formatServing(["node-1", "ip-10-0-0-1.ec2.internal"]))).toEqual(["node-1", "ip-10-0-0-1.ec2.internal"]);
    expect(parseServing(undefined)).toBeUndefined();
    expect(parseServing("")).toEqual([]);
    expect(parseServing("a, a,  B, 10.0.0.1:80, http://x/, -bad, b")).toEqual(["a", "b"]);
    expect(parseServing(Array.from({ length: 100 }, (_, i) => `n${i}`).join(","))).toHaveLength(MAX_HINTS);
    expect(parseServing(["a", "b"])).toEqual(["a", "b"]);
  });

  it("takes a claimed node only when it is a node name", () => {
    expect(claimedNode("node-2")).toBe("node-2");
    expect(claimedNode("node-2, node-3")).toBeUndefined();
    expect(claimedNode(["node-2"])).toBeUndefined();
    expect(claimedNode(undefined)).toBeUndefined();
  });
});

describe("AskOrder: whom a miss asks next", () => {
  const lookup = (n: string) => (members.has(n) ? peer(n) : undefined);
  const order = (rendezvous: string[], self = "self", maxHops?: number) => new AskOrder(rendezvous.map(peer), { self, lookup, ...(maxHops ? { maxHops } : {}) });
  const show = (a: Ask | undefined) => (a ? `${a.peer.node}${a.hinted ? "?" : ""}` : "origin");

  it("without busy answers: the rendezvous peers in order, then the origin", () => {
    const o = order(["a", "b"]);
    expect([o.next(), o.next(), o.next()].map(show)).toEqual(["a", "b", "origin"]);
  });

  it("a busy answer's peers come next, depth-first, asked only-if-present; then the rest of the ranking", () => {
    const o = order(["a", "b"]);
    expect(show(o.next())).toBe("a");
    o.busy(peer("a"), ["c", "d"]);
    expect(show(o.next())).toBe("c?");
    o.busy(peer("c"), ["e"]);
    expect([o.next(), o.next(), o.next(), o.next()].map(show)).toEqual(["e?", "d?", "b", "origin"]);
  });

  it("never names itself, the busy peer, a node outside the membership, or a dead peer", () => {
    const o = order(["a", "b"], "c");
    expect(show(o.next())).toBe("a");
    expect(o.failed({ peer: peer("b"), hinted: false })).toBe(true);
    o.busy(peer("a"), ["a", "c", "b", "stranger", "d", "d"]);
    expect([o.next(), o.next()].map(show)).toEqual(["d?", "origin"]);
  });

  it("after a failure, the peers that answered busy are asked again (the nearest first): the failed one's stream there is free now", () => {
    const o = order(["a"]);
    o.next();
    o.busy(peer("a"), ["b"]);
    expect(show(o.next())).toBe("b?");
    o.busy(peer("b"), ["c"]);
    expect(show(o.next())).toBe("c?");
    o.failed({ peer: peer("c"), hinted: true }); // c served, then failed mid-transfer
    expect([o.next(), o.next(), o.next()].map(show)).toEqual(["b?", "a?", "origin"]);
  });

  it("a peer whose stream was cut is asked once more first (it may have started its copy over), then given up on", () => {
    const o = order(["a", "b"]);
    const a = o.next()!;
    expect(o.failed(a, true)).toBe(false);
    const again = o.next()!;
    expect(show(again)).toBe("a");
    expect(o.failed(again, true)).toBe(true);
    expect([o.next(), o.next()].map(show)).toEqual(["b", "origin"]);
  });

  it("stops following hints after maxHops (a peer that keeps answering busy cannot hold a fill)", () => {
    const o = order(["a"], "self", 3);
    const seen: string[] = [];
    for (let a = o.next(); a; a = o.next()) {
      seen.push(show(a));
      o.busy(a.peer, ["b", "c"]);
    }
    expect(seen).toEqual(["a", "b?", "c?", "b?"]);
    expect(o.hops).toBe(3);
    expect(MAX_HINT_HOPS).toBeGreaterThanOrEqual(8);
  });

  it("a busy answer naming only hostile entries asks the next peer of the ranking", () => {
    const o = order(["a", "b"]);
    o.next();
    o.busy(peer("a"), parseServing("10.0.0.9, 169.254.169.254, localhost:1")!);
    expect(show(o.next())).toBe("b");
  });
});
