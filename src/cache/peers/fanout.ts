// The relay tree of the cluster tier (docs/PEERS.md, "Fanout"): a node cache streams one
// file to at most cache.peers.fanout peers at once; one more is answered busy with the
// peers it serves now (their node names, the most advanced first), which it asks instead.
// Pure: the per-key stream registry, who to hint, and the hint header's format and parse.

/** x-cache-io-error of the 404 a named peer (x-cache-io-if-present) answers when it has no copy and is not filling one. */
export const NOT_PRESENT = "not_present";
/** Node names in one busy answer at most (the asker tries them in order; more add nothing but header bytes). */
export const MAX_HINTS = 8;
/** A node name as Kubernetes allows it (a DNS subdomain); anything else in a hint is dropped. */
const NODE_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** One stream of a file to a peer, while its response is open. */
export interface PeerStream {
  /** The caller's node, when known (a verified peer token, or the claim of an unauthenticated peer). */
  readonly node: string | undefined;
  /** Bytes handed to the socket so far. */
  sent: number;
}

export type Opened = { stream: PeerStream; close(): void } | { busy: true; serving: string[] };

/** The open peer streams of each key, at most `fanout()` per key. */
export class PeerStreams {
  readonly #byKey = new Map<string, Set<PeerStream>>();

  constructor(private readonly fanout: () => number) {}

  /** A stream of `key` for `node`; or busy, with the peers to ask instead (of those `isMember` knows, never the caller). */
  open(key: string, node: string | undefined, isMember: (node: string) => boolean): Opened {
    let set = this.#byKey.get(key);
    if (set && set.size >= this.fanout()) return { busy: true, serving: whoToHint(set, node, isMember) };
    if (!set) this.#byKey.set(key, (set = new Set()));
    const stream: PeerStream = { node, sent: 0 };
    set.add(stream);
    let closed = false;
    return {
      stream,
      close: () => {
        if (closed) return;
        closed = true;
        set.delete(stream);
        if (set.size === 0 && this.#byKey.get(key) === set) this.#byKey.delete(key);
      },
    };
  }

  /** Open streams of `key` (tests, metrics). */
  count(key: string): number {
    return this.#byKey.get(key)?.size ?? 0;
  }
}

/**
 * Whom a busy answer names: the nodes of `streams` that are peers of this node's
 * membership, not the caller itself, each once, the most advanced (bytes sent) first,
 * at most MAX_HINTS. A stream of an unknown node is not hinted (nobody could ask it).
 */
export function whoToHint(streams: Iterable<PeerStream>, caller: string | undefined, isMember: (node: string) => boolean): string[] {
  const best = new Map<string, number>();
  for (const s of streams) {
    if (s.node === undefined || s.node === caller || !isMember(s.node)) continue;
    best.set(s.node, Math.max(best.get(s.node) ?? 0, s.sent)); // not where its Range starts: the caller chose that, it proves nothing
  }
  return [...best.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, MAX_HINTS)
    .map(([node]) => node);
}

/** The x-cache-io-peers-serving value of `nodes`. */
export function formatServing(nodes: readonly string[]): string {
  return nodes.join(", ");
}

/**
 * The node names of a busy answer's x-cache-io-peers-serving (undefined: the header is
 * absent, an answer of a peer without the tree). Names that are not node names are
 * dropped, duplicates too; at most MAX_HINTS are kept. Names, never addresses: the asker
 * looks each up in its own membership.
 */
export function parseServing(raw: string | string[] | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const out: string[] = [];
  for (const part of (Array.isArray(raw) ? raw.join(",") : raw).split(",", 4 * MAX_HINTS)) {
    const name = part.trim();
    if (NODE_NAME.test(name) && !out.includes(name)) out.push(name);
    if (out.length >= MAX_HINTS) break;
  }
  return out;
}

/** A node name claimed in x-cache-io-node, when it is one. */
export function claimedNode(raw: string | string[] | undefined): string | undefined {
  return typeof raw === "string" && NODE_NAME.test(raw) ? raw : undefined;
}
