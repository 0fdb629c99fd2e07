// The bytes of one fill attempt on disk: a temp file written in place by one or more
// parts (positional writes), the contiguous prefix written so far (the watermark that
// readers stream up to, with waiters), and the sha256 of that prefix, computed as it
// grows by a hash worker thread that reads it back (hash.ts), off the main thread.
import type { FileHandle } from "node:fs/promises";
import { hashPool, type Hasher, type HashPool } from "./hash.js";
import { HASH_STEP } from "./hash-worker.js";
import type { Part } from "./plan.js";

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
  readonly #hasher: Hasher;
  /** What the hasher was last told is written (it is told every HASH_STEP bytes; digest() tells it the rest). */
  #told = 0;
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
    hashes: HashPool = hashPool,
  ) {
    this.parts = parts.map((p) => ({ ...p, written: 0, done: false }));
    this.#hasher = hashes.open(path);
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

  /** `n` bytes were written at the end of `part`'s written bytes. */
  wrote(part: PartState, n: number): void {
    part.written += n;
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
    if (this.#failure) throw this.#failure;
    return this.#hasher.digest(this.watermark);
  }

  /** The attempt failed: readers are cut, hashing stops. */
  fail(err: Error): void {
    this.#failure ??= err;
    this.#hasher.close(this.#failure);
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
    if (--this.#refs === 0) {
      this.#hasher.close();
      this.#closed = this.fh.close().catch(() => undefined);
    }
    return this.#closed ?? Promise.resolve();
  }

  #advance(): void {
    const parts = this.parts;
    while (this.#frontier < parts.length && parts[this.#frontier]!.done) this.#frontier++;
    const p = parts[this.#frontier];
    const mark = p ? p.start + p.written : (parts.at(-1)?.end ?? 0);
    if (mark <= this.watermark) return;
    this.watermark = mark;
    if (mark - this.#told >= HASH_STEP) this.#hasher.extend((this.#told = mark));
    this.#wake();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}
