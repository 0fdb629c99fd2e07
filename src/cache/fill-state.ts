// One fill in flight as its waiters see it: progress (what `ensure` shows), who waits
// (and with which sha256), and abandonment when every waiter has left.
import type { FillBody } from "./fills/body.js";
import type { Caller } from "./request.js";
import type { ObjectMeta } from "./store.js";

export interface FillRequest {
  key: string;
  url: string;
  sha256?: string;
  /** The complete entry being revalidated: conditional GET, and kept when the origin cannot answer. */
  previous?: ObjectMeta;
  /** A policy pre-warm: never abandoned. */
  prewarm?: boolean;
  /** Who started the fill: its origin rules and credentials apply to every hop (redirects) and to peer requests. */
  caller?: Caller;
  /** Asked for by a peer (on the peer port): filled from the origin, never from peers again. */
  viaPeer?: true;
}

/** One fill in flight; its progress is what `ensure` shows. */
export class Fill {
  bytes = 0;
  total: number | undefined;
  attempt = 0;
  /** The origin's version of the bytes being filled, once the origin (or a peer) has answered: what peers resume against. */
  version: { size: number; etag?: string; lastModified?: string } | undefined;
  /** Set when the result is a stale copy served because the origin could not be asked. */
  stale = false;
  readonly startedAt = Date.now();
  readonly promise: Promise<ObjectMeta>;
  readonly abandoned = new AbortController();
  #waiters = 0;
  #pinned = false;
  #anyContent = false;
  readonly #wanted = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #done = false;
  #body: FillBody | undefined;
  #bodyWaiters: (() => void)[] = [];

  constructor(
    readonly req: FillRequest,
    private readonly graceMs: () => number,
    run: (fill: Fill) => Promise<ObjectMeta>,
  ) {
    this.join(req);
    this.promise = run(this);
    this.promise.catch(() => undefined); // waiters handle the error; a fill with none must not crash the process
    void this.promise
      .finally(() => {
        this.#done = true;
        clearTimeout(this.#timer);
      })
      .catch(() => undefined);
  }

  /** The bytes of the current attempt (readers stream them while they land). */
  get body(): FillBody | undefined {
    return this.#body;
  }

  setBody(body: FillBody): void {
    this.#body = body;
    for (const w of this.#bodyWaiters.splice(0)) w();
  }

  /** The current attempt's body once it has one; undefined when the fill ended first or `signal` aborted. */
  async nextBody(signal: AbortSignal): Promise<FillBody | undefined> {
    const b = this.#body;
    if (b && !b.failed) return b;
    if (this.#done || signal.aborted) return undefined;
    await new Promise<void>((resolve) => {
      const wake = () => {
        signal.removeEventListener("abort", wake);
        resolve();
      };
      this.#bodyWaiters.push(wake);
      signal.addEventListener("abort", wake, { once: true });
      void this.promise.then(wake, wake);
    });
    const now = this.#body;
    return now && !now.failed && !signal.aborted ? now : undefined;
  }

  get waiters(): number {
    return this.#waiters;
  }

  /** A request waits for this fill; its sha256 (or none: any content) is one the result may match. */
  join(req: { sha256?: string; prewarm?: boolean }): void {
    this.#waiters++;
    clearTimeout(this.#timer);
    if (req.sha256) this.#wanted.add(req.sha256);
    else this.#anyContent = true;
    if (req.prewarm) this.#pinned = true;
  }

  /** A waiter went away; with none left, the fill is abandoned after the grace period. */
  leave(): void {
    if (--this.#waiters > 0 || this.#pinned || this.#done) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      if (this.#waiters <= 0) this.abandoned.abort();
    }, this.graceMs());
    this.#timer.unref();
  }

  /** Whether content with `sha256` is what some waiter asked for (or one asked for any content). */
  accepts(sha256: string): boolean {
    return this.#anyContent || this.#wanted.has(sha256);
  }

  get wanted(): string[] {
    return [...this.#wanted];
  }
}
