// Receive one response body into a part of the temp file: chunks are batched into
// writes of about 1 MiB (positional writev, no stream plumbing), the socket is paused
// while 2 MiB wait for the disk, and every byte is counted (size cap, budget) first.
// A raw-socket response (a direct plain-http hop) is read by receive-raw.ts.
import type { IncomingMessage } from "node:http";
import type { FillResponse } from "../origin.js";
import { RawResponse } from "../raw-origin.js";
import type { FillBody, PartState } from "./body.js";
import { receiveRaw } from "./receive-raw.js";

export const WRITE_BATCH = 1 << 20;
/** Per connection at most this (plus a chunk) waits for the disk: cache.parts.maxConnections bounds fill memory. */
const MAX_PENDING = 2 << 20;

export class BodyOverrun extends Error {}

/**
 * Write `res`'s body to `part` from its written bytes on; `onBytes` sees every chunk
 * before it is written (throw to stop). Resolves when the body ended and is written;
 * rejects with the body's error (a cut connection) or the write's, after writing the
 * bytes in hand (so a retry asks only for the rest).
 */
export function receive(res: FillResponse, body: FillBody, part: PartState, onBytes: (n: number) => void): Promise<void> {
  return res instanceof RawResponse ? receiveRaw(res, body, part, onBytes) : receiveStream(res, body, part, onBytes);
}

function receiveStream(res: IncomingMessage, body: FillBody, part: PartState, onBytes: (n: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let batch: Buffer[] = [];
    let batchLen = 0;
    let writing = false;
    let ended = false;
    let settled = false;
    /** Bytes of this part taken so far (written, being written, batched). */
    let taken = part.written;
    const limit = part.end - part.start;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      res.destroy();
      reject(err);
    };
    /** Set when the connection broke: the bytes in hand are written first (a retry goes on from there), then this is the outcome. */
    let broken: Error | undefined;
    const flush = () => {
      if (writing || settled) return;
      if (batchLen === 0) {
        if (broken) fail(broken);
        else if (ended) {
          settled = true;
          resolve();
        }
        return;
      }
      const bufs = batch;
      const n = batchLen;
      batch = [];
      batchLen = 0;
      writing = true;
      body.fh.writev(bufs, part.start + part.written).then(({ bytesWritten }) => {
        writing = false;
        if (bytesWritten !== n) return fail(Object.assign(new Error(`short write to ${body.path}: ${bytesWritten} of ${n} bytes`), { syscall: "write" }));
        body.wrote(part, n);
        if (res.isPaused() && !ended) res.resume();
        if (ended || broken || batchLen >= WRITE_BATCH) flush();
      }, fail);
    };
    res.on("data", (chunk: Buffer) => {
      if (settled || ended || broken) return;
      try {
        if (taken + chunk.length > limit) throw new BodyOverrun(`the origin sent more than the ${limit} bytes asked for`);
        onBytes(chunk.length);
      } catch (err) {
        return fail(err as Error);
      }
      taken += chunk.length;
      body.received += chunk.length;
      batch.push(chunk);
      batchLen += chunk.length;
      if (batchLen >= WRITE_BATCH) flush();
      if (writing && batchLen >= MAX_PENDING) res.pause();
    });
    res.once("end", () => {
      if (ended) return;
      ended = true;
      flush();
    });
    const breakOff = (err: Error) => {
      if (ended || broken) return;
      broken = err;
      flush();
    };
    res.once("error", breakOff);
    const cut = () => breakOff(Object.assign(new Error("the connection closed before the body ended"), { code: "ECONNRESET" }));
    res.once("close", cut);
    // The connection may have broken while the temp file was being opened (no listener saw it then).
    if (res.destroyed && !res.complete) cut();
  });
}
