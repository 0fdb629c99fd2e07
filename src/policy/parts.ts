// Policy for parallel ranged fills (`cache.parts`): how a big file is split into parts
// fetched concurrently from an origin that supports ranges.
import { z } from "zod";
import { bytes } from "./fields.js";

export const partsSchema = z.strictObject({
  /** Bytes per ranged GET. */
  size: bytes.default(16 * 2 ** 20),
  /** Parts of one fill fetched at once. */
  concurrency: z.number().int().min(1).max(64).default(8),
  /**
   * Per-connection rate (bytes/s) below which a ranged fill opens more parts: two at
   * first, doubling every 100 ms while each brings less, up to `concurrency`. 0: all at once.
   */
  rampBelow: bytes.default(100_000_000),
  /** Files smaller than this are fetched in one stream. */
  minFileSize: bytes.default(32 * 2 ** 20),
  /** Origin connections per node across all fills (ranged parts and single streams). */
  maxConnections: z.number().int().min(1).max(1024).default(32),
});
