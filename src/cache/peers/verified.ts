// Fill bodies whose sha256 is verified (accepted by the fill's waiters) before they are
// synced and published: a peer stream may send its last byte then (docs/PEERS.md, "The
// last byte"), so a relay tree does not add one fsync per hop. Keyed weakly: a body
// that is never verified is forgotten with it.
type Deferred = { promise: Promise<string>; resolve(sha256: string): void };

export class VerifiedBodies<B extends object> {
  readonly #bodies = new WeakMap<B, Deferred>();

  /** `body`'s bytes hash to `sha256`, which the fill's waiters accept. */
  resolve(body: B, sha256: string): void {
    this.#of(body).resolve(sha256);
  }

  /** The sha256 once `body` is verified; never settles for a body that is not. */
  wait(body: B): Promise<string> {
    return this.#of(body).promise;
  }

  #of(body: B): Deferred {
    let d = this.#bodies.get(body);
    if (!d) {
      let resolve!: (sha256: string) => void;
      const promise = new Promise<string>((r) => (resolve = r));
      this.#bodies.set(body, (d = { promise, resolve }));
    }
    return d;
  }
}
