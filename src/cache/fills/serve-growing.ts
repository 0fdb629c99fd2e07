// A whole-file download of a file that is still filling: 200 with the full
// Content-Length, bytes sent as the fill's contiguous prefix lands (never past its
// watermark), the last byte held back until the fill is verified and published for
// this request's sha256; cut (destroyed) if the fill fails, so the client fails. It
// carries the origin's version (Fill.version) once the origin answered, so a peer that
// breaks off can be resumed elsewhere against the same version.
import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { Fill } from "../fill-state.js";
import type { NodeCache } from "../node-cache.js";
import { PEER_HEADERS } from "../peers/types.js";
import type { ObjectRequest } from "../request.js";
import { originVersion, sendRange, type SendOptions } from "../serve-file.js";

/**
 * A fill that ends within this long is served as a complete file (with its ETag); only
 * a longer one streams (no ETag: the sha256 is known at the end).
 */
export const STREAM_AFTER_MS = 1000;

/** Stream `fill` to `res`; false (nothing sent) when it cannot or need not be streamed: a revalidation, no length known, a fill about to end. */
export async function serveGrowing(cache: NodeCache, req: IncomingMessage, res: ServerResponse, params: ObjectRequest, fill: Fill, gone: AbortSignal, send: SendOptions = {}): Promise<boolean> {
  if (fill.req.previous) return false;
  // A sha256 other than the cached copy's is most likely a wrong pin: it gets the verified answer (often a 502), not a stream.
  const cached = cache.current(params.key);
  if (params.sha256 && cached && cached.sha256 !== params.sha256) return false;
  const ended = await Promise.race([fill.promise.then(() => true, () => true), sleep(STREAM_AFTER_MS, false, { signal: gone }).catch(() => true)]);
  if (ended) return false;
  const body = await fill.nextBody(gone);
  const size = body?.size;
  if (!body || size === undefined || size === 0 || !body.retain()) return false;
  let release: (() => void) | undefined;
  let sent = 0;
  try {
    release = cache.downloadSlot(req.socket.remoteAddress ?? "unknown");
    const version = fill.version?.size === size ? { [PEER_HEADERS.originVersion]: originVersion(fill.version) } : {};
    res.writeHead(200, { "content-length": size, "accept-ranges": "bytes", "content-type": "application/octet-stream", "cache-control": "no-cache", ...version });
    const verified = cache.settle(fill, params, gone).then(() => true);
    verified.catch(() => undefined);
    const { sendTimeout } = cache.policy().cache;
    while (sent < size) {
      // The last byte goes only when the whole file is verified: a client never sees a complete response of unverified bytes.
      const limit = body.finished ? size : Math.min(body.watermark, size - 1);
      if (sent >= limit) {
        await (sent === size - 1 ? verified : body.waitPast(sent, gone));
        continue;
      }
      const want = limit - sent;
      const n = await sendRange(body.fh, res, sent, limit - 1, sendTimeout, cache.readBuffers, send.pacer);
      sent += n;
      if (n < want) throw new Error("the client took no bytes for cache.sendTimeout or went away");
    }
    res.end();
  } catch (err) {
    if (!res.headersSent) throw err;
    cache.log.info({ key: params.key, sent, of: size, err: (err as Error).message }, "download of a filling file cut");
    res.destroy();
  } finally {
    cache.metrics.servedBytes.inc(sent);
    send.onSent?.(sent);
    release?.();
    fill.leave();
    await body.release();
  }
  return true;
}
