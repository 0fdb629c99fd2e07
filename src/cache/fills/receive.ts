// Receive one response body into a part of the temp file (the writes: part-writer.ts).
// A node:http body is paused while 2 MiB wait for the disk; a raw-socket body (a direct
// plain-http hop, src/cache/raw-origin.ts) comes as regions of reused slabs, written from
// the slab itself and handed back once on disk (the socket pauses while 2 MiB are out).
import type { IncomingMessage } from "node:http";
import type { FillResponse } from "../origin.js";
import { RawResponse } from "../raw-origin.js";
import type { FillBody, PartState } from "./body.js";
import { PartWriter } from "./part-writer.js";

export { BodyOverrun } from "./part-writer.js";

/** Per connection at most this (plus a chunk) waits for the disk: cache.parts.maxConnections bounds fill memory. */
const MAX_PENDING = 2 << 20;

/**
 * Write `res`'s body to `part` from its written bytes on; `onBytes` sees every chunk
 * before it is written (throw to stop). Resolves when the body ended and is written;
 * rejects with the body's error (a cut connection) or the write's, after writing the
 * bytes in hand (so a retry asks only for the rest).
 */
export function receive(res: FillResponse, body: FillBody, part: PartState, onBytes: (n: number) => void): Promise<void> {
  return res instanceof RawResponse ? receiveRaw(res, body, part, onBytes) : receiveStream(res, body, part, onBytes);
}

function receiveRaw(res: RawResponse, body: FillBody, part: PartState, onBytes: (n: number) => void): Promise<void> {
  const w = new PartWriter(body, part, onBytes, { written: (n) => res.release(n), stop: () => res.destroy() });
  res.read({ chunk: (region) => w.take(region), end: () => w.end(), fail: (err) => w.broke(err) });
  return w.done;
}

function receiveStream(res: IncomingMessage, body: FillBody, part: PartState, onBytes: (n: number) => void): Promise<void> {
  let ended = false;
  const w = new PartWriter(body, part, onBytes, {
    written: () => {
      if (res.isPaused() && !ended) res.resume();
    },
    stop: () => res.destroy(),
  });
  res.on("data", (chunk: Buffer) => {
    w.take(chunk);
    if (w.waiting >= MAX_PENDING) res.pause();
  });
  res.once("end", () => {
    ended = true;
    w.end();
  });
  res.once("error", (err) => w.broke(err));
  const cut = () => w.broke(Object.assign(new Error("the connection closed before the body ended"), { code: "ECONNRESET" }));
  res.once("close", cut);
  // The connection may have broken while the temp file was being opened (no listener saw it then).
  if (res.destroyed && !res.complete) cut();
  return w.done;
}
