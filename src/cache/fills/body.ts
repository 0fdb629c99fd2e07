// The bytes of one fill attempt on disk: a temp file written in place by one or more
// parts (positional writes), the contiguous prefix written so far (the watermark that
// readers stream up to, with waiters), and the sha256 of that prefix, computed as it
// grows: from the bytes in hand when they extend it, else read back from the file.
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import type { Part } from "./plan.js";

const HASH_READ = 1 << 20;

/** A part as it is being received: bytes [start, start + written) are on disk. */
export interface PartState extends Part {
  written: number;
  done: boolean;
}

export class FillBody {
  /** Bytes received from the origin by this attempt (what progress shows). */
  received = 0;
  /** The contiguous prefix [0, watermark) is written: readers may read it (page cache; no fsync needed). */
  watermark = 0;
  readonly parts: PartState[];
  #frontier = 0;
  readonly #hash = createHash("sha256");
  #hashed = 0;
  #catchUp: Promise<void> | undefined;
  #readBuf: Buffer | undefined;
  #waiters = new Set<() => void>();
  #failure: Error | undefined;
  #finished = false;
  #refs = 1;
  #closed: Promise<void> | undefined;

  constructor(
    readonly fh: FileHandle,
    readonly path: string,
    /** The file's length when known (ranged fills, or an announced Content-Length). */
    readonly size: number | undefined,
    parts: Part[],
  ) {
    this.parts = parts.map((p) => ({ ...p, written: 0, done: false }));
  }

  get failed(): Error | undefined {
    return this.#failure;
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** Mark parts already on disk (a resumed fill) as written. */
  restore(done: Set<number>): void {
    for (const p of this.parts) {
      if (!done.has(p.index)) continue;
      p.written = p.end - p.start;
      p.done = true;
    }
    this.#advance();
  }

  /** `bufs` (n bytes) were written at the end of `part`'s written bytes. */
  wrote(part: PartState, bufs: Buffer[], n: number): void {
    const pos = part.start + part.written;
    part.written += n;
    if (pos === this.#hashed && !this.#catchUp) {
      for (const b of bufs) this.#hash.update(b);
      this.#hashed += n;
    }
    this.#advance();
  }

  /** `part` has all its bytes (and, for a resumable fill, they are synced). */
  complete(part: PartState): void {
    part.done = true;
    this.#advance();
  }

  /** Resolves when the watermark passes `pos` or the body is finished; rejects when it failed. */
  waitPast(pos: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.#failure) return done(() => reject(this.#failure));
        if (signal.aborted) return done(() => reject(signal.reason as Error));
        if (this.watermark > pos || this.#finished) return done(resolve);
      };
      const done = (f: () => void) => {
        this.#waiters.delete(check);
        signal.removeEventListener("abort", check);
        f();
      };
      this.#waiters.add(check);
      signal.addEventListener("abort", check, { once: true });
      check();
    });
  }

  /** The sha256 of the whole body (after every part is complete). */
  async digest(): Promise<string> {
    this.#startCatchUp();
    while (this.#catchUp) await this.#catchUp;
    if (this.#failure) throw this.#failure;
    if (this.#hashed !== this.watermark) throw new Error(`hashed ${this.#hashed} of ${this.watermark} bytes`);
    return this.#hash.digest("hex");
  }

  /** The attempt failed: readers are cut. */
  fail(err: Error): void {
    this.#failure ??= err;
    this.#wake();
  }

  /** The attempt published: readers may read to the end. */
  finish(): void {
    this.#finished = true;
    this.#wake();
  }

  /** A reader holds the file handle open (false when it is already closed). */
  retain(): boolean {
    if (this.#refs <= 0) return false;
    this.#refs++;
    return true;
  }

  /** Drop one hold; the handle closes with the last. */
  release(): Promise<void> {
    if (--this.#refs === 0) this.#closed = this.fh.close().catch(() => undefined);
    return this.#closed ?? Promise.resolve();
  }

  #advance(): void {
    const parts = this.parts;
    while (this.#frontier < parts.length && parts[this.#frontier]!.done) this.#frontier++;
    const p = parts[this.#frontier];
    const mark = p ? p.start + p.written : (parts.at(-1)?.end ?? 0);
    if (mark <= this.watermark) return;
    this.watermark = mark;
    if (this.#hashed < mark) this.#startCatchUp();
    this.#wake();
  }

  /** Hash what is written but not yet hashed by reading it back (parts that landed out of order). */
  #startCatchUp(): void {
    if (this.#catchUp || this.#hashed >= this.watermark) return;
    this.#catchUp = (async () => {
      this.#readBuf ??= Buffer.allocUnsafeSlow(HASH_READ);
      while (this.#hashed < this.watermark && !this.#failure) {
        const n = Math.min(HASH_READ, this.watermark - this.#hashed);
        const { bytesRead } = await this.fh.read(this.#readBuf, 0, n, this.#hashed);
        if (bytesRead === 0) throw new Error(`the temp file ${this.path} is shorter than its written bytes`);
        this.#hash.update(this.#readBuf.subarray(0, bytesRead));
        this.#hashed += bytesRead;
      }
    })()
      .catch((err: Error) => this.fail(err))
      .finally(() => {
        this.#catchUp = undefined;
      });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}
