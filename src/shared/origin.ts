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

/**
 * Only ordinary public unicast is fetched: every range ipaddr.js names (loopback,
 * private, link-local, CGNAT, documentation, NAT64, 6to4, multicast, and any it adds
 * in a later version) is refused unless `allowPrivate` names it.
 */
const PUBLIC_RANGE = "unicast";

/** `example.com.` and `example.com` are one name to DNS; compare without the final dot. */
function bareName(host: string): string {
  return stripBrackets(host.toLowerCase()).replace(/\.+$/, "");
}

function sameAddress(a: string, b: string): boolean {
  try {
    return ipaddr.parse(a).toNormalizedString() === ipaddr.parse(b).toNormalizedString();
  } catch {
    return false;
  }
}

/** `host` is a bare name (no brackets, no final dot); IPv6 patterns may be bracketed. */
function hostMatches(host: string, pattern: string): boolean {
  const p = bareName(pattern);
  if (p === "*") return true;
  if (p.startsWith("*.")) return host.endsWith(p.slice(1)) && host.length > p.length - 1;
  if (p === host) return true;
  return isIP(p) !== 0 && isIP(host) !== 0 && sameAddress(p, host);
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** Whether `allowPrivate` names this host or an address inside one of its CIDRs. */
export function privateAllowed(hostOrIp: string, rules: OriginRules): boolean {
  const host = bareName(hostOrIp);
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
    } else if (hostMatches(host, entry) && !entry.includes("*")) {
      return true;
    }
  }
  return false;
}

/** ipaddr.js's name for the address's range; ::/96 (IPv4-compatible, deprecated) it calls unicast. */
function rangeOf(bare: string): string {
  const addr = ipaddr.process(bare);
  const range = addr.range();
  if (range === PUBLIC_RANGE && addr.kind() === "ipv6" && (addr as ipaddr.IPv6).parts.slice(0, 6).every((p) => p === 0)) return "ipv4Compatible";
  return range;
}

/** Why an address may not be fetched, or null when it may. */
export function forbiddenAddress(ip: string, rules: OriginRules, hostname?: string): string | null {
  const bare = stripBrackets(ip);
  if (!isIP(bare)) return `"${ip}" is not an IP address`;
  const range = rangeOf(bare);
  if (range === PUBLIC_RANGE) return null;
  if (privateAllowed(bare, rules) || (hostname !== undefined && privateAllowed(hostname, rules))) return null;
  return `address ${bare} is ${range}, not public unicast (loopback, link-local, metadata, private and special-purpose addresses are refused unless the policy's origins.allowPrivate names them)`;
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
  const host = bareName(url.hostname);
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
