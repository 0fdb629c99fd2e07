// Whom a miss asks next (docs/PEERS.md, "The ask order"): the rendezvous peers above this
// node, and, depth-first in front of them, the peers a busy answer names (asked "only if
// you have it"), within MAX_HINT_HOPS such asks. A peer that failed is not asked again
// (one whose stream was cut: once more); after a failure the peers that answered busy
// (they hold the file) are asked again first, since the failed one may have freed a
// stream there. Pure.
import type { Peer } from "./types.js";

/** Asks per fill that follow a busy answer (a hint, or a busy peer asked again): a chain of fanout 1 reaches 16 nodes deep. */
export const MAX_HINT_HOPS = 16;

export interface Ask {
  peer: Peer;
  /** Named in a busy answer (or answered busy before): asked only for a file it has or is filling. */
  hinted: boolean;
}

export interface AskOrderOptions {
  self: string;
  /** A node name of this node's membership as a peer (hints are names: never an address a peer gives). */
  lookup(node: string): Peer | undefined;
  maxHops?: number;
}

export class AskOrder {
  readonly #queue: Ask[];
  readonly #dead = new Set<string>();
  /** Peers asked once more after a cut stream. */
  readonly #retried = new Set<string>();
  /** Peers that answered busy, the most recent last. */
  readonly #busy: Peer[] = [];
  readonly #maxHops: number;
  #hops = 0;

  constructor(rendezvous: readonly Peer[], private readonly o: AskOrderOptions) {
    this.#queue = rendezvous.map((peer) => ({ peer, hinted: false }));
    this.#maxHops = o.maxHops ?? MAX_HINT_HOPS;
  }

  /** Hinted asks made so far. */
  get hops(): number {
    return this.#hops;
  }

  /** The next peer to ask, or undefined: none left (the origin). */
  next(): Ask | undefined {
    for (let a = this.#queue.shift(); a; a = this.#queue.shift()) {
      if (this.#dead.has(a.peer.node) || a.peer.node === this.o.self) continue;
      if (a.hinted) {
        if (this.#hops >= this.#maxHops) continue;
        this.#hops++;
      }
      return a;
    }
    return undefined;
  }

  /** `peer` is at its fanout and streams the file to `serving`: ask those next, in that order. */
  busy(peer: Peer, serving: readonly string[]): void {
    this.#remember(peer);
    const asks: Ask[] = [];
    for (const node of serving) {
      const p = node === peer.node ? undefined : this.o.lookup(node);
      if (p && !this.#dead.has(p.node) && p.node !== this.o.self && !asks.some((a) => a.peer.node === p.node)) asks.push({ peer: p, hinted: true });
    }
    this.#unshift(asks);
  }

  /**
   * `ask` failed (network, idle, an error answer): its peer is not asked again, and the
   * busy holders are asked again first. With `retry` (a stream cut or refused: the peer
   * may have dropped a copy it could not finish and started another, or be gone) the peer
   * is asked once more first, the same way; a second failure is final. True when the
   * peer is given up on (what peerFailures counts).
   */
  failed(ask: Ask, retry = false): boolean {
    const { peer } = ask;
    const again = retry && !this.#retried.has(peer.node);
    if (again) this.#retried.add(peer.node);
    else this.#dead.add(peer.node);
    const i = this.#busy.findIndex((p) => p.node === peer.node);
    if (i >= 0) this.#busy.splice(i, 1);
    const holders = [...this.#busy].reverse().map((p) => ({ peer: p, hinted: true }));
    this.#unshift(again ? [ask, ...holders] : holders);
    return !again;
  }

  #remember(peer: Peer): void {
    const i = this.#busy.findIndex((p) => p.node === peer.node);
    if (i >= 0) this.#busy.splice(i, 1);
    this.#busy.push(peer);
  }

  /** Put `asks` in front, each node once in the queue (its later entry goes). */
  #unshift(asks: Ask[]): void {
    if (asks.length === 0) return;
    const nodes = new Set(asks.map((a) => a.peer.node));
    const rest = this.#queue.filter((a) => !(a.hinted && nodes.has(a.peer.node)));
    this.#queue.splice(0, this.#queue.length, ...asks, ...rest);
  }
}
