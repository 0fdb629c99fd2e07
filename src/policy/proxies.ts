// Policy for forward proxies (`cache.proxies`): origin fetches of matching hosts go
// through a site HTTP(S) proxy or a distribution engine's proxy (a Dragonfly dfdaemon).
import { z } from "zod";

export const proxiesSchema = z
  .array(
    z.strictObject({
      /** Host pattern of the origins whose fetches go through this proxy: a name, `*.domain` or `*`. */
      host: z.string().min(1),
      /** The proxy: http://host:port. */
      url: z.string().url(),
    }),
  )
  .default([]);
