// The disk budget: bytes of complete files plus what fills in flight have reserved;
// least-recently-used eviction of files no pod uses, and a clear 507 when the budget
// cannot be met without touching a file in use.
import { CacheError } from "./errors.js";

export interface BudgetDeps {
  /** The budget in bytes (read each time: the policy hot-reloads). */
  limit(): number;
  inUse(key: string): boolean;
  /** Why nothing may be evicted right now (in-use state unknown), or null. */
  blocked(): string | null;
  /** Remove a file the budget chose; it is already gone from the accounting. */
  evict(key: string): void;
}

interface FileUse {
  size: number;
  lastUsed: number;
}

/** Space held for one fill; grows as bytes arrive, becomes a file on commit. */
export interface Reservation {
  readonly bytes: number;
  grow(total: number): void;
  commit(key: string, size: number): void;
  release(): void;
}

export class Budget {
  #files = new Map<string, FileUse>();
  #filesBytes = 0;
  #reserved = 0;

  constructor(private readonly deps: BudgetDeps) {}

  /** Bytes counted against the budget: complete files plus reservations. */
  used(): number {
    return this.#filesBytes + this.#reserved;
  }

  add(key: string, size: number, lastUsed = Date.now()): void {
    this.delete(key);
    this.#files.set(key, { size, lastUsed });
    this.#filesBytes += size;
  }

  delete(key: string): void {
    const f = this.#files.get(key);
    if (!f) return;
    this.#filesBytes -= f.size;
    this.#files.delete(key);
  }

  touch(key: string, now = Date.now()): void {
    const f = this.#files.get(key);
    if (f) f.lastUsed = now;
  }

  /** Hold `bytes` for a fill of `key`, evicting LRU files not in use; throws 507 when it cannot. */
  reserve(key: string, bytes: number): Reservation {
    this.#makeRoom(bytes, key);
    this.#reserved += bytes;
    let held = bytes;
    let open = true;
    const release = () => {
      if (open) this.#reserved -= held;
      open = false;
    };
    return {
      get bytes() {
        return held;
      },
      grow: (total) => {
        if (total <= held) return;
        this.#makeRoom(total - held, key);
        this.#reserved += total - held;
        held = total;
      },
      commit: (k, size) => {
        release();
        this.add(k, size);
      },
      release,
    };
  }

  /** Evict down to the budget (after a fill, or when the policy shrank it); returns the keys evicted. */
  trim(): string[] {
    const over = this.used() - this.deps.limit();
    if (over <= 0) return [];
    return this.#evict(this.#victims(over, undefined));
  }

  #makeRoom(bytes: number, forKey: string): void {
    const limit = this.deps.limit();
    const need = this.used() + bytes - limit;
    if (need <= 0) return;
    const victims = this.#victims(need, forKey);
    const freed = victims.reduce((n, k) => n + (this.#files.get(k)?.size ?? 0), 0);
    if (freed < need) throw this.#refusal(bytes, limit, forKey);
    this.#evict(victims);
  }

  /** LRU files not in use, oldest first, just enough to free `need` bytes (or all there are). */
  #victims(need: number, exclude: string | undefined): string[] {
    if (this.deps.blocked()) return [];
    const candidates = [...this.#files.entries()]
      .filter(([k]) => k !== exclude && !this.deps.inUse(k))
      .sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    const out: string[] = [];
    let freed = 0;
    for (const [k, f] of candidates) {
      if (freed >= need) break;
      out.push(k);
      freed += f.size;
    }
    return out;
  }

  #evict(keys: string[]): string[] {
    for (const k of keys) {
      this.delete(k);
      this.deps.evict(k);
    }
    return keys;
  }

  #refusal(bytes: number, limit: number, forKey: string): CacheError {
    const inUse = [...this.#files.entries()].filter(([k]) => k === forKey || this.deps.inUse(k));
    const inUseBytes = inUse.reduce((n, [, f]) => n + f.size, 0);
    const blocked = this.deps.blocked();
    const why = blocked
      ? `nothing can be evicted until ${blocked}`
      : `${inUse.length} file(s) (${inUseBytes} bytes) are in use by pods on this node and cannot be evicted`;
    return new CacheError(
      507,
      "disk_budget",
      `disk budget exceeded: this file needs ${bytes} more bytes, the cache holds ${this.used()} of ${limit} (cache.diskBudget) and ${why}; raise cache.diskBudget or retry when those pods have ended`,
    );
  }
}
