// Pure rules of ranged fills: how a file is split into parts, what a 206 must say
// (Content-Range, the same validator), and which validator goes into If-Range; the
// origin validators a fill keeps (published meta, conditional revalidation).
import type { IncomingHttpHeaders } from "node:http";

/** What these rules read of a response: its header fields. */
type Headed = { readonly headers: IncomingHttpHeaders };

export interface Part {
  index: number;
  start: number;
  /** Exclusive. */
  end: number;
}

/** The object version a ranged fill is bound to: its length and validator. */
export interface Version {
  size: number;
  etag?: string;
  lastModified?: string;
}

/** How many bytes the first request of a fill asks for: a file up to this size comes in that one request. */
export function firstPartSize(partSize: number, minFileSize: number): number {
  return Math.max(partSize, minFileSize);
}

/**
 * Parts covering [0, size): the first as the first request asked for it (the whole of a
 * file under minFileSize: one stream), then `partSize` each.
 */
export function planParts(size: number, partSize: number, minFileSize: number): Part[] {
  const first = Math.min(size, firstPartSize(partSize, minFileSize));
  const parts: Part[] = [{ index: 0, start: 0, end: first }];
  for (let s = first; s < size; s += partSize) parts.push({ index: parts.length, start: s, end: Math.min(size, s + partSize) });
  return parts;
}

/** `Content-Range: bytes a-b/total` as numbers (b exclusive), or null when absent or malformed. */
export function parseContentRange(v: string | undefined): { start: number; end: number; total: number } | null {
  const m = v ? /^bytes (\d+)-(\d+)\/(\d+)$/.exec(v.trim()) : null;
  if (!m) return null;
  const [start, last, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (last < start || last >= total || !Number.isSafeInteger(total)) return null;
  return { start, end: last + 1, total };
}

/** The validators of a response (a weak ETag cannot bind ranges: RFC 9110 If-Range needs a strong one). */
export function versionOf(res: Headed, size: number): Version {
  const etag = res.headers.etag;
  const lastModified = res.headers["last-modified"];
  return { size, ...(etag && !etag.startsWith("W/") ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
}

/** The origin's validators of a response as they were sent (Fill.version: what peers resume against and the published meta keeps). */
export function originVersion(res: Headed, size: number): Version {
  const { etag, "last-modified": lastModified } = res.headers;
  return { size, ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
}

/** What to send as If-Range for parts of `v`, or null when nothing binds them to one version. */
export function ifRange(v: Version): string | null {
  return v.etag ?? v.lastModified ?? null;
}

/** Whether a part's 206 belongs to version `v`. */
export function sameVersion(v: Version, res: Headed): boolean {
  if (v.etag !== undefined && res.headers.etag !== v.etag) return false;
  if (v.etag === undefined && v.lastModified !== undefined && res.headers["last-modified"] !== v.lastModified) return false;
  return true;
}

export function rangeHeader(p: Pick<Part, "start" | "end">): string {
  return `bytes=${p.start}-${p.end - 1}`;
}

/** The conditional headers of a revalidation of `previous`. */
export function conditionalHeaders(previous: { etag?: string; lastModified?: string } | undefined): Record<string, string> {
  const h: Record<string, string> = {};
  if (previous?.etag) h["if-none-match"] = previous.etag;
  if (previous?.lastModified) h["if-modified-since"] = previous.lastModified;
  return h;
}

/** A response's validators, else those of `previous`. */
export function validators(res: Headed, previous?: { etag?: string; lastModified?: string }): { etag?: string; lastModified?: string } {
  return present({ etag: res.headers.etag ?? previous?.etag, lastModified: res.headers["last-modified"] ?? previous?.lastModified });
}

/** The validators that are set (a meta leaves absent ones out). */
export function present(v: { etag?: string | undefined; lastModified?: string | undefined }): { etag?: string; lastModified?: string } {
  return { ...(v.etag ? { etag: v.etag } : {}), ...(v.lastModified ? { lastModified: v.lastModified } : {}) };
}
