// One attempt of a fill: the bytes from the origin into a temp file, hashed. A first
// GET of the first part's range tells whether the origin serves ranges: a 206 with a
// length and a validator makes a ranged fill (parts fetched concurrently, resumable
// after a crash from `<key>.ranged.json`), a 200 is read as one stream. A saved state
// of the same version (checked by If-Range on the first missing part) is resumed.
import { open, stat } from "node:fs/promises";
import type { Logger } from "../../shared/log.js";
import { CacheError } from "../errors.js";
import { fillGet, statusError, type FillResponse, type OriginResponse, type OriginSettings } from "../origin.js";
import { redact } from "../redact.js";
import { FillBody, type PartState } from "./body.js";
import type { ConnectionPool } from "./connections.js";
import { firstPartSize, ifRange, originVersion, parseContentRange, planParts, rangeHeader, sameVersion, versionOf, type Version } from "./plan.js";
import { fetchParts, ObjectChanged } from "./ranged.js";
import type { Part } from "./plan.js";
import { receive } from "./receive.js";
import { loadState, removeResume, resumePaths, StateWriter, type ResumeState } from "./sidecar.js";

export interface PartsPolicy {
  size: number;
  concurrency: number;
  /** cache.parts.rampBelow; absent: the default. */
  rampBelow?: number;
  minFileSize: number;
}

export interface AttemptContext {
  key: string;
  url: string;
  tmpDir: string;
  /** A fresh random temp path (single streams: never resumed). */
  tempPath(): string;
  origin: OriginSettings;
  connections: ConnectionPool;
  parts: PartsPolicy;
  retries: number;
  retryBaseMs: number;
  /** Conditional headers (revalidation); no resume then. */
  conditional: Record<string, string>;
  signal: AbortSignal;
  log: Logger;
  /** The length is known (or not): check the size cap and the budget; `onDisk` bytes are already there (a resume). */
  onLength(total: number | undefined, onDisk: number): void;
  /** Every received chunk; throw to stop. */
  onBytes(n: number): void;
  /** The body being written, for readers (streaming while filling). */
  onBody(body: FillBody): void;
  /** The origin's version of the bytes (length and validators), as soon as it answered with a length. */
  onVersion?(v: Version): void;
}

export type Attempted =
  | { kind: "not_modified"; res: FillResponse }
  | { kind: "body"; body: FillBody; sha256: string; res: FillResponse; resumable: boolean };

/** Run one attempt; the caller publishes `body.path` and then calls `done()` on the result, or `abandon()` on failure. */
export async function attempt(ctx: AttemptContext, resume = true): Promise<Attempted> {
  const saved = resume && Object.keys(ctx.conditional).length === 0 ? await usableState(ctx) : null;
  const probe = saved ? firstMissing(saved) : null;
  const headers: Record<string, string> = probe && saved ? { range: rangeHeader(probe), "if-range": ifRange(saved)! } : { range: `bytes=0-${firstPartSize(ctx.parts.size, ctx.parts.minFileSize) - 1}`, ...ctx.conditional };
  const release = await ctx.connections.acquire(ctx.signal);
  let r: OriginResponse<FillResponse>;
  try {
    r = await fillGet(ctx.url, ctx.origin, headers, ctx.signal);
  } catch (err) {
    release();
    throw err;
  }
  const status = r.res.statusCode ?? 0;
  if (status === 206) return ranged(ctx, r, release, saved);
  if (saved) await removeResume(ctx.tmpDir, ctx.key);
  if (status === 200) return single(ctx, r, release);
  release();
  r.res.resume();
  if (status === 304 && Object.keys(ctx.conditional).length > 0) return { kind: "not_modified", res: r.res };
  if (status === 416 && !saved) return plain(ctx); // a range of an empty file
  throw statusError(status, r.url);
}

/** A GET without Range, read as one stream (an origin whose ranges cannot be bound to one version). */
async function plain(ctx: AttemptContext): Promise<Attempted> {
  const release = await ctx.connections.acquire(ctx.signal);
  let r: OriginResponse<FillResponse>;
  try {
    r = await fillGet(ctx.url, ctx.origin, { ...ctx.conditional }, ctx.signal);
  } catch (err) {
    release();
    throw err;
  }
  const status = r.res.statusCode ?? 0;
  if (status === 200) return single(ctx, r, release);
  release();
  r.res.resume();
  if (status === 304 && Object.keys(ctx.conditional).length > 0) return { kind: "not_modified", res: r.res };
  throw statusError(status, r.url);
}

async function single(ctx: AttemptContext, r: OriginResponse<FillResponse>, release: () => void): Promise<Attempted> {
  const v = r.res.headers["content-length"];
  const length = v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  let body: FillBody | undefined;
  try {
    ctx.onLength(length, 0);
    if (length !== undefined) ctx.onVersion?.(originVersion(r.res, length));
    const path = ctx.tempPath();
    body = new FillBody(await open(path, "wx+", 0o644), path, length, [{ index: 0, start: 0, end: length ?? Number.MAX_SAFE_INTEGER }]);
    ctx.onBody(body);
    const part = body.parts[0]!;
    const flush = backgroundSync(body);
    await receive(r.res, body, part, (n) => {
      ctx.onBytes(n);
      flush(n);
    });
    if (length !== undefined && part.written !== length) throw truncated(part.written, length, r.url);
    part.end = part.written;
    body.complete(part);
    return { kind: "body", body, sha256: await body.digest(), res: r.res, resumable: false };
  } catch (err) {
    r.res.destroy();
    throw r.failure() ?? err;
  } finally {
    release();
  }
}

async function ranged(ctx: AttemptContext, r: OriginResponse<FillResponse>, release: () => void, saved: ResumeState | null): Promise<Attempted> {
  const cr = parseContentRange(r.res.headers["content-range"]);
  const version = versionOf(r.res, cr?.total ?? 0);
  const fresh = !saved;
  if (!cr || !ifRange(version) || (saved && (saved.size !== cr.total || !sameVersion(saved, r.res))) || (fresh && cr.start !== 0)) {
    r.res.destroy();
    release();
    if (saved) {
      await removeResume(ctx.tmpDir, ctx.key);
      ctx.log.info({}, "saved parts are of another version of the file; starting over");
      return attempt(ctx, false);
    }
    if (!cr) throw new CacheError(502, "origin_status", `origin answered 206 without a valid Content-Range (${String(r.res.headers["content-range"])}) for ${redact(ctx.url)}`, true);
    return plain(ctx); // no validator binds the parts to one version: one stream
  }
  const layout = saved ?? { partSize: ctx.parts.size, minFileSize: ctx.parts.minFileSize };
  const parts = planParts(cr.total, layout.partSize, layout.minFileSize);
  const resumable = parts.length > 1;
  const paths = resumePaths(ctx.tmpDir, ctx.key);
  const path = resumable ? paths.data : ctx.tempPath();
  let body: FillBody | undefined;
  try {
    const fh = await open(path, saved ? "r+" : "w+", 0o644);
    body = new FillBody(fh, path, cr.total, parts);
    ctx.onBody(body);
    if (saved) body.restore(new Set(saved.done));
    else await fh.truncate(cr.total);
    const onDisk = body.parts.reduce((n, p) => n + p.written, 0);
    ctx.onLength(cr.total, onDisk);
    ctx.onVersion?.(originVersion(r.res, cr.total));
    const writer = resumable ? new StateWriter(ctx.tmpDir, { v: 1, key: ctx.key, url: ctx.url, ...version, ...layout }, saved?.done ?? []) : undefined;
    if (writer && fresh) await writer.save();
    const first = body.parts.find((p) => p.start === cr.start && !p.done);
    if (!first) throw new CacheError(502, "origin_status", `origin answered bytes ${cr.start}- of ${redact(ctx.url)}, no missing part starts there`, true);
    await fetchParts(
      {
        url: ctx.url, origin: ctx.origin, connections: ctx.connections, version, concurrency: ctx.parts.concurrency, rampBelow: ctx.parts.rampBelow,
        retries: ctx.retries, retryBaseMs: ctx.retryBaseMs, signal: ctx.signal, log: ctx.log, onBytes: ctx.onBytes,
        onPartDone: async (p: PartState) => {
          if (!writer) return;
          await fh.datasync();
          await writer.markDone(p.index);
        },
      },
      body,
      { part: first, r, release },
    );
    return { kind: "body", body, sha256: await body.digest(), res: r.res, resumable };
  } catch (err) {
    r.res.destroy();
    release();
    if (err instanceof ObjectChanged) await removeResume(ctx.tmpDir, ctx.key);
    throw err;
  }
}

/**
 * Complete a single-part body whose first `watermark` bytes are of `version` (a peer's
 * bytes, with the origin's validators) from the origin: the rest as ranged parts bound
 * to that version by If-Range (a 200 to any: the object changed, the fill starts over).
 * The body goes on growing, so its readers are not cut. Not resumable after a crash.
 */
export async function completeFromOrigin(ctx: AttemptContext, body: FillBody, version: Version): Promise<string> {
  const first = body.parts[0]!;
  if (body.parts.length !== 1 || body.size !== version.size || first.written !== body.watermark) throw new Error("completeFromOrigin needs a single-part body");
  first.end = first.written;
  const rest: Part[] = [];
  for (let s = first.end; s < version.size; s += ctx.parts.size) rest.push({ index: rest.length + 1, start: s, end: Math.min(version.size, s + ctx.parts.size) });
  body.parts.push(...rest.map((p) => ({ ...p, written: 0, done: false })));
  body.complete(first);
  await fetchParts(
    {
      url: ctx.url, origin: ctx.origin, connections: ctx.connections, version, concurrency: ctx.parts.concurrency, rampBelow: ctx.parts.rampBelow,
      retries: ctx.retries, retryBaseMs: ctx.retryBaseMs, signal: ctx.signal, log: ctx.log, onBytes: ctx.onBytes, onPartDone: async () => undefined,
    },
    body,
  );
  return body.digest();
}

/** Bytes written between background fdatasyncs of a single stream. */
const SYNC_EVERY = 32 << 20;

/**
 * Start the disk's writeback while the stream still arrives (an fdatasync every
 * SYNC_EVERY bytes, at most one at a time, not waited for), so the fsync before the
 * publish finds little left to write (ranged fills get this from their per-part syncs).
 */
function backgroundSync(body: FillBody): (n: number) => void {
  let since = 0;
  let busy = false;
  return (n) => {
    since += n;
    if (since < SYNC_EVERY || busy) return;
    since = 0;
    busy = true;
    body.fh.datasync().then(
      () => (busy = false),
      () => (busy = false),
    );
  };
}

/** The saved state of this key, when it is for this URL and its temp file is there. */
async function usableState(ctx: AttemptContext): Promise<ResumeState | null> {
  const s = await loadState(ctx.tmpDir, ctx.key);
  if (!s) return null;
  const st = await stat(resumePaths(ctx.tmpDir, ctx.key).data).catch(() => null);
  if (s.url !== ctx.url || !ifRange(s) || st?.size !== s.size || planParts(s.size, s.partSize, s.minFileSize).length < 2) {
    await removeResume(ctx.tmpDir, ctx.key);
    return null;
  }
  return s;
}

/** The first part not saved as done (the last one when all are: the probe then fetches it again). */
function firstMissing(s: ResumeState): { start: number; end: number } {
  const parts = planParts(s.size, s.partSize, s.minFileSize);
  const done = new Set(s.done);
  const p = parts.find((q) => !done.has(q.index)) ?? parts.at(-1)!;
  if (done.has(p.index)) s.done = s.done.filter((i) => i !== p.index);
  return p;
}

export function truncated(got: number, want: number, url: string): CacheError {
  return new CacheError(502, "truncated", `origin closed the connection after ${got} of ${want} bytes of ${redact(url)}`, true);
}

/** Why reading or storing a fill's body failed: the disk, a cut connection, or something already explained. */
export function bodyError(e: unknown, bytes: number, total: number | undefined, url: string): CacheError {
  if (e instanceof CacheError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err.syscall === "open" || err.syscall === "write" || err.code === "ENOSPC") {
    return new CacheError(500, "io", `cannot write the cache's temp file: ${err.message}`);
  }
  if (total !== undefined && bytes < total) return truncated(bytes, total, url);
  return new CacheError(502, "network", `the download of ${redact(url)} broke off after ${bytes} bytes: ${err.message}`, true);
}
