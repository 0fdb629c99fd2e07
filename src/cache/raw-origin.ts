// The raw-socket transport of a direct plain-http origin hop (origin.ts keeps the rules:
// SSRF check, credentials, redirects, metrics): the GET written on a `net.connect`
// socket whose reads land straight in reused slabs (slabs.ts, `onread`), the response
// head parsed by http1.ts, and a Content-Length (or close-delimited) body handed to its
// reader as slab regions (one per read) in order, with no copy and no buffer allocated
// per read. At most MAX_OUT bytes wait for the reader per connection: the socket pauses
// until the reader has written some; a slab is reused once all of its bytes are written.
// A body framing it does not read (chunked) is reported, so the hop goes to node:http.
import { connect, type LookupFunction, type Socket } from "node:net";
import type { IncomingHttpHeaders } from "node:http";
import { framing, HeadError, MAX_HEAD, parseHead, requestHead } from "./http1.js";
import { giveSlab, SLAB, takeSlab } from "./slabs.js";

/** Bytes handed to the reader and not yet written (per connection). */
const MAX_OUT = 2 << 20;
/** Where reads go when no byte is wanted any more (the body is complete). */
const SCRATCH = Buffer.alloc(16);

export interface RawOptions {
  lookup: LookupFunction;
  connectTimeout: number;
  idleTimeout: number;
  signal: AbortSignal;
  /** The errors of the two timeouts (the caller words them). */
  connectTimedOut(): Error;
  idleTimedOut(): Error;
}

/** Receives the body of a RawResponse: regions in order, then end() or fail() (after the last region). */
export interface RawSink {
  /** A region of a slab; call `release(region.length)` on the response once it is written (in order). */
  chunk(region: Buffer): void;
  end(): void;
  fail(err: Error): void;
}

/** The answer to a raw GET: a response, or a framing this transport does not read (the socket is closed). */
export type RawResult = RawResponse | { unsupported: string; status: number };

export class RawResponse {
  statusCode = 0;
  headers: IncomingHttpHeaders = {};
  /** Body bytes announced (undefined: the body ends when the connection closes). */
  length: number | undefined;
  #sock!: Socket;
  /** The slab reads land in, how far it is filled, and where its bytes not yet handed out start. */
  #slab = takeSlab();
  #pos = 0;
  #mark = 0;
  #headStart = 0;
  /** Bytes of the current head already searched for its blank line. */
  #searched = 0;
  #inHead = true;
  /** Body bytes still to read (Infinity: until the connection closes). */
  #left = Infinity;
  readonly #ready: Buffer[] = [];
  /** Body bytes handed out (queued or with the sink), and written by the sink. */
  #handed = 0;
  #written = 0;
  /** Filled slabs some of whose bytes are not written yet, with the #handed count at their last byte. */
  readonly #out: { slab: Buffer; end: number }[] = [];
  #sink: RawSink | undefined;
  #done: "end" | Error | undefined;
  #settled = false;
  /** Reading stopped because MAX_OUT bytes are not written yet. */
  #paused = false;
  #failure: Error | undefined;

  /** @internal Use rawGet(). */
  constructor(
    private readonly onHead: (r: RawResult | Error) => void,
    private readonly o: RawOptions,
  ) {}

  get destroyed(): boolean {
    return this.#sock.destroyed;
  }

  /** Why we cut the connection while the body was read (the idle timeout), if we did. */
  failure(): Error | undefined {
    return this.#failure;
  }

  /** @internal */
  start(host: string, port: number, head: string): void {
    const connectTimer = setTimeout(() => this.#cut(this.o.connectTimedOut()), this.o.connectTimeout);
    this.#sock = connect({
      host, port, lookup: this.o.lookup, noDelay: true,
      onread: { buffer: () => this.#nextBuffer(), callback: (n: number) => this.#onRead(n) },
    });
    // Not connect({ signal }): that listener stays on the fill-wide signal after the socket closes,
    // holding every part's socket and slab until the fill ends.
    const { signal } = this.o;
    const onAbort = () => this.#sock.destroy(Object.assign(new Error("The operation was aborted", { cause: signal.reason }), { name: "AbortError", code: "ABORT_ERR" }));
    if (signal.aborted) queueMicrotask(onAbort);
    else {
      signal.addEventListener("abort", onAbort, { once: true });
      this.#sock.once("close", () => signal.removeEventListener("abort", onAbort));
    }
    this.#sock.once("connect", () => clearTimeout(connectTimer));
    this.#sock.setTimeout(this.o.idleTimeout, () => this.#cut(this.o.idleTimedOut()));
    this.#sock.on("error", (err) => {
      clearTimeout(connectTimer);
      this.#finish(this.#failure ?? err);
    });
    this.#sock.on("end", () => this.#finish(this.#left === Infinity && !this.#inHead ? "end" : cutOff()));
    this.#sock.on("close", () => {
      clearTimeout(connectTimer);
      this.#finish(this.#failure ?? cutOff());
    });
    this.#sock.write(head, "latin1"); // as node:http writes header bytes (an ETag echoed in If-Range stays byte-exact)
  }

  /** Deliver the body to `sink` (once). */
  read(sink: RawSink): void {
    this.#sink = sink;
    this.#drain();
  }

  /** The sink wrote `n` more bytes (in order): slabs all written are reused, reading goes on. */
  release(n: number): void {
    this.#written += n;
    while (this.#out.length > 0 && this.#out[0]!.end <= this.#written) giveSlab(this.#out.shift()!.slab);
    if (this.#paused && this.#handed - this.#written < MAX_OUT && !this.#done) {
      this.#paused = false;
      this.#sock.resume();
    }
  }

  /** Throw the body away (the connection is not reused). */
  resume(): void {
    this.destroy();
  }

  destroy(err?: Error): void {
    this.#sock.destroy();
    this.#finish(err ?? new Error("the response was abandoned"));
  }

  #cut(err: Error): void {
    this.#failure ??= err;
    this.#sock.destroy(err);
  }

  // #slab and #pos change only in #onRead (and once reading is over): the socket reads into the
  // buffer #nextBuffer gave it after the previous read, also when it resumes after a pause.
  #nextBuffer(): Buffer {
    if (this.#done || this.#left === 0) return SCRATCH;
    return this.#slab.subarray(this.#pos, this.#inHead ? SLAB : Math.min(SLAB, this.#pos + this.#left));
  }

  #onRead(n: number): boolean {
    if (this.#done || this.#left === 0) return false; // bytes past the body (into SCRATCH): ignored
    this.#pos += n;
    if (this.#inHead) {
      try {
        if (!this.#parseHeads()) return !this.#done;
      } catch (err) {
        this.#sock.destroy();
        this.#finish(err as Error);
        return false;
      }
    } else this.#left -= n;
    this.#handOut();
    if (this.#pos === SLAB) {
      this.#out.push({ slab: this.#slab, end: this.#handed });
      this.#slab = takeSlab();
      this.#pos = this.#mark = 0;
    }
    if (this.#left === 0) this.#finish("end");
    this.#drain();
    this.#paused = this.#handed - this.#written >= MAX_OUT;
    return !this.#paused;
  }

  /** False while the final head has not all arrived (or when its framing is not read here). */
  #parseHeads(): boolean {
    for (;;) {
      const head = parseHead(this.#slab.subarray(this.#headStart), this.#pos - this.#headStart, this.#searched);
      if (!head) {
        if (this.#pos >= MAX_HEAD) throw new HeadError(`its response heads are larger than ${MAX_HEAD >> 10} KiB`);
        this.#searched = this.#pos - this.#headStart;
        return false;
      }
      this.#headStart += head.size;
      this.#searched = 0;
      if (head.status === 101) throw new HeadError("it answered 101 Switching Protocols to a plain GET");
      if (head.status < 200) continue; // 100 Continue, 103 Early Hints: informational, the final head follows
      const f = framing(head);
      this.statusCode = head.status;
      this.headers = head.headers;
      this.#settled = true;
      if (f.kind === "unsupported") {
        // Only a 2xx has a body anyone reads: that one is asked for again (node:http); any other is not read.
        this.#sock.destroy();
        this.#done = new Error(`the raw reader does not read a body with ${f.why}`);
        this.onHead(head.status < 300 ? { unsupported: f.why, status: head.status } : this);
        return false;
      }
      this.#inHead = false;
      this.length = f.kind === "length" ? f.length : f.kind === "none" ? 0 : undefined;
      this.#mark = this.#headStart;
      this.#left = this.length ?? Infinity;
      const body = Math.min(this.#pos - this.#mark, this.#left);
      this.#pos = this.#mark + body;
      this.#left -= body;
      this.onHead(this);
      return true;
    }
  }

  /** The bytes read since the last call become a region for the sink. */
  #handOut(): void {
    if (this.#pos === this.#mark) return;
    this.#ready.push(this.#slab.subarray(this.#mark, this.#pos));
    this.#handed += this.#pos - this.#mark;
    this.#mark = this.#pos;
  }

  #drain(): void {
    const sink = this.#sink;
    if (!sink) return;
    for (let r = this.#ready.shift(); r; r = this.#ready.shift()) sink.chunk(r);
    if (this.#done === "end") sink.end();
    else if (this.#done) sink.fail(this.#done);
    if (this.#done) this.#sink = undefined;
  }

  /** The exchange ended (body complete, or broken): the bytes in hand go to the sink first. */
  #finish(how: "end" | Error): void {
    if (this.#done) return;
    this.#done = how;
    // No read lands in the slab any more: it is reused once its bytes are written.
    if (this.#pos > 0 && !this.#inHead && this.#written < this.#handed) this.#out.push({ slab: this.#slab, end: this.#handed });
    else giveSlab(this.#slab);
    if (!this.#settled) {
      this.#settled = true;
      this.onHead(how === "end" ? cutOff() : how);
    }
    if (how === "end") this.#sock.destroy();
    this.#drain();
  }
}

function cutOff(): Error {
  return Object.assign(new Error("the connection closed before the body ended"), { code: "ECONNRESET" });
}

/** GET `url` (plain http, direct) on a raw socket; resolves on the final response head. */
export function rawGet(url: URL, headers: Record<string, string>, o: RawOptions): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const head = requestHead(url, headers);
    const r = new RawResponse((x) => (x instanceof Error ? reject(x) : resolve(x)), o);
    r.start(url.hostname.replace(/^\[|\]$/g, ""), Number(url.port) || 80, head);
  });
}
