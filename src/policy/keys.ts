// Policy for cache keys (`cache.keyIgnoreQuery`): which query parameters are left out of
// a file's key, so a pre-signed URL's signature and expiry do not make a second copy of
// the same object. The webhook and the node cache both pass the result to cacheKey().
import { z } from "zod";
import { DEFAULT_KEY_IGNORE, type KeyIgnore } from "../shared/protocol.js";

/** `default` (the built-in list), a parameter name, or a prefix ending in `*`. */
const entry = z
  .string()
  .regex(/^(default|[A-Za-z0-9._~-]+\*?)$/, "must be default, a query parameter name, or a prefix ending in * (such as X-Amz-*; a lone * is refused)");

export const keyIgnoreQuerySchema = z
  .array(entry)
  .default(["default"])
  .transform((list): KeyIgnore => {
    const own = list.filter((e) => e !== "default");
    return [...(list.includes("default") ? DEFAULT_KEY_IGNORE : []), ...(own.length ? [{ params: own }] : [])];
  });
