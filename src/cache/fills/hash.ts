// The sha256 of a fill, computed off the main thread: a small pool of worker threads
// (hash-worker.ts) reads each temp file back from the page cache up to the bytes the
// fill has written, so receiving (main thread, socket and writes) and hashing (a worker,
// another core) run at once, and parts that land out of order cost nothing extra.
// What is hashed is what is on disk, so the digest checks the bytes that get published.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { CacheError } from "../errors.js";
import { WORKER_SOURCE } from "./hash-worker.js";

/** One file's running sha256. */
export interface Hasher {
  /** Bytes [0, upTo) are written and may be read back. */
  extend(upTo: number): void;
  /** The sha256 (hex) of bytes [0, size), once the worker has read them all. */
  digest(size: number): Promise<string>;
  /** Forget the file; a pending digest rejects with `why`. Idempotent. */
  close(why?: Error): void;
}

/** A file being hashed: who waits for its digest, or why it failed before anyone asked. */
interface Job {
  waiter?: { resolve(digest: string): void; reject(err: Error): void };
  failed?: Error;
}

type Reply = { id: number; digest?: string; error?: string };

class HashThread {
  readonly jobs = new Map<number, Job>();
  readonly #worker = new Worker(WORKER_SOURCE, { eval: true, name: "cache-io sha256" });
  #dead: Error | undefined;

  constructor(private readonly onDead: (t: HashThread) => void) {
    this.#worker.unref();
    this.#worker.on("message", (r: Reply) => this.#reply(r));
    this.#worker.on("error", (err) => this.#die(err));
    this.#worker.on("exit", (code) => this.#die(new Error(`it exited with code ${code}`)));
  }

  get dead(): Error | undefined {
    return this.#dead;
  }

  send(m: { op: string; id: number; [k: string]: unknown }): void {
    if (!this.#dead) this.#worker.postMessage(m);
  }

  start(id: number): Job {
    const job: Job = this.#dead ? { failed: this.#dead } : {};
    if (this.#dead) return job;
    this.jobs.set(id, job);
    this.#worker.ref(); // the worker keeps the process alive only while it has files
    return job;
  }

  end(id: number): void {
    this.jobs.delete(id);
    if (this.jobs.size === 0) this.#worker.unref();
  }

  #reply(r: Reply): void {
    const job = this.jobs.get(r.id);
    if (!job) return;
    if (r.error === undefined) {
      this.end(r.id);
      return job.waiter?.resolve(r.digest!);
    }
    job.failed = hashError(r.error);
    if (job.waiter) {
      this.end(r.id);
      job.waiter.reject(job.failed);
    }
  }

  #die(err: Error): void {
    if (this.#dead) return;
    this.#dead = hashError(`the sha256 worker thread stopped: ${err.message}`);
    for (const [id, job] of this.jobs) {
      this.jobs.delete(id);
      job.failed = this.#dead;
      job.waiter?.reject(this.#dead);
    }
    this.#worker.unref();
    this.onDead(this);
  }
}

function hashError(message: string): CacheError {
  return new CacheError(500, "io", `cannot hash the cache's temp file: ${message}`, true);
}

/** Worker threads for hashing: one per core beside the main thread, at least one, at most four. */
export class HashPool {
  readonly #threads: HashThread[] = [];
  #next = 1;

  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism() - 1))) {}

  /** Start hashing the file at `path` (opened by the worker, read only). */
  open(path: string): Hasher {
    const thread = this.#pick();
    const id = this.#next++;
    const job = thread.start(id);
    let closed: Error | undefined;
    thread.send({ op: "open", id, path });
    return {
      extend: (upTo) => {
        if (!closed && !job.failed) thread.send({ op: "extend", id, upTo });
      },
      digest: (size) => {
        const why = closed ?? job.failed;
        if (why) return Promise.reject(why);
        return new Promise<string>((resolve, reject) => {
          job.waiter = { resolve, reject };
          thread.send({ op: "digest", id, size });
        });
      },
      close: (why) => {
        if (closed) return;
        closed = why ?? new Error("the hasher was closed");
        if (!thread.jobs.has(id)) return;
        thread.end(id);
        thread.send({ op: "close", id });
        job.waiter?.reject(closed);
      },
    };
  }

  #pick(): HashThread {
    for (let i = this.#threads.length - 1; i >= 0; i--) if (this.#threads[i]!.dead) this.#threads.splice(i, 1);
    if (this.#threads.length < this.size) {
      const t = new HashThread((dead) => {
        const i = this.#threads.indexOf(dead);
        if (i >= 0) this.#threads.splice(i, 1);
      });
      this.#threads.push(t);
      return t;
    }
    return this.#threads.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
  }
}

/** The process's hash threads (started on the first fill). */
export const hashPool = new HashPool();
