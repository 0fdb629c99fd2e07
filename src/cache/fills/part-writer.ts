// The write side of receiving one response body into a part of the temp file, shared by
// both transports' readers (receive.ts): chunks are counted (size cap, budget) before
// they are taken, batched into positional writevs of about WRITE_BATCH (chunks that
// follow each other in one buffer are one iovec), and the outcome comes after the last
// write: a broken connection's error only once the bytes in hand are on disk (so a
// retry asks for the rest).
import type { FillBody, PartState } from "./body.js";

export const WRITE_BATCH = 1 << 20;

export class BodyOverrun extends Error {}

export interface WriterEvents {
  /** `n` more bytes are on disk. */
  written(n: number): void;
  /** The writer failed (a byte too many, onBytes threw, the disk): stop the body. */
  stop(): void;
}

export class PartWriter {
  #batch: Buffer[] = [];
  #batched = 0;
  #writing = false;
  #ended = false;
  #broken: Error | undefined;
  #settled = false;
  /** Bytes of this part taken so far (written, being written, batched). */
  #taken: number;
  readonly #limit: number;
  readonly done: Promise<void>;
  #resolve!: () => void;
  #reject!: (err: Error) => void;

  constructor(
    private readonly body: FillBody,
    private readonly part: PartState,
    private readonly onBytes: (n: number) => void,
    private readonly events: WriterEvents,
  ) {
    this.#taken = part.written;
    this.#limit = part.end - part.start;
    this.done = new Promise((resolve, reject) => ((this.#resolve = resolve), (this.#reject = reject)));
  }

  /** Batched bytes not being written yet, while a write is in flight (0 otherwise). */
  get waiting(): number {
    return this.#writing ? this.#batched : 0;
  }

  /** Whether more body is wanted (false once ended, broken or failed). */
  get open(): boolean {
    return !this.#settled && !this.#ended && !this.#broken;
  }

  take(chunk: Buffer): void {
    if (!this.open) return;
    try {
      if (this.#taken + chunk.length > this.#limit) throw new BodyOverrun(`the origin sent more than the ${this.#limit} bytes asked for`);
      this.onBytes(chunk.length);
    } catch (err) {
      return this.#fail(err as Error);
    }
    this.#taken += chunk.length;
    this.body.received += chunk.length;
    const last = this.#batch.at(-1);
    if (last && last.buffer === chunk.buffer && last.byteOffset + last.length === chunk.byteOffset) {
      this.#batch[this.#batch.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + chunk.length);
    } else this.#batch.push(chunk);
    this.#batched += chunk.length;
    if (this.#batched >= WRITE_BATCH) this.#flush();
  }

  /** The body ended: resolves once it is all written. */
  end(): void {
    if (!this.open) return;
    this.#ended = true;
    this.#flush();
  }

  /** The connection broke: rejects with `err` once the bytes in hand are written. */
  broke(err: Error): void {
    if (!this.open) return;
    this.#broken = err;
    this.#flush();
  }

  #fail(err: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    this.events.stop();
    this.#reject(err);
  }

  #flush(): void {
    if (this.#writing || this.#settled) return;
    if (this.#batched === 0) {
      if (this.#broken) this.#fail(this.#broken);
      else if (this.#ended) {
        this.#settled = true;
        this.#resolve();
      }
      return;
    }
    const bufs = this.#batch;
    const n = this.#batched;
    this.#batch = [];
    this.#batched = 0;
    this.#writing = true;
    const { body, part } = this;
    body.fh.writev(bufs, part.start + part.written).then(({ bytesWritten }) => {
      this.#writing = false;
      if (bytesWritten !== n) return this.#fail(Object.assign(new Error(`short write to ${body.path}: ${bytesWritten} of ${n} bytes`), { syscall: "write" }));
      body.wrote(part, n);
      this.events.written(n);
      if (this.#ended || this.#broken || this.#batched >= WRITE_BATCH) this.#flush();
    }, (err: Error) => {
      this.#writing = false;
      this.#fail(err);
    });
  }
}
