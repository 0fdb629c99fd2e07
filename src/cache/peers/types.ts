// The seams of the cluster tier: who the peers are (membership from the API), and what
// a node cache needs to ask them (its own node name and ServiceAccount token).
export interface Peer {
  /** The peer's node name (EndpointSlice endpoint nodeName): what rendezvous hashing ranks. */
  node: string;
  /** Where the peer's cache listens for peers (cache.peers.port). */
  address: string;
  port: number;
}

export interface PeerSource {
  /** The ready peers now, this node's own cache included when it is ready. */
  peers(): readonly Peer[];
  stop(): void;
}

export interface PeerSettings {
  /** This node's name (the caller never asks itself). */
  self: string;
  source: PeerSource;
  /** The node cache's own ServiceAccount token (audience cache.io), sent to peers as Bearer. */
  token(): Promise<string>;
}

/** Headers of peer requests and responses (docs/PEERS.md). */
export const PEER_HEADERS = {
  /** On a peer request: the caller the fill is for, "<namespace>/<serviceaccount>"; the owner applies that namespace's rules. */
  onBehalfOf: "x-cache-io-on-behalf-of",
  /** On a peer response: the origin's validators of the bytes sent, JSON {"size","etag","lastModified"}. */
  originVersion: "x-cache-io-origin-version",
  /** On a resumed peer request (with Range): the origin version the bytes so far belong to; a peer with another version answers 200 with the whole file. */
  ifOriginVersion: "x-cache-io-if-origin-version",
  /**
   * On a peer's 503 busy answer (cache.peers.fanout reached): the nodes this cache streams
   * the file to now, the most advanced first, comma-separated (at most MAX_HINTS); each
   * has a growing copy to ask instead.
   */
  serving: "x-cache-io-peers-serving",
  /** On a peer request for a node named in a busy answer: "1": serve only a file you have or are filling, else 404 not_present (never start a fill). */
  ifPresent: "x-cache-io-if-present",
  /**
   * On a peer request: the asking node's name. Used for hints only when no verified token
   * names the node (identity.mode off, or no token): then anyone may claim anything anyway.
   */
  node: "x-cache-io-node",
} as const;
