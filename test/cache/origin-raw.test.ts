// The raw-socket transport of fills (src/cache/raw-origin.ts, http1.ts) against a real
// loopback server that writes exact bytes: what it reads itself (Content-Length and
// close-delimited bodies, into reused slabs, pausing while the disk is behind), what it
// hands to node:http (chunked), and the heads it refuses with a message that says why.
import { getEventListeners } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheError } from "../../src/cache/errors.js";
import { FillBody } from "../../src/cache/fills/body.js";
import { receive } from "../../src/cache/fills/receive.js";
import { MAX_HEAD, parseHead } from "../../src/cache/http1.js";
import { fillGet, type OriginSettings } from "../../src/cache/origin.js";
import { RawResponse } from "../../src/cache/raw-origin.js";
import { pseudoRandom } from "../support/origin.js";

const MiB = 2 ** 20;

/** A loopback server whose answer to each request is written by `answer` (the request head in hand). */
interface Scripted {
  port: number;
  requests: string[];
  answer: (sock: Socket, head: string) => void;
}

let server: Server;
let scripted: Scripted;
let dir: string;
const sockets = new Set<Socket>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "origin-raw-"));
  server = createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => undefined);
    let head = "";
    const onData = (b: Buffer) => {
      head += b.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      sock.off("data", onData);
      scripted.requests.push(head.slice(0, end));
      scripted.answer(sock, head.slice(0, end));
    };
    sock.on("data", onData);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  scripted = { port: (server.address() as { port: number }).port, requests: [], answer: () => undefined };
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const settings = (more: Partial<OriginSettings> = {}): OriginSettings => ({
  rules: { allow: ["127.0.0.1"], schemes: ["http"], allowPrivate: ["127.0.0.1"] },
  connectTimeout: 5_000,
  idleTimeout: 10_000,
  ...more,
});
const url = (path = "/f.bin") => `http://127.0.0.1:${scripted.port}${path}`;

/** GET through fillGet and receive() into a temp file; the bytes written, or the error. */
async function fill(size: number | undefined, s = settings(), onBytes: (n: number) => void = () => undefined) {
  const r = await fillGet(url(), s, {}, AbortSignal.timeout(20_000));
  const path = join(dir, `body-${Math.random().toString(36).slice(2)}`);
  const body = new FillBody(await open(path, "w+"), path, size, [{ index: 0, start: 0, end: size ?? Number.MAX_SAFE_INTEGER }]);
  const part = body.parts[0]!;
  const outcome = await receive(r.res, body, part, onBytes).then(() => undefined, (e: unknown) => (r.failure() ?? e) as Error);
  body.fail(new Error("test done"));
  await body.release();
  return { res: r.res, outcome, written: readFileSync(path).subarray(0, part.written) };
}

describe("bodies the raw transport reads", () => {
  it("reads a Content-Length body on the raw socket, byte-exact, into a few reused slabs (no buffer per read)", async () => {
    const content = pseudoRandom(24 * MiB, 7);
    scripted.answer = (sock) => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${content.length}\r\n\r\n`);
      for (let i = 0; i < content.length; i += 16_384) sock.write(content.subarray(i, i + 16_384)); // many small reads
      sock.end();
    };
    const r = await fillGet(url(), settings(), {}, AbortSignal.timeout(20_000));
    expect(r.res).toBeInstanceOf(RawResponse);
    const raw = r.res as RawResponse;
    const buffers = new Set<ArrayBufferLike>();
    const got: Buffer[] = [];
    await new Promise<void>((resolve, reject) =>
      raw.read({
        chunk: (region) => {
          buffers.add(region.buffer);
          got.push(Buffer.from(region)); // a copy: the slab is handed back at once
          raw.release(region.length);
        },
        end: resolve,
        fail: reject,
      }),
    );
    expect(Buffer.concat(got).equals(content)).toBe(true);
    expect(got.length).toBeGreaterThan(20); // the reads were many...
    expect(buffers.size).toBeLessThanOrEqual(4); // ...into the same few slabs
  });

  it("leaves no listener on the fill's signal once a request is done (a long fill's parts would each hold a socket and a slab)", async () => {
    scripted.answer = (sock) => sock.end("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    const fillSignal = new AbortController().signal;
    for (let i = 0; i < 20; i++) {
      const r = await fillGet(url(), settings(), {}, fillSignal);
      expect(r.res).toBeInstanceOf(RawResponse);
      await new Promise<void>((resolve, reject) => (r.res as RawResponse).read({ chunk: (b) => (r.res as RawResponse).release(b.length), end: resolve, fail: reject }));
    }
    await expect.poll(() => getEventListeners(fillSignal, "abort").length).toBe(0); // the last socket closes a moment after its body ends
  });

  it("sends header values byte for byte (latin1, as node:http does): an ETag with obs-text comes back in If-Range unchanged", async () => {
    scripted.requests = [];
    scripted.answer = (sock) => sock.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    const r = await fillGet(url(), settings(), { "if-range": '"caf\u00e9"' }, AbortSignal.timeout(10_000));
    r.res.destroy();
    const sent = scripted.requests.at(-1)!;
    expect(Buffer.from(sent, "latin1").includes(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x22]))).toBe(true); // caf\xe9"
    expect(Buffer.from(sent, "latin1").includes(Buffer.from([0xc3, 0xa9]))).toBe(false); // not UTF-8
  });

  it("reads a body without Content-Length to the connection's close", async () => {
    const content = pseudoRandom(3 * MiB + 5, 8);
    scripted.answer = (sock) => {
      sock.write("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
      sock.end(content);
    };
    const { res, outcome, written } = await fill(undefined);
    expect(res).toBeInstanceOf(RawResponse);
    expect(outcome).toBeUndefined();
    expect(written.equals(content)).toBe(true);
  });

  it("skips 100 Continue and 103 Early Hints before the final head", async () => {
    scripted.answer = (sock) => sock.end("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"v1\"\r\n\r\nhello");
    const { res, written } = await fill(5);
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('"v1"');
    expect(res.headers.link).toBeUndefined();
    expect(written.toString()).toBe("hello");
  });

  it("reads a chunked 200 with node:http (asked again), so the bytes are still right", async () => {
    const content = pseudoRandom(300_000, 9);
    scripted.requests = [];
    scripted.answer = (sock) => {
      sock.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (let i = 0; i < content.length; i += 100_000) sock.write(`${(Math.min(100_000, content.length - i)).toString(16)}\r\n`), sock.write(content.subarray(i, i + 100_000)), sock.write("\r\n");
      sock.end("0\r\n\r\n");
    };
    const results: string[] = [];
    const { res, outcome, written } = await fill(undefined, settings({ observe: (x) => results.push(x) }));
    expect(res).not.toBeInstanceOf(RawResponse);
    expect(outcome).toBeUndefined();
    expect(written.equals(content)).toBe(true);
    expect(scripted.requests).toHaveLength(2);
    expect(results).toEqual(["ok", "ok"]);
  });

  it("does not read the chunked body of an error status: the status is the answer, asked once", async () => {
    scripted.requests = [];
    scripted.answer = (sock) => sock.end("HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nbusy!\r\n0\r\n\r\n");
    const r = await fillGet(url(), settings(), {}, AbortSignal.timeout(10_000));
    expect(r.res.statusCode).toBe(503);
    r.res.resume();
    expect(scripted.requests).toHaveLength(1);
  });

  it("sends the request head as node:http would: host, user agent, identity encoding, the caller's headers", async () => {
    scripted.requests = [];
    scripted.answer = (sock) => sock.end("HTTP/1.1 204 No Content\r\n\r\n");
    const r = await fillGet(url("/a%20b.bin?x=1"), settings(), { Range: "bytes=0-9", "if-range": '"v1"' }, AbortSignal.timeout(10_000));
    expect(r.res.statusCode).toBe(204);
    const lines = scripted.requests[0]!.split("\r\n");
    expect(lines[0]).toBe("GET /a%20b.bin?x=1 HTTP/1.1");
    expect(lines).toContain(`host: 127.0.0.1:${scripted.port}`);
    expect(lines).toContain("accept-encoding: identity");
    expect(lines).toContain("range: bytes=0-9");
    expect(lines).toContain('if-range: "v1"');
    expect(lines.some((l) => l.startsWith("user-agent: cache-io/"))).toBe(true);
  });
});

describe("the hop's rules on the raw socket", () => {
  it("connects to an IPv6 literal ([::1]) and to a name through the checked lookup", async () => {
    const v6 = createServer((sock) => sock.once("data", () => sock.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6")));
    await new Promise<void>((r) => v6.listen(0, "::1", r));
    try {
      const port = (v6.address() as { port: number }).port;
      const rules = { allow: ["*"], schemes: ["http"], allowPrivate: ["::1"] };
      const direct = await fillGet(`http://[::1]:${port}/x`, settings({ rules }), {}, AbortSignal.timeout(10_000));
      expect(direct.res).toBeInstanceOf(RawResponse);
      expect(direct.res.statusCode).toBe(200);
      direct.res.resume();
      const named = await fillGet(`http://six.test:${port}/x`, settings({ rules, resolve: async () => [{ address: "::1", family: 6 }] }), {}, AbortSignal.timeout(10_000));
      expect(named.res.statusCode).toBe(200);
      named.res.resume();
      const loopback4Only = { ...rules, allowPrivate: ["127.0.0.1"] };
      const refusedName = await fillGet(`http://six.test:${port}/x`, settings({ rules: loopback4Only, resolve: async () => [{ address: "::1", family: 6 }] }), {}, AbortSignal.timeout(10_000)).then(() => undefined, (e: unknown) => e as CacheError);
      expect(refusedName?.reason).toBe("policy");
      expect(refusedName?.message).toContain('origin host "six.test" resolves to ::1');
    } finally {
      await new Promise((r) => v6.close(r));
    }
  });

  it("closes the connection when the fill is abandoned mid-body", async () => {
    let served: Socket | undefined;
    scripted.answer = (sock) => {
      served = sock;
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${100 * MiB}\r\n\r\n`);
      sock.write(pseudoRandom(MiB, 14));
    };
    const stop = new AbortController();
    const r = await fillGet(url(), settings(), {}, stop.signal);
    const outcome = new Promise<Error>((resolve) => (r.res as RawResponse).read({ chunk: (b) => (r.res as RawResponse).release(b.length), end: () => resolve(new Error("ended")), fail: resolve }));
    stop.abort();
    expect((await outcome).name).toBe("AbortError");
    await new Promise<void>((resolve) => (served!.closed ? resolve() : served!.once("close", () => resolve())));
  });
});

describe("flow control and failures of a raw body", () => {
  it("stops reading while about 2 MiB wait for the disk, and goes on when they are written", async () => {
    const content = pseudoRandom(32 * MiB, 10);
    scripted.answer = (sock) => sock.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${content.length}\r\n\r\n`), content]));
    const r = await fillGet(url(), settings(), {}, AbortSignal.timeout(20_000));
    const raw = r.res as RawResponse;
    const held: Buffer[] = [];
    let total = 0;
    const ended = new Promise<void>((resolve, reject) => raw.read({ chunk: (b) => (held.push(b), (total += b.length)), end: resolve, fail: reject }));
    await new Promise((res) => setTimeout(res, 500));
    expect(total).toBeGreaterThanOrEqual(2 * MiB);
    expect(total).toBeLessThan(3 * MiB);
    const got: Buffer[] = [];
    const drain = () => {
      for (let b = held.shift(); b; b = held.shift()) got.push(Buffer.from(b)), raw.release(b.length);
    };
    const timer = setInterval(drain, 5);
    try {
      await ended;
    } finally {
      clearInterval(timer);
    }
    drain();
    expect(Buffer.concat(got).equals(content)).toBe(true);
  });

  it("writes the bytes in hand when the origin stalls mid-body, then fails with the idle timeout", async () => {
    const content = pseudoRandom(200_000, 11);
    scripted.answer = (sock) => sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${2 * content.length}\r\n\r\n`), content]));
    const { outcome, written } = await fill(2 * content.length, settings({ idleTimeout: 400 }));
    expect(outcome).toBeInstanceOf(CacheError);
    expect((outcome as CacheError).reason).toBe("timeout");
    expect(outcome!.message).toContain("sent nothing for 400 ms (cache.idleTimeout)");
    expect(written.equals(content)).toBe(true);
  });

  it("writes the bytes in hand when the connection closes before Content-Length, then fails (a retry goes on from there)", async () => {
    const content = pseudoRandom(1_500_000, 12);
    scripted.answer = (sock) => sock.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${content.length + 10}\r\n\r\n`), content]));
    const { outcome, written } = await fill(content.length + 10);
    expect(outcome?.message).toMatch(/closed before the body ended/);
    expect(written.equals(content)).toBe(true);
  });

  it("counts bytes before it writes them: a size cap thrown from onBytes leaves nothing past it on disk", async () => {
    const content = pseudoRandom(8 * MiB, 13);
    scripted.answer = (sock) => sock.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${content.length}\r\n\r\n`), content]));
    let seen = 0;
    const { outcome, written } = await fill(content.length, settings(), (n) => {
      if (seen + n > 3 * MiB) throw new Error("over the cap");
      seen += n;
    });
    expect(outcome?.message).toBe("over the cap");
    expect(written.length).toBeLessThanOrEqual(seen);
    expect(written.equals(content.subarray(0, written.length))).toBe(true);
  });
});

describe("response heads the raw transport refuses", () => {
  const refused = async (response: string | Buffer): Promise<CacheError> => {
    scripted.answer = (sock) => sock.end(response);
    const err = await fillGet(url(), settings(), {}, AbortSignal.timeout(10_000)).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CacheError);
    return err as CacheError;
  };

  it("a folded header line (obs-fold)", async () => {
    const err = await refused("HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nContent-Length: 1\r\n\r\nx");
    expect(err.message).toMatch(new RegExp(`^origin 127\\.0\\.0\\.1:${scripted.port} broke HTTP/1\\.1 answering http://127\\.0\\.0\\.1:${scripted.port}/f\\.bin: its response head folds a header line \\(obs-fold`));
    expect(err.status).toBe(502);
  });

  it("two different Content-Length values", async () => {
    expect((await refused("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx")).message).toContain("two different Content-Length values (1, 2)");
  });

  it("a Content-Length that is not a number", async () => {
    expect((await refused("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nx")).message).toContain('its Content-Length is not a number ("1x")');
  });

  it("a head larger than 64 KiB", async () => {
    expect((await refused(`HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(MAX_HEAD)}\r\n\r\n`)).message).toContain("larger than 64 KiB");
  });

  it("a status line that is not HTTP/1.x, and 101 to a plain GET", async () => {
    expect((await refused("ICY 200 OK\r\n\r\n")).message).toContain('its status line is not HTTP/1.x ("ICY 200 OK")');
    expect((await refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")).message).toContain("101 Switching Protocols");
  });

  it("a connection closed before the head ended: a transient network error", async () => {
    const err = await refused("HTTP/1.1 200 OK\r\nContent-Le");
    expect(err.reason).toBe("network");
    expect(err.transient).toBe(true);
  });
});

describe("parseHead", () => {
  it("waits for the blank line, then gives the status, lower-case fields and the head's size", () => {
    const head = Buffer.from("HTTP/1.1 206 Partial Content\r\nETag: \"a\"\r\nSet-Cookie: x=1\r\nSet-Cookie: y=2\r\nVia: a\r\nVia: b\r\n\r\nBODY");
    expect(parseHead(head, 20)).toBeNull();
    const h = parseHead(head, head.length)!;
    expect(h.status).toBe(206);
    expect(h.headers).toEqual({ etag: '"a"', "set-cookie": ["x=1", "y=2"], via: "a, b" });
    expect(head.subarray(h.size).toString()).toBe("BODY");
  });

  it("goes on searching where an earlier call (with fewer bytes) stopped, also when the blank line straddles it", () => {
    const head = Buffer.from("HTTP/1.1 200 OK\r\nA: b\r\n\r\n");
    for (let searched = 0; searched < head.length; searched++) expect(parseHead(head, head.length, searched)?.size).toBe(head.length);
  });

  it("refuses a bare LF inside the head and a header name with a space", () => {
    expect(() => parseHead(Buffer.from("HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\n"), 30)).toThrow(/bare CR or LF/);
    expect(() => parseHead(Buffer.from("HTTP/1.1 200 OK\r\nBad Name: b\r\n\r\n"), 32)).toThrow(/malformed header line/);
  });
});
