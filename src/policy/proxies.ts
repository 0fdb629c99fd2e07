// Policy for forward proxies (`cache.proxies`): origin fetches of matching hosts go
// through a site HTTP proxy or a distribution engine's proxy (a Dragonfly dfdaemon).
// The entry whose host pattern is most specific wins (docs/PROXIES.md).
import { z } from "zod";

/** The same syntax as origins.allow: a name, `*.domain`, `*` or an IP address. */
const hostPattern = z
  .string()
  .regex(/^(\*|(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]|[0-9a-f:.]+)$/i, "must be a host name, `*.domain`, `*` or an IP address (no scheme, port or path), as in origins.allow");

/** Stands for this node's IP in a proxy URL: a proxy on every node, such as a dfdaemon (`http://$(NODE_IP):65001`). */
export const NODE_IP = "$(NODE_IP)";

/** `direct` (no proxy: an exception to a wider pattern) or http://host:port. */
const proxyUrl = z.string().superRefine((value, ctx) => {
  const why = proxyUrlProblem(value);
  if (why) ctx.addIssue({ code: "custom", message: why });
});

export function proxyUrlProblem(value: string): string | null {
  if (value === "direct") return null;
  let u: URL;
  try {
    if (!value.includes("://")) throw new Error("no scheme");
    u = new URL(value.replace(NODE_IP, "192.0.2.1"));
  } catch {
    return `"${value}" is not a URL; write http://host:port (for example http://10.0.0.5:3128) or direct`;
  }
  if (u.protocol !== "http:") return `scheme "${u.protocol.replace(/:$/, "")}" is not supported; the proxy is reached over plain http://host:port (origins' TLS goes through it end to end)`;
  if (!/^([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])$/i.test(u.hostname)) return `"${value}": the proxy's host must be a name, an IP address or ${NODE_IP}`;
  if (u.username || u.password) return "credentials in the proxy URL are not supported (they would sit in the ConfigMap); use a proxy that admits the node cache by address";
  if (!/^http:\/\/[^/?#]+:\d+\/?$/i.test(value.replace(NODE_IP, "192.0.2.1"))) return `"${value}" must be exactly http://host:port: an explicit port and no path, query or fragment`;
  return null;
}

export const proxiesSchema = z
  .array(
    z.strictObject({
      /** Host pattern of the origins whose fetches go through this proxy. */
      host: hostPattern,
      /** The proxy, http://host:port (host may be $(NODE_IP)), or `direct`. */
      url: proxyUrl,
      /**
       * How plain-http origins are asked for: `connect` (a CONNECT tunnel to the checked
       * address, like https origins) or `absolute` (an absolute-form GET http://<checked
       * address>:<port>/path, for proxies that cache plain http, such as a dfdaemon).
       */
      http: z.enum(["connect", "absolute"]).default("connect"),
      /** A mounted Secret with keys `username` and `password`, sent as Proxy-Authorization: Basic. */
      secretDir: z.string().regex(/^\/[^\0]*$/, "must be an absolute path (where the Secret with keys username and password is mounted)").optional(),
    }),
  )
  .default([])
  .superRefine((entries, ctx) => {
    const seen = new Map<string, number>();
    entries.forEach((e, i) => {
      if (e.url === "direct" && e.secretDir) ctx.addIssue({ code: "custom", path: [i, "secretDir"], message: "is for a proxy's credentials; a direct entry has no proxy" });
      const key = e.host.toLowerCase().replace(/\.+$/, "");
      const first = seen.get(key);
      if (first !== undefined) ctx.addIssue({ code: "custom", path: [i, "host"], message: `"${e.host}" is also the host of entry ${first}; one entry per pattern (the most specific pattern wins, so there is nothing to order)` });
      else seen.set(key, i);
    });
  });

export type ProxyEntry = z.output<typeof proxiesSchema>[number];
