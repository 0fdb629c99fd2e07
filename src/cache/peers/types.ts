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
} as const;
