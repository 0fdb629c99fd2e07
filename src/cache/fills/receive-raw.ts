// receive() for the raw-socket transport: the body arrives as regions of reused slabs
// (src/cache/raw-origin.ts), which are written to the part from the slab itself (one
// positional writev per batch, no copy) and handed back once on disk. The same contract
// as the node:http reader: every byte counted (size cap, budget) before it is written,
// the bytes in hand written before a broken connection's error is the outcome.
import type { RawResponse } from "../raw-origin.js";
import type { FillBody, PartState } from "./body.js";
import { BodyOverrun, WRITE_BATCH } from "./receive.js";

export function receiveRaw(res: RawResponse, body: FillBody, part: PartState, onBytes: (n: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let batch: Buffer[] = [];
    let batchLen = 0;
    let writing = false;
    let ended = false;
    let settled = false;
    let broken: Error | undefined;
    /** Bytes of this part taken so far (written, being written, batched). */
    let taken = part.written;
    const limit = part.end - part.start;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      res.destroy();
      reject(err);
    };
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
        res.release(n);
        if (ended || broken || batchLen >= WRITE_BATCH) flush();
      }, fail);
    };
    res.read({
      chunk(region) {
        if (settled || broken) return;
        try {
          if (taken + region.length > limit) throw new BodyOverrun(`the origin sent more than the ${limit} bytes asked for`);
          onBytes(region.length);
        } catch (err) {
          return fail(err as Error);
        }
        taken += region.length;
        body.received += region.length;
        const last = batch.at(-1);
        // Reads that follow each other in a slab are one buffer of the writev.
        if (last && last.buffer === region.buffer && last.byteOffset + last.length === region.byteOffset) {
          batch[batch.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + region.length);
        } else batch.push(region);
        batchLen += region.length;
        if (batchLen >= WRITE_BATCH) flush();
      },
      end() {
        ended = true;
        flush();
      },
      fail(err) {
        broken ??= err;
        flush();
      },
    });
  });
}
