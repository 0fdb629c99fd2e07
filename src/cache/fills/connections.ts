// The per-node cap on origin connections (cache.parts.maxConnections) shared by every
// fill: single streams and ranged parts wait in FIFO order for a free connection.

export class ConnectionPool {
  #busy = 0;
  readonly #queue: (() => void)[] = [];

  constructor(private readonly limit: () => number) {}

  get busy(): number {
    return this.#busy;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  /** Wait for a connection; resolves with its release (call once). Rejects when `signal` aborts first. */
  acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.#busy < this.limit() && this.#queue.length === 0) return Promise.resolve(this.#take());
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener("abort", onAbort);
        resolve(this.#take());
      };
      const onAbort = () => {
        const i = this.#queue.indexOf(grant);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(grant);
    });
  }

  #take(): () => void {
    this.#busy++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#busy--;
      while (this.#queue.length > 0 && this.#busy < this.limit()) this.#queue.shift()!();
    };
  }
}
