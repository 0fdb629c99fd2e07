// The text lines `ensure` writes while a pod's init container waits: what
// `kubectl logs POD -c cache-io-fetch` shows.
import type { Fill } from "./fill.js";
import type { ObjectMeta } from "./store.js";

/** A short printable name for a URL: its last path segment. */
export function displayName(url: string): string {
  const segs = new URL(url).pathname.split("/").filter(Boolean);
  let name = segs[segs.length - 1] ?? new URL(url).host;
  try {
    name = decodeURIComponent(name);
  } catch {
    // keep it encoded
  }
  name = name.replace(/[^\x20-\x7e]/g, "?");
  return name.length > 80 ? `${name.slice(0, 77)}...` : name;
}

export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function rate(bytes: number, ms: number): string {
  return `${(bytes / 1e6 / Math.max(ms / 1000, 0.001)).toFixed(1)} MB/s`;
}

export function cachedLine(meta: ObjectMeta): string {
  return `cached ${displayName(meta.url)} ${meta.size} bytes sha256=${meta.sha256}\n`;
}

export function startLine(fill: Fill): string {
  const what = fill.req.previous ? "revalidating" : "fetching";
  return `${what} ${displayName(fill.req.url)} from ${new URL(fill.req.url).host} (waiters=${fill.waiters})\n`;
}

export function progressLine(fill: Fill, now = Date.now()): string {
  const name = displayName(fill.req.url);
  const done = fill.total ? `${((fill.bytes / fill.total) * 100).toFixed(1)}% ${mib(fill.bytes)} of ${mib(fill.total)}` : mib(fill.bytes);
  const retry = fill.attempt > 0 ? ` attempt=${fill.attempt + 1}` : "";
  return `${name} ${done} ${rate(fill.bytes, now - fill.startedAt)} waiters=${fill.waiters}${retry}\n`;
}

export function doneLine(meta: ObjectMeta, startedAt: number, now = Date.now()): string {
  const ms = now - startedAt;
  return `done ${displayName(meta.url)} ${meta.size} bytes in ${(ms / 1000).toFixed(1)}s (${rate(meta.size, ms)}) sha256=${meta.sha256}\n`;
}

export function errorLine(message: string): string {
  return `error: ${message}\n`;
}
