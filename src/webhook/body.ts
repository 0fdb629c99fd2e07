// Read one review body under the serving limits: at most bodyLimit bytes, within
// bodyTimeoutMs, and only while the bytes buffered across all reviews fit the shared
// budget. A caller that stalls or floods is answered (408/413/503), never waited on.
import type { IncomingMessage } from "node:http";
import type { ByteBudget, ServingLimits } from "./limits.js";

export type BodyResult =
  | { ok: true; body: Buffer; /** Give the body's bytes back to the budget. */ release(): void }
  /**
   * status 0: the client went away, nothing to answer. close: end the connection after
   * the answer instead of discarding the rest of the body (a stalled body, or a large one).
   */
  | { ok: false; status: 0 | 408 | 413 | 503; reason: string; error: string; close: boolean };

/**
 * The rest of a refused body up to this size is read and discarded, so a caller that
 * writes it all (kube-apiserver does) reads a 503 rather than a reset; a larger rest
 * would cost more CPU to discard than a reset costs the caller.
 */
const DRAIN_MAX = 64 * 1024;

const busy = (limits: ServingLimits, rest: number): BodyResult => ({
  ok: false,
  status: 503,
  reason: "busy",
  error: `the webhook is buffering ${limits.maxInFlightBytes} bytes of review bodies already (--max-in-flight-bytes); retry shortly`,
  close: !(rest <= DRAIN_MAX),
});

export function readBody(req: IncomingMessage, limits: ServingLimits, budget: ByteBudget): Promise<BodyResult> {
  const announced = Number(req.headers["content-length"] ?? 0);
  // Reserve what is announced before reading a byte, so stalled bodies cannot pile up unseen.
  if (announced > 0 && !budget.take(announced)) return Promise.resolve(busy(limits, announced));
  let reserved = Math.max(0, announced);
  const release = () => (budget.give(reserved), (reserved = 0));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (r: BodyResult) => {
      if (settled) return;
      settled = true;
      req.removeListener("data", onData);
      req.resume(); // discard whatever else comes
      if (!r.ok) {
        chunks.length = 0;
        release();
      }
      resolve(r);
    };
    // After a refusal the rest of the body is discarded as it comes; the deadline still ends it.
    const timer = setTimeout(() => {
      if (settled) req.socket.destroy();
      else settle({ ok: false, status: 408, reason: "body-timeout", error: `the request body did not arrive within ${limits.bodyTimeoutMs} ms`, close: true });
    }, limits.bodyTimeoutMs);
    timer.unref();
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.bodyLimit) return settle({ ok: false, status: 413, reason: "too-large", error: `request body exceeds the ${limits.bodyLimit}-byte limit`, close: false });
      if (size > reserved) {
        // Only a chunked body grows past its reservation; its rest is unknown, so it counts as large.
        if (!budget.take(size - reserved)) return settle(busy(limits, Infinity));
        reserved = size;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.on("end", () => {
      clearTimeout(timer);
      settle({ ok: true, body: Buffer.concat(chunks, size), release });
    });
    req.on("close", () => {
      clearTimeout(timer);
      settle({ ok: false, status: 0, reason: "aborted", error: "the client closed the connection", close: true });
    });
    req.on("error", () => settle({ ok: false, status: 0, reason: "aborted", error: "the request failed", close: true }));
  });
}
