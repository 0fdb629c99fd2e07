// The wire contract between the webhook (which writes the init container's curl
// arguments) and the node cache (which answers them): keys, paths and encoding.
import { createHash } from "node:crypto";

export const ANNOTATION = {
  files: "cache.io/files",
  mountPath: "cache.io/mount-path",
  mode: "cache.io/mode",
  containers: "cache.io/containers",
  inject: "cache.io/inject",
  status: "cache.io/status",
} as const;

export const NAMESPACE_LABEL = "cache.io/inject";

/** The webhook's review paths: mount mode allowed, or copy mode only (hostPath forbidden). */
export const WEBHOOK_PATHS = { mount: "/mutate", copy: "/mutate/copy" } as const;
export const STATUS_INJECTED = "injected";

/** Names the webhook owns inside a pod; a pod that already uses them is refused. */
export const RESERVED = {
  initContainer: "cache-io-fetch",
  volumePrefix: "cache-io-",
  copyVolume: "cache-io-files",
  copyDir: "/cache-io",
  nodeIpEnv: "NODE_IP",
} as const;

export const SHA256_HEX = /^[0-9a-f]{64}$/;
export const KEY_PATTERN = SHA256_HEX;

/**
 * The URL as the cache and webhook both see it: WHATWG-serialized, fragment
 * removed. Both sides must agree on this exact string, since the key hashes it.
 */
export function normalizeUrl(raw: string): string {
  const u = new URL(raw);
  u.hash = "";
  return u.href;
}

/**
 * Query parameters left out of a file's key: signatures and expiries of pre-signed URLs,
 * so one object is one cached file however often it is re-signed (the fetch still uses
 * the full URL). An entry ending in `*` is a prefix of any case (SDKs hoist headers such
 * as `x-amz-content-sha256` into presigned queries); other names are case-sensitive. A group with `when` applies only if that parameter is present, since
 * its short names (`sp`, `se`, `Expires`) may mean something else to another origin.
 * Parameters that select other bytes (versionId, partNumber, generation) are never here.
 */
export interface KeyIgnoreGroup {
  params: readonly string[];
  when?: string;
}

export const DEFAULT_KEY_IGNORE: readonly KeyIgnoreGroup[] = [
  // S3 SigV4 presign (and S3-compatible stores, Huawei OBS), GCS V4 signed URLs.
  { params: ["X-Amz-*", "X-Goog-*", "X-Obs-Date"] },
  // Azure SAS (service, account and user delegation): only alongside its signature.
  {
    when: "sig",
    params: ["sig", "sv", "ss", "srt", "sp", "se", "st", "spr", "sip", "si", "sr", "sdd", "ses",
      "skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid"],
  },
  // Alibaba OSS V1, GCS V2 and CloudFront signed URLs.
  { when: "Signature", params: ["Signature", "Expires", "OSSAccessKeyId", "GoogleAccessId", "Key-Pair-Id", "Policy", "security-token"] },
  // Alibaba OSS V4.
  { params: ["x-oss-*"] },
];

/** How keys are computed: the policy's `cache.keyIgnoreQuery` (default DEFAULT_KEY_IGNORE). */
export type KeyIgnore = readonly KeyIgnoreGroup[];

function ignoredBy(name: string, params: readonly string[]): boolean {
  return params.some((p) => (p.endsWith("*") ? name.toLowerCase().startsWith(p.slice(0, -1).toLowerCase()) : name === p));
}

/**
 * The URL a key hashes: normalizeUrl(raw) without the ignored query parameters; the
 * remaining ones keep their order and encoding. Without ignored parameters, it is
 * normalizeUrl(raw) exactly.
 */
export function keyUrl(raw: string, ignore: KeyIgnore = DEFAULT_KEY_IGNORE): string {
  const u = new URL(normalizeUrl(raw));
  if (!u.search || ignore.length === 0) return u.href;
  const pairs = u.search.slice(1).split("&");
  const names = pairs.map((p) => {
    const raw = p.split("=", 1)[0]!;
    try {
      return decodeURIComponent(raw.replace(/\+/g, " "));
    } catch {
      return raw;
    }
  });
  const present = new Set(names);
  const groups = ignore.filter((g) => g.when === undefined || present.has(g.when));
  if (groups.length === 0) return u.href;
  const kept = pairs.filter((_, i) => !groups.some((g) => ignoredBy(names[i]!, g.params)));
  if (kept.length === pairs.length) return u.href;
  u.search = kept.length ? `?${kept.join("&")}` : "";
  return u.href;
}

/** Does the key of `raw` leave out some of its query (a pre-signed URL)? */
export function keyIgnoresQuery(raw: string, ignore: KeyIgnore = DEFAULT_KEY_IGNORE): boolean {
  return keyUrl(raw, ignore) !== normalizeUrl(raw);
}

/** hex(sha256(keyUrl(url))): the normalized URL without fragment and without signature parameters. */
export function cacheKey(url: string, ignore: KeyIgnore = DEFAULT_KEY_IGNORE): string {
  return createHash("sha256").update(keyUrl(url, ignore)).digest("hex");
}

/**
 * RFC 3986 strict percent-encoding: only unreserved characters survive, so no `$`,
 * `(`, `)`, quotes, spaces, `[`, `{` from user input can reach curl or the kubelet's
 * `$(VAR)` expansion.
 */
export function strictEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

/** The node cache's limit on a request's line plus headers (its http server's maxHeaderSize); larger gets 431. */
export const CACHE_MAX_HEADER_BYTES = 16 * 1024;

/**
 * Longest URL the webhook admits, counted as it appears in the init container's
 * request line: strictly percent-encoded (a reserved character or a `%` becomes three).
 * Half the cache's header limit: the rest is the path, the sha256, the bearer token
 * (1-2 KB) and curl's own headers.
 */
export const MAX_ENCODED_URL_BYTES = CACHE_MAX_HEADER_BYTES / 2;

function query(url: string, sha256?: string): string {
  const q = `url=${strictEncode(url)}`;
  return sha256 ? `${q}&sha256=${sha256}` : q;
}

/** Path and query of the endpoint that returns once the file is complete on disk. */
export function ensurePath(key: string, url: string, sha256?: string): string {
  return `/v1/ensure/${key}?${query(url, sha256)}`;
}

/** Path and query of the endpoint that serves the file's bytes. */
export function objectPath(key: string, url: string, sha256?: string): string {
  return `/v1/objects/${key}?${query(url, sha256)}`;
}

/** Directory the webhook mounts into a pod and the cache fills: `<root>/objects/<key>`. */
export function objectDir(root: string, key: string): string {
  return `${root.replace(/\/+$/, "")}/objects/${key}`;
}

/** Name of the file inside an object directory; the pod mounts it by subPath. */
export const OBJECT_FILE = "data";
