// GET|HEAD /v1/objects/<key>: a cached file's bytes, streamed from disk with
// backpressure (never buffered whole), with ETag, Last-Modified, Range and 304s, the
// origin's version (x-cache-io-origin-version, which a peer's resume must match); a
// whole-file GET of a file still filling streams it as its contiguous prefix lands
// (src/cache/fills/serve-growing.ts). On the peer port every chunk is paced by the
// peer bandwidth limit.
// Each download holds a slot (cache.maxDownloads, per client), a few buffers no bigger
// than what it sends (large ones from a shared pool), and is cut when its client takes
// nothing for cache.sendTimeout.
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { CacheError } from "./errors.js";
import type { BufferPool, Pacer } from "./limits.js";
import type { Acquired, NodeCache } from "./node-cache.js";
import { parseVersion } from "./peers/fetch.js";
import { PEER_HEADERS } from "./peers/types.js";
import type { ObjectRequest } from "./request.js";
import type { ObjectMeta } from "./store.js";
import { serveGrowing } from "./fills/serve-growing.js";

/** How the bytes of one response go out: paced (the peer port's bandwidth limit) and counted. */
export interface SendOptions {
  pacer?: Pacer;
  /** Bytes handed to the socket, once the response ends. */
  onSent?(bytes: number): void;
}

/** The origin's version of a file's bytes (x-cache-io-origin-version). */
export interface OriginVersion {
  size: number;
  etag?: string;
  lastModified?: string;
}

export function originVersion(v: OriginVersion): string {
  return JSON.stringify({ size: v.size, ...(v.etag ? { etag: v.etag } : {}), ...(v.lastModified ? { lastModified: v.lastModified } : {}) });
}

/** A resume's x-cache-io-if-origin-version names these very bytes (else the whole file is sent). */
export function sameOriginVersion(header: string | string[] | undefined, v: OriginVersion): boolean {
  if (typeof header !== "string") return header === undefined;
  const asked = parseVersion(header, v.size);
  return !!asked && asked.etag === (v.etag || undefined) && asked.lastModified === (v.lastModified || undefined);
}

const READ_CHUNK = 1 << 20;
/** The buffer size when the large ones are all out (many downloads at once). */
const SMALL_CHUNK = 64 << 10;
/** Buffers per download at most: reused, so serving allocates nothing per chunk. */
const RING = 4;

type Range = [start: number, end: number] | "unsatisfiable" | null;

/** The single byte range asked for; null means the whole file (no, multiple or invalid ranges). */
export function pickRange(header: string | undefined, size: number): Range {
  const m = header && /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    return suffix === 0 || size === 0 ? "unsatisfiable" : [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== "" && Number(m[2]) < start) return null;
  return start >= size ? "unsatisfiable" : [start, end];
}

function notModified(req: IncomingMessage, etag: string, lastModified: string): boolean {
  const inm = req.headers["if-none-match"];
  if (inm !== undefined) return inm.trim() === "*" || inm.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
  const ims = Date.parse(req.headers["if-modified-since"] ?? "");
  return !Number.isNaN(ims) && Date.parse(lastModified) <= ims;
}

/** If-Range (or a peer's x-cache-io-if-origin-version) that no longer matches means: send the whole (changed) file. */
function rangeApplies(req: IncomingMessage, etag: string, lastModified: string, meta: ObjectMeta): boolean {
  const ifRange = req.headers["if-range"];
  if (!sameOriginVersion(req.headers[PEER_HEADERS.ifOriginVersion], meta)) return false;
  return ifRange === undefined || ifRange === etag || ifRange === lastModified;
}

/** Open the file's current `data` and the meta that describes that very inode. */
async function openCurrent(cache: NodeCache, params: ObjectRequest, gone: AbortSignal, first?: Acquired): Promise<{ fh: FileHandle; meta: ObjectMeta }> {
  for (let tries = 0; tries < 3; tries++) {
    const meta = tries === 0 && first ? await settled(cache, params, first, gone) : await cache.complete(params, gone);
    const fh = await open(cache.store.dataPath(params.key), "r").catch(() => null);
    if (!fh) continue; // evicted or replaced in between: ask again
    const st = await fh.stat({ bigint: true });
    const ino = st.ino.toString();
    const now = cache.current(params.key);
    const m = ino === meta.ino ? meta : now?.ino === ino ? now : undefined;
    if (m && Number(st.size) === m.size) return { fh, meta: m };
    await fh.close();
  }
  throw new CacheError(503, "io", "the file changed on disk while it was being opened; retry");
}

/** The file an acquired result gives: at once, or when its fill ends (leaving the fill either way). */
async function settled(cache: NodeCache, params: ObjectRequest, a: Acquired, gone: AbortSignal): Promise<ObjectMeta> {
  if ("meta" in a) return a.meta;
  try {
    return await cache.settle(a.fill, params, gone);
  } finally {
    a.fill.leave();
  }
}

export async function serveObject(cache: NodeCache, req: IncomingMessage, res: ServerResponse, params: ObjectRequest, send: SendOptions = {}): Promise<void> {
  const gone = new AbortController();
  res.once("close", () => gone.abort());
  let first: Acquired | undefined;
  // A file still filling streams to an unconditional GET, also of one range (a peer's resume).
  const streamable = req.method === "GET" && req.headers["if-range"] === undefined && req.headers["if-none-match"] === undefined && req.headers["if-modified-since"] === undefined;
  if (streamable) {
    first = await cache.acquire(params);
    if ("fill" in first && (await serveGrowing(cache, req, res, params, first.fill, gone.signal, send))) return;
  }
  const { fh, meta } = await openCurrent(cache, params, gone.signal, first);
  let release: (() => void) | undefined;
  try {
    const etag = `"${meta.sha256}"`;
    const lastModified = new Date(meta.lastModified ?? meta.fetchedAt).toUTCString();
    const headers: OutgoingHttpHeaders = {
      etag,
      "last-modified": lastModified,
      "accept-ranges": "bytes",
      "content-type": "application/octet-stream",
      "cache-control": "no-cache",
      [PEER_HEADERS.originVersion]: originVersion(meta),
    };
    if (notModified(req, etag, lastModified)) return void res.writeHead(304, headers).end();
    const range = rangeApplies(req, etag, lastModified, meta) ? pickRange(req.headers.range, meta.size) : null;
    if (range === "unsatisfiable") return void res.writeHead(416, { ...headers, "content-range": `bytes */${meta.size}` }).end();
    const [start, end] = range ?? [0, meta.size - 1];
    if (range) headers["content-range"] = `bytes ${start}-${end}/${meta.size}`;
    headers["content-length"] = end - start + 1;
    if (req.method === "HEAD" || end < start) return void res.writeHead(range ? 206 : 200, headers).end();
    release = cache.downloadSlot(req.socket.remoteAddress ?? "unknown");
    res.writeHead(range ? 206 : 200, headers);
    const sent = await sendRange(fh, res, start, end, cache.policy().cache.sendTimeout, cache.readBuffers, send.pacer);
    cache.metrics.servedBytes.inc(sent);
    send.onSent?.(sent);
    if (sent === end - start + 1) res.end();
    else if (!res.destroyed) {
      cache.log.info({ key: params.key, sent, of: end - start + 1, client: req.socket.remoteAddress }, "download cut: the client took no bytes for cache.sendTimeout");
      res.destroy();
    }
  } finally {
    release?.();
    await fh.close();
  }
}

/**
 * Copy bytes start..end of the file to the response through a few reused buffers (at
 * most RING, each no bigger than the bytes to send): a buffer is read into again only
 * after the socket took its previous bytes, and while the socket pushes back (a slow
 * client) the idle buffers are let go, so a stalled download holds about one buffer.
 * Buffers are 1 MiB while the shared pool has large ones left, else 64 KiB. Resolves
 * with the bytes handed to the socket: fewer when the client went away or took nothing
 * for `sendTimeoutMs`. (Allocating a fresh buffer per chunk, as a read stream does,
 * makes V8 collect garbage for external memory pressure constantly and costs more than
 * twice the CPU.) With a `pacer`, chunks are at most its size and each waits for its turn.
 */
export async function sendRange(fh: FileHandle, res: ServerResponse, start: number, end: number, sendTimeoutMs: number, pool: BufferPool, pacer?: Pacer): Promise<number> {
  const length = end - start + 1;
  const free: Buffer[] = [];
  /** Buffers of this download (idle or in flight) and which of them came from the pool. */
  let allocated = 0;
  const large = new Set<Buffer>();
  let pending = 0;
  let wake: (() => void) | undefined;
  const progress = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const drop = (b: Buffer) => {
    allocated--;
    if (large.delete(b)) pool.give();
  };
  const allocate = (): Buffer => {
    allocated++;
    if (length <= SMALL_CHUNK || !pool.tryTake()) return Buffer.allocUnsafeSlow(Math.max(1, Math.min(SMALL_CHUNK, length)));
    const b = Buffer.allocUnsafeSlow(Math.min(READ_CHUNK, length));
    large.add(b);
    return b;
  };
  res.on("drain", progress);
  res.once("close", progress);
  /** Wait for a write to complete or drain; false when the client is gone or took nothing for the timeout. */
  const waitProgress = (): Promise<boolean> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined;
        resolve(false);
      }, sendTimeoutMs);
      wake = () => {
        clearTimeout(timer);
        resolve(!res.destroyed);
      };
    });
  try {
    let pos = start;
    while (pos <= end) {
      if (res.destroyed) return pos - start;
      const buf = free.pop() ?? (allocated < RING ? allocate() : undefined);
      if (!buf) {
        if (!(await waitProgress())) return pos - start;
        continue;
      }
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos + 1, pacer?.chunk() ?? Infinity), pos);
      if (bytesRead === 0) throw new CacheError(500, "io", "the cached file is shorter than its metadata says");
      if (pacer) {
        await pacer.take(bytesRead);
        if (res.destroyed) {
          free.push(buf);
          return pos - start;
        }
      }
      pending++;
      res.write(buf.subarray(0, bytesRead), () => {
        pending--;
        free.push(buf);
        progress();
      });
      pos += bytesRead;
      if (res.writableNeedDrain) {
        // A slow client: keep only the buffers in flight until it takes bytes again.
        free.splice(0).forEach(drop);
        if (!(await waitProgress())) return pos - start - res.writableLength;
      }
    }
    while (pending > 0) if (!(await waitProgress())) return pos - start - res.writableLength;
    return pos - start;
  } finally {
    res.off("drain", progress);
    res.off("close", progress);
    for (const b of large) pool.give();
  }
}
