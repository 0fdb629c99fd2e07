// The peer client's pure rules: which of an owner's error answers fail the fill here
// too (the origin's own refusal) and which send the node on to the next peer, and which
// x-cache-io-origin-version headers are taken.
import { describe, expect, it } from "vitest";
import { ownerVerdict, parseVersion } from "../../src/cache/peers/fetch.js";

const peer = { node: "node-a", address: "10.0.0.1", port: 8586 };

describe("an owner's error answer", () => {
  it.each([
    { status: 502, reason: "origin_status", originStatus: 404 },
    { status: 502, reason: "origin_status", originStatus: 403 },
    { status: 502, reason: "checksum" },
    { status: 413, reason: "too_large" },
    { status: 403, reason: "policy" },
  ])("is final for $reason $originStatus", (e) => {
    const err = ownerVerdict(peer, e.status, { ...e, message: "what the owner said" });
    expect(err?.message).toBe("peer node-a: what the owner said");
    expect(err?.status).toBe(e.status);
    expect(err?.transient).toBe(false);
    if (e.originStatus) expect(err?.originStatus).toBe(e.originStatus);
  });

  it.each([
    { status: 502, reason: "origin_status", originStatus: 503 },
    { status: 502, reason: "origin_status", originStatus: 429 },
    { status: 502, reason: "origin_status", originStatus: 408 },
    { status: 502, reason: "origin_status" },
    { status: 502, reason: "network" },
    { status: 504, reason: "timeout" },
    { status: 503, reason: "busy" },
    { status: 401, reason: "unauthenticated" },
    { status: 403, reason: "unauthenticated" },
    { status: 500 },
    { status: 302 },
  ])("sends the node on for $status $reason $originStatus", (e) => {
    expect(ownerVerdict(peer, e.status, { ...e, message: "m" })).toBeNull();
  });
});

describe("x-cache-io-origin-version", () => {
  it("is taken when it names the body's length and has string validators", () => {
    expect(parseVersion('{"size":5,"etag":"\\"e\\"","lastModified":"Tue, 01 Dec 2026 10:00:00 GMT"}', 5)).toEqual({ size: 5, etag: '"e"', lastModified: "Tue, 01 Dec 2026 10:00:00 GMT" });
    expect(parseVersion('{"size":5}', 5)).toEqual({ size: 5 });
  });

  it.each(['{"size":6}', '{"size":"5"}', '{"size":5,"etag":7}', "not json", "null", "[5]"])("is ignored when it is %s for 5 bytes", (raw) => {
    expect(parseVersion(raw, 5)).toBeUndefined();
  });
});
