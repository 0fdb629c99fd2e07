// Owner choice for the cluster tier: rendezvous (highest-random-weight) hashing. Every
// node ranks the ready peers for a key the same way, so they agree on the owner (rank 0)
// and on who comes next when it is gone; a peer that leaves moves only its own keys.
import { createHash } from "node:crypto";
import type { Peer } from "./types.js";

/** The weight of `node` for `key`: the first 8 bytes (big-endian) of sha256("<node>\n<key>"). */
export function weight(key: string, node: string): bigint {
  return createHash("sha256").update(`${node}\n${key}`).digest().readBigUInt64BE(0);
}

/** `peers` ranked for `key`: weight descending, ties by node name (a new array). */
export function rank<P extends Pick<Peer, "node">>(key: string, peers: readonly P[]): P[] {
  const weighted = peers.map((p) => ({ node: p.node, w: weight(key, p.node), p }));
  return weighted.sort(byWeight).map((x) => x.p);
}

/** Rank order: the higher weight first; equal weights by node name. */
export function byWeight(a: { node: string; w: bigint }, b: { node: string; w: bigint }): number {
  if (a.w !== b.w) return a.w > b.w ? -1 : 1;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

/**
 * The peers node `self` asks for `key`, in order: the ranking up to (not including)
 * `self`, at most `maxTries`. Empty when `self` is the owner: it fills from the origin.
 */
export function peersToAsk<P extends Pick<Peer, "node">>(key: string, peers: readonly P[], self: string, maxTries: number): P[] {
  const out: P[] = [];
  for (const p of rank(key, peers)) {
    if (p.node === self || out.length >= maxTries) break;
    out.push(p);
  }
  return out;
}
