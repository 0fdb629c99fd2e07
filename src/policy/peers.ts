// Policy for the cluster tier (`cache.peers`): node caches fetch a missed file from the
// node cache that owns it (rendezvous hashing over the ready peers) before the origin.
import { z } from "zod";
import { bytes, duration } from "./fields.js";

export const peersSchema = z.strictObject({
  /** Off: every node cache fills from the origins itself. */
  enabled: z.boolean().default(true),
  /** The port node caches serve each other on (the pod's, not a hostPort). */
  port: z.number().int().min(1).max(65535).default(8586),
  /** Bytes per second this node cache sends to all peers together; 0 means no limit. */
  maxBandwidth: bytes.default(0),
  /** A peer that sends nothing for this long is given up on (the next one is asked). */
  idleTimeout: duration.default(10_000),
  /** Peers asked for one file, in rendezvous order, before the origin. */
  maxTries: z.number().int().min(1).max(8).default(2),
  /**
   * Peers this node cache streams one file to at the same time; more are pointed to the
   * peers it already serves, so a file spreads as a tree and no node's uplink carries it
   * to every other node.
   */
  fanout: z.number().int().min(1).max(64).default(3),
});
