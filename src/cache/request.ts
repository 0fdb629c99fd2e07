// Parse and check the key and query of /v1/ensure and /v1/objects: the key must be a
// cache key equal to sha256(URL without fragment), the origin one the policy allows; and
// a peer's x-cache-io-on-behalf-of. Messages never show a URL's query.
import { checkOriginUrl, type OriginRules } from "../shared/origin.js";
import { KEY_PATTERN, SHA256_HEX, cacheKey, normalizeUrl, DEFAULT_KEY_IGNORE, type KeyIgnore } from "../shared/protocol.js";
import { badRequest, refused } from "./errors.js";
import { redact } from "./redact.js";

/** Who asks, from a verified token (see DESIGN.md "Who may ask the node cache"). */
export interface Caller {
  namespace: string;
  serviceAccount: string;
  pod?: string;
  /** The node cache's own ServiceAccount (a peer), which may act for any namespace's rules it is given. */
  peer?: boolean;
}

export interface ObjectRequest {
  key: string;
  /** Normalized: WHATWG-serialized, no fragment. */
  url: string;
  sha256?: string;
  /** Set once identity is verified; absent for anonymous callers. */
  caller?: Caller;
  /** Asked on the peer port (also by an anonymous peer): the fill goes to the origin, never to peers again. */
  viaPeer?: true;
}

const KNOWN_PARAMS = new Set(["url", "sha256"]);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * A peer's x-cache-io-on-behalf-of: "<namespace>/<serviceaccount>" (a DNS label and a
 * ServiceAccount name), undefined when absent, else a 400.
 */
export function parseOnBehalfOf(header: string | string[] | undefined): Pick<Caller, "namespace" | "serviceAccount"> | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header)) throw badRequest(`x-cache-io-on-behalf-of is given ${header.length} times; give it once`);
  const [namespace = "", serviceAccount = "", ...rest] = header.trim().split("/");
  if (rest.length || !DNS_LABEL.test(namespace) || !DNS_SUBDOMAIN.test(serviceAccount)) {
    throw badRequest(`x-cache-io-on-behalf-of ${shown(header)} is not "<namespace>/<serviceaccount>" (a DNS label, a slash, a ServiceAccount name)`);
  }
  return { namespace, serviceAccount };
}

function shown(s: string): string {
  return JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}...` : s);
}

/** A URL as an error message may show it: never its query (tokens of pre-signed URLs). */
function shownUrl(s: string): string {
  const shownPart = URL.canParse(s) ? redact(s) : s.replace(/\?.*$/s, "?<redacted>");
  return shown(shownPart);
}

function single(q: URLSearchParams, name: string): string | undefined {
  const all = q.getAll(name);
  if (all.length > 1) throw badRequest(`the ${name}= query parameter is given ${all.length} times; give it once`);
  return all[0];
}

/**
 * `rules` are the caller's namespace's (or, for an anonymous caller where identity allows
 * one, the union of every namespace's); `caller` is set on the request and named in a 403.
 */
export function parseObjectRequest(rawKey: string, rawQuery: string, rules: OriginRules, caller?: Caller, keyIgnore: KeyIgnore = DEFAULT_KEY_IGNORE): ObjectRequest {
  if (!KEY_PATTERN.test(rawKey)) {
    throw badRequest(`${shown(rawKey)} is not a cache key: a key is the sha256 (64 lowercase hex digits) of the file's URL without its fragment`);
  }
  const q = new URLSearchParams(rawQuery);
  for (const name of q.keys()) if (!KNOWN_PARAMS.has(name)) throw badRequest(`unknown query parameter ${shown(name)} (known: url, sha256)`);
  const raw = single(q, "url");
  if (raw === undefined) throw badRequest("the url= query parameter is missing: give the file's URL, percent-encoded");
  let url: string;
  try {
    url = normalizeUrl(raw);
  } catch {
    throw badRequest(`url ${shownUrl(raw)} is not an absolute URL`);
  }
  const expected = cacheKey(url, keyIgnore);
  if (expected !== rawKey) {
    throw badRequest(`key ${rawKey} does not match url ${shownUrl(url)}, whose key is ${expected} (sha256 of the URL without its fragment and signature parameters, cache.keyIgnoreQuery)`);
  }
  const sha256 = single(q, "sha256");
  if (sha256 !== undefined && !SHA256_HEX.test(sha256)) throw badRequest(`sha256 ${shown(sha256)} must be 64 lowercase hex digits`);
  const why = checkOriginUrl(new URL(url), rules);
  if (why) throw refused(caller ? namespaceRefusal(caller, url, rules, why) : `origin of ${redact(url)} refused: ${why}`);
  return { key: rawKey, url, ...(sha256 ? { sha256 } : {}), ...(caller ? { caller } : {}) };
}

/** The 403 for a caller whose namespace may not use an origin: names the namespace and its allow-list. */
export function namespaceRefusal(caller: Caller, url: string, rules: OriginRules, why: string): string {
  const list = rules.allow.length > 8 ? `${JSON.stringify(rules.allow.slice(0, 8)).slice(0, -1)},...]` : JSON.stringify(rules.allow);
  return `namespace "${caller.namespace}" may not use ${redact(url)}: ${why} (its allow-list: ${list}, from namespaces.${caller.namespace}.originsAllow or origins.allow)`;
}
