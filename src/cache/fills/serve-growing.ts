// A download of a file that is still filling: 200 with the full Content-Length (or, for
// one byte range, 206 with its Content-Range: a peer resuming from here), bytes sent as
// the fill's contiguous prefix lands (never past its watermark), the last byte held back
// until the fill is verified and published for this request's sha256 (for a peer: until
// its sha256 is verified, before the sync: docs/PEERS.md, "The last byte"); cut (destroyed)
// if the fill fails, so the client fails. It carries the origin's version (Fill.version)
// once the origin answered; a range is streamed only for that version
// (x-cache-io-if-origin-version), else it waits for the complete file.
import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { Fill } from "../fill-state.js";
import type { FillBody } from "./body.js";
import type { NodeCache } from "../node-cache.js";
import { PEER_HEADERS } from "../peers/types.js";
import type { ObjectRequest } from "../request.js";
import { originVersion, pickRange, sameOriginVersion, sendRange, type SendOptions } from "../serve-file.js";

/**
 * A fill that ends within this long is served as a complete file (with its ETag); only
 * a longer one streams (no ETag: the sha256 is known at the end).
 */
export const STREAM_AFTER_MS = 1000;
/** How often a peer's wait looks whether the fill's body grows (then its stream starts at once: a relay tree would add STREAM_AFTER_MS per hop). */
const PEER_START_POLL_MS = 10;

/** Stream `fill` to `res`; false (nothing sent) when it cannot or need not be streamed: a revalidation, no length known, a fill about to end, a range it cannot serve now. */
export async function serveGrowing(cache: NodeCache, req: IncomingMessage, res: ServerResponse, params: ObjectRequest, fill: Fill, gone: AbortSignal, send: SendOptions = {}): Promise<boolean> {
  if (fill.req.previous) return false;
  // A sha256 other than the cached copy's is most likely a wrong pin: it gets the verified answer (often a 502), not a stream.
  const cached = cache.current(params.key);
  if (params.sha256 && cached && cached.sha256 !== params.sha256) return false;
  if (await ends(fill, !!params.viaPeer, gone)) return false;
  const body = await fill.nextBody(gone);
  const size = body?.size;
  if (!body || size === undefined || size === 0) return false;
  const range = req.headers.range === undefined ? null : pickRange(req.headers.range, size);
  if (req.headers.range !== undefined && !(Array.isArray(range) && fill.version?.size === size && sameOriginVersion(req.headers[PEER_HEADERS.ifOriginVersion], fill.version))) return false;
  if (!body.retain()) return false;
  const [start, end] = Array.isArray(range) ? range : [0, size - 1];
  let release: (() => void) | undefined;
  let pos = start;
  try {
    release = cache.downloadSlot(req.socket.remoteAddress ?? "unknown");
    const version = fill.version?.size === size ? { [PEER_HEADERS.originVersion]: originVersion(fill.version) } : {};
    const ranged = Array.isArray(range) ? { "content-range": `bytes ${start}-${end}/${size}` } : {};
    res.writeHead(Array.isArray(range) ? 206 : 200, { "content-length": end - start + 1, "accept-ranges": "bytes", "content-type": "application/octet-stream", "cache-control": "no-cache", ...version, ...ranged });
    const settled = cache.settle(fill, params, gone);
    settled.catch(() => undefined);
    // A peer may take the last byte once the sha256 is verified (it verifies again and syncs itself); a pod only once the file is published.
    const early = params.viaPeer ? verifiedFor(cache, body, params.sha256) : new Promise<void>(() => undefined);
    let released = false;
    void early.then(() => (released = true));
    // Published is complete only for this request's pin: another caller's fill may publish other content.
    const published = () => body.finished && (!params.sha256 || cache.current(params.key)?.sha256 === params.sha256);
    const complete = () => published() || (released && body.watermark === size);
    const { sendTimeout } = cache.policy().cache;
    while (pos <= end) {
      // The last byte goes only when the whole file is verified: a client never sees a complete response of unverified bytes.
      const limit = complete() ? end + 1 : Math.min(body.watermark, end);
      if (pos >= limit) {
        if (pos < end) await body.waitPast(pos, gone);
        else {
          await Promise.race([settled, early]);
          if (!complete()) throw new Error("the fill ended without these bytes");
        }
        continue;
      }
      const want = limit - pos;
      const n = await sendRange(body.fh, res, pos, limit - 1, sendTimeout, cache.readBuffers, send.pacer);
      pos += n;
      if (n < want) throw new Error("the client took no bytes for cache.sendTimeout or went away");
    }
    res.end();
  } catch (err) {
    if (!res.headersSent) throw err;
    cache.log.info({ key: params.key, sent: pos - start, of: end - start + 1, err: (err as Error).message }, "download of a filling file cut");
    res.destroy();
  } finally {
    cache.metrics.servedBytes.inc(pos - start);
    send.onSent?.(pos - start);
    release?.();
    fill.leave();
    await body.release();
  }
  return true;
}

/** Resolves when `body` is verified for a request pinning `sha256` (or none); never for another sha256 (the settled fill decides then). */
function verifiedFor(cache: NodeCache, body: FillBody, sha256: string | undefined): Promise<void> {
  return cache.filler.verified.wait(body).then((got) => (sha256 && got !== sha256 ? new Promise<void>(() => undefined) : undefined));
}

/**
 * Whether `fill` ends (or the client goes) within STREAM_AFTER_MS. A peer does not wait
 * that long once the fill's body grows and its origin version is known: bytes are
 * flowing into a body the fill keeps. (A body that does not grow may be one about to be
 * dropped, e.g. after its source died: streaming it would only cut the peer.)
 */
async function ends(fill: Fill, viaPeer: boolean, gone: AbortSignal): Promise<boolean> {
  let ended = false;
  void fill.promise.then(() => (ended = true), () => (ended = true));
  const deadline = Date.now() + STREAM_AFTER_MS;
  let seen: { body: Fill["body"]; watermark: number } | undefined;
  for (;;) {
    if (ended || gone.aborted) return true;
    const body = fill.body;
    if (viaPeer && body && !body.failed && fill.version?.size === body.size) {
      if (seen?.body === body && body.watermark > seen.watermark) return false;
      seen = { body, watermark: body.watermark };
    }
    const left = deadline - Date.now();
    if (left <= 0) return false;
    const tick = sleep(viaPeer ? Math.min(PEER_START_POLL_MS, left) : left, undefined, { signal: gone }).catch(() => undefined);
    await Promise.race([fill.promise.catch(() => undefined), tick]);
  }
}
