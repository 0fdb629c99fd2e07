// What a slow or flooding caller may cost the webhook: stalled bodies are answered 408
// at the body deadline, bodies past the shared in-flight budget get 503 at once,
// connections past the cap are closed, and ordinary reviews are answered meanwhile.
import { Agent } from "node:https";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startWebhook, type RunningWebhook } from "../../src/cli/webhook.js";
import { MAX_JSON_VALUES, RefusalLog } from "../../src/webhook/limits.js";
import { sampleValue } from "../../src/webhook/metrics.js";
import { openRaw, plainReview, postHead, postReview, send, type RawConnection, type Target } from "../support/tls-client.js";
import { makeCertDir } from "../support/tls-secret.js";

const BODY_TIMEOUT_MS = 1500;
const MAX_IN_FLIGHT = 1024 * 1024;
const MAX_CONNECTIONS = 6;

let webhook: RunningWebhook;
let target: Target;
const open: RawConnection[] = [];

beforeAll(async () => {
  const certs = await makeCertDir();
  webhook = await startWebhook({
    host: "127.0.0.1",
    port: 0,
    certs: certs.dir,
    generateCerts: false,
    limits: { bodyTimeoutMs: BODY_TIMEOUT_MS, maxInFlightBytes: MAX_IN_FLIGHT, maxConnections: MAX_CONNECTIONS },
  });
  target = { port: webhook.port, ca: certs.bundle.caCert };
});
afterEach(async () => {
  for (const c of open.splice(0)) c.destroy();
  await new Promise((r) => setTimeout(r, 100)); // let the server see the closes before the next test counts connections
});
afterAll(() => webhook?.close(0));

async function stalled(contentLength: number, sent: number): Promise<RawConnection> {
  const c = await openRaw(target);
  open.push(c);
  c.write(postHead("/mutate", { "content-length": contentLength }));
  if (sent) c.write(Buffer.alloc(sent, 0x20));
  return c;
}

const quickReview = async (uid: string) => {
  const t0 = Date.now();
  const r = await postReview(target, "/mutate", await plainReview(uid));
  return { ...r, ms: Date.now() - t0 };
};

describe("slow bodies", () => {
  it("answers a stalled body 408 at the body deadline and closes, while an ordinary review is answered at once", async () => {
    const slow = await stalled(200_000, 100_000);
    const ok = await quickReview("uid-during-stall");
    expect(ok.json.response).toEqual({ uid: "uid-during-stall", allowed: true });
    expect(ok.ms).toBeLessThan(BODY_TIMEOUT_MS);
    const r = await slow.reply;
    expect(r.status).toBe(408);
    expect(JSON.parse(r.text).error).toBe(`the request body did not arrive within ${BODY_TIMEOUT_MS} ms`);
    expect(r.ms).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - 50);
    expect(r.ms).toBeLessThan(BODY_TIMEOUT_MS + 4000);
    await slow.closed;
    expect(await sampleValue(webhook.metrics, "cache_io_webhook_reviews_total", { outcome: "error", reason: "body-timeout" })).toBeGreaterThanOrEqual(1);
  });

  it("answers stalled headers at the deadline too (a request line and no end of headers)", async () => {
    const c = await openRaw(target);
    open.push(c);
    c.write("POST /mutate HTTP/1.1\r\nhost: localhost\r\n");
    const t0 = Date.now();
    await c.closed;
    expect(Date.now() - t0).toBeLessThan(BODY_TIMEOUT_MS + 4000);
  });
});

describe("keep-alive", () => {
  it("a connection idle for longer than the body deadline still carries the next review (the deadline runs per request)", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await postReview({ ...target, agent }, "/mutate", await plainReview("uid-ka-1"));
      expect(first.json.response.allowed).toBe(true);
      await new Promise((r) => setTimeout(r, BODY_TIMEOUT_MS + 1000));
      const second = await postReview({ ...target, agent }, "/mutate", await plainReview("uid-ka-2"));
      expect(second.reusedSocket).toBe(true);
      expect(second.json.response).toEqual({ uid: "uid-ka-2", allowed: true });
    } finally {
      agent.destroy();
    }
  });
});

describe("bytes in flight", () => {
  it("answers 503 at once to a body announced past the budget others are holding, then accepts it once they are gone", async () => {
    const holder = await stalled(700_000, 10);
    const t0 = Date.now();
    const second = await stalled(700_000, 0);
    const r = await second.reply;
    expect(r.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(BODY_TIMEOUT_MS);
    expect(JSON.parse(r.text).error).toContain(`buffering ${MAX_IN_FLIGHT} bytes`);
    expect(JSON.parse(r.text).error).toContain("--max-in-flight-bytes");
    // Small reviews fit in what is left.
    expect((await quickReview("uid-beside-holder")).json.response.allowed).toBe(true);
    holder.destroy();
    await holder.closed;
    const body = JSON.stringify(await plainReview("uid-big-after"));
    const padded = body.slice(0, -1) + " ".repeat(700_000 - body.length) + "}";
    const after = await send(target, { path: "/mutate", body: padded });
    expect(after.json.response).toEqual({ uid: "uid-big-after", allowed: true });
  });

  it("a small refused body is read and discarded: the caller gets the 503, not a reset, and its connection stays usable", async () => {
    const holder = await stalled(MAX_IN_FLIGHT - 5_000, 10);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const body = JSON.stringify(await plainReview("uid-small-refused"));
      const padded = body.slice(0, -1) + " ".repeat(20_000 - body.length) + "}";
      const refused = await send({ ...target, agent }, { path: "/mutate", body: padded });
      expect(refused.status).toBe(503);
      holder.destroy();
      await holder.closed;
      await new Promise((r) => setTimeout(r, 300)); // the server sees the close and gives the holder's bytes back
      const again = await send({ ...target, agent }, { path: "/mutate", body: padded });
      expect(again.reusedSocket).toBe(true);
      expect(again.json.response).toEqual({ uid: "uid-small-refused", allowed: true });
    } finally {
      agent.destroy();
    }
  });

  it("answers 503 to a chunked body that grows past the budget", async () => {
    const holder = await stalled(700_000, 10);
    const c = await openRaw(target);
    open.push(c);
    c.write(postHead("/mutate", { "transfer-encoding": "chunked" }));
    const chunk = Buffer.alloc(100_000, 0x20);
    for (let i = 0; i < 5; i++) c.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]));
    const r = await c.reply;
    expect(r.status).toBe(503);
    holder.destroy();
  });

  it("answers 413 to a body announced over the size limit before a byte of it is sent", async () => {
    const c = await stalled(4 * 1024 * 1024, 0);
    const r = await c.reply;
    expect(r.status).toBe(413);
    expect(r.ms).toBeLessThan(BODY_TIMEOUT_MS);
    expect(JSON.parse(r.text).error).toBe(`request body exceeds the ${3 * 1024 * 1024}-byte limit`);
  });
});

describe("JSON complexity", () => {
  it("answers 413 to a body under the size limit that holds more JSON values than any pod (it would parse into a million objects)", async () => {
    const review = await plainReview("uid-dense");
    review.request.object.spec.x = Array.from({ length: MAX_JSON_VALUES }, () => []);
    const r = await send(target, { path: "/mutate", body: JSON.stringify(review) });
    expect(r.status).toBe(413);
    expect(r.json.error).toBe(`request body holds more than ${MAX_JSON_VALUES} JSON values; a Pod's AdmissionReview holds far fewer`);
  });

  it("does not count commas, brackets or escaped quotes inside strings", async () => {
    const review = await plainReview("uid-strings");
    review.request.object.metadata.annotations = { "example.com/blob": '[{\\",'.repeat(100_000) };
    const r = await send(target, { path: "/mutate", body: JSON.stringify(review) });
    expect(r.json.response).toEqual({ uid: "uid-strings", allowed: true });
  });
});

describe("connections", () => {
  it("closes connections past --max-connections at accept and serves again once some close", async () => {
    const idle: RawConnection[] = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) idle.push(await openRaw(target));
    open.push(...idle);
    await expect(openRaw(target).then((c) => (open.push(c), c.reply))).rejects.toThrow();
    idle[0]!.destroy();
    await idle[0]!.closed;
    await new Promise((r) => setTimeout(r, 100));
    expect((await quickReview("uid-after-cap")).json.response.allowed).toBe(true);
  });
});

describe("refusal logs", () => {
  it("log one line per reason and second, counting the refusals folded into it", () => {
    const log = new RefusalLog(1000);
    expect(log.admit("busy", 0)).toBe(0);
    expect(log.admit("busy", 10)).toBeUndefined();
    expect(log.admit("busy", 999)).toBeUndefined();
    expect(log.admit("body-timeout", 999)).toBe(0);
    expect(log.admit("busy", 1000)).toBe(2);
    expect(log.admit("busy", 1500)).toBeUndefined();
  });
});
