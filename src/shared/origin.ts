// Origin rules shared by the webhook (which can only see the URL) and the node cache
// (which also checks every address a name resolves to). Pure: no DNS here.
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

export interface OriginRules {
  /** Host patterns: `example.com`, `*.example.com` (any subdomain), or `*` (any host). */
  allow: string[];
  /** Schemes allowed, e.g. ["https", "http"]. */
  schemes: string[];
  /** Hosts or CIDRs that may be private, loopback or link-local (an in-cluster origin). */
  allowPrivate: string[];
}

/** Address ranges never fetched unless `allowPrivate` names them. */
const FORBIDDEN_RANGES = new Set([
  "unspecified", "broadcast", "multicast", "linkLocal", "loopback", "private",
  "reserved", "uniqueLocal", "carrierGradeNat", "ipv4Mapped", "rfc6145", "rfc6052",
  "6to4", "teredo", "benchmarking", "amt", "as112", "as112v6", "orchid2", "droneRemoteIdProtocolEntityTags",
]);

function hostMatches(host: string, pattern: string): boolean {
  const p = pattern.toLowerCase();
  if (p === "*") return true;
  if (p.startsWith("*.")) return host.endsWith(p.slice(1)) && host.length > p.length - 1;
  return host === p;
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Whether `allowPrivate` names this host or an address inside one of its CIDRs. */
export function privateAllowed(hostOrIp: string, rules: OriginRules): boolean {
  const host = stripBrackets(hostOrIp.toLowerCase());
  for (const entry of rules.allowPrivate) {
    if (entry.includes("/")) {
      if (!isIP(host)) continue;
      try {
        const [range, bits] = ipaddr.parseCIDR(entry);
        const addr = ipaddr.process(host);
        if (addr.kind() === range.kind() && addr.match(range, bits)) return true;
      } catch {
        continue;
      }
    } else if (stripBrackets(entry.toLowerCase()) === host) {
      return true;
    }
  }
  return false;
}

/** Why an address may not be fetched, or null when it may. */
export function forbiddenAddress(ip: string, rules: OriginRules, hostname?: string): string | null {
  const bare = stripBrackets(ip);
  if (!isIP(bare)) return `"${ip}" is not an IP address`;
  const range = ipaddr.process(bare).range();
  if (!FORBIDDEN_RANGES.has(range)) return null;
  if (privateAllowed(bare, rules) || (hostname !== undefined && privateAllowed(hostname, rules))) return null;
  return `address ${bare} is ${range} (loopback, link-local, metadata and private addresses are refused unless the policy's origins.allowPrivate names them)`;
}

/**
 * Why this URL may not be fetched, judged from the URL alone (scheme, host
 * allow-list, literal addresses), or null when it may.
 */
export function checkOriginUrl(url: URL, rules: OriginRules): string | null {
  const scheme = url.protocol.replace(/:$/, "");
  if (!rules.schemes.includes(scheme)) {
    return `scheme "${scheme}" is not allowed (allowed: ${rules.schemes.join(", ")})`;
  }
  if (url.username || url.password) return "credentials in the URL are not allowed";
  const host = stripBrackets(url.hostname.toLowerCase());
  if (!host) return "the URL has no host";
  if (!rules.allow.some((p) => hostMatches(host, p))) {
    return `host "${host}" is not in the policy's origin allow-list (origins.allow: ${rules.allow.join(", ") || "empty"})`;
  }
  // URL parsing has already turned hex/octal/short IPv4 forms into dotted decimal, so
  // net.isIP (native, and far cheaper than ipaddr's parser on every host name) is exact.
  if (isIP(host)) return forbiddenAddress(host, rules);
  if (host === "localhost" || host.endsWith(".localhost")) {
    return privateAllowed(host, rules) ? null : `host "${host}" is loopback; refused unless origins.allowPrivate names it`;
  }
  if (host === "metadata.google.internal" || host === "metadata") {
    return privateAllowed(host, rules) ? null : `host "${host}" is a cloud metadata service; refused`;
  }
  return null;
}
