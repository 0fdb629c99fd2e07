// The disk budget: bytes of complete files plus what fills in flight have reserved;
// least-recently-used eviction of files that nothing protects, and a clear 507 when
// the budget cannot be met. Files mounted by running pods are never evicted; files
// protected only by a recent request hold at most cache.recentUseShare of the budget.
import { CacheError } from "./errors.js";

export interface BudgetDeps {
  /** The budget in bytes (read each time: the policy hot-reloads). */
  limit(): number;
  /** A running pod on this node mounts the key: never evicted. */
  mounted(key: string): boolean;
  /** The key was requested within the recent-use window: protected within the share. */
  recent(key: string): boolean;
  /** Share of the budget recent requests alone may protect (cache.recentUseShare). */
  recentShare(): number;
  /** The recent-use window, for messages ("10m"). */
  recentWindow(): string;
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
  /** Hold at least `need` bytes in all, `ahead` when room can be made for it (evicting as needed). */
  grow(need: number, ahead?: number): void;
  commit(key: string, size: number): void;
  release(): void;
}

interface Room {
  /** Evictable files, least recently used first. */
  evictable: [string, FileUse][];
  mounted: { files: number; bytes: number };
  recent: { files: number; bytes: number };
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

  /** `namespace`: whose caller filled the file (its share of the budget, identity.diskSharePerNamespace). */
  add(key: string, size: number, lastUsed = Date.now(), namespace?: string): void {
    void namespace;
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

  /** Throw the 507 now when `bytes` can never fit, even after evicting everything evictable. */
  checkFits(key: string, bytes: number, namespace?: string): void {
    void namespace;
    const room = this.#room(key);
    const free = this.deps.limit() - this.used() + room.evictable.reduce((n, [, f]) => n + f.size, 0);
    if (bytes > free) throw this.#refusal(bytes, room);
  }

  /** Hold space for a fill of `key` (nothing yet: it grows as bytes arrive). */
  reserve(key: string, bytes = 0, namespace?: string): Reservation {
    void namespace;
    this.#makeRoom(key, bytes, bytes);
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
      grow: (need, ahead = need) => {
        if (need <= held) return;
        const target = Math.max(need, ahead);
        const got = this.#makeRoom(key, need - held, target - held);
        this.#reserved += got;
        held += got;
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
    return this.#evict(pick(this.#room(undefined).evictable, over));
  }

  /**
   * Hold `need` more bytes, evicting for them if needed, and up to `want` from space that is
   * free anyway (nothing is evicted for bytes that have not arrived); returns the bytes held
   * (>= need). Throws 507, evicting nothing, when `need` cannot fit.
   */
  #makeRoom(key: string, need: number, want: number): number {
    const free = this.deps.limit() - this.used();
    if (need <= free) return Math.max(need, Math.min(want, free));
    const room = this.#room(key);
    const victims = pick(room.evictable, need - free);
    const freed = victims.reduce((n, k) => n + (this.#files.get(k)?.size ?? 0), 0);
    if (free + freed < need) throw this.#refusal(need, room);
    this.#evict(victims);
    return Math.min(Math.max(want, need), free + freed);
  }

  /** What may be evicted (excluding `exclude`, the key being filled) and what protects the rest. */
  #room(exclude: string | undefined): Room {
    const room: Room = { evictable: [], mounted: { files: 0, bytes: 0 }, recent: { files: 0, bytes: 0 } };
    if (this.deps.blocked()) return room;
    const recent: [string, FileUse][] = [];
    for (const entry of this.#files) {
      const [k, f] = entry;
      if (k === exclude) continue;
      if (this.deps.mounted(k)) {
        room.mounted.files++;
        room.mounted.bytes += f.size;
      } else if (this.deps.recent(k)) recent.push(entry);
      else room.evictable.push(entry);
    }
    // Recent requests protect the most recently requested files up to the share; older ones are fair game.
    const share = this.deps.recentShare() * this.deps.limit();
    recent.sort((a, b) => b[1].lastUsed - a[1].lastUsed);
    let full = false;
    for (const entry of recent) {
      full ||= room.recent.bytes + entry[1].size > share;
      if (full) room.evictable.push(entry);
      else {
        room.recent.files++;
        room.recent.bytes += entry[1].size;
      }
    }
    room.evictable.sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    return room;
  }

  #evict(keys: string[]): string[] {
    for (const k of keys) {
      this.delete(k);
      this.deps.evict(k);
    }
    return keys;
  }

  #refusal(bytes: number, room: Room): CacheError {
    const limit = this.deps.limit();
    const blocked = this.deps.blocked();
    const held: string[] = [];
    if (room.mounted.files) held.push(`${room.mounted.files} file(s) (${room.mounted.bytes} bytes) are mounted by running pods on this node`);
    if (room.recent.files) {
      held.push(
        `${room.recent.files} file(s) (${room.recent.bytes} bytes) were requested in the last ${this.deps.recentWindow()}, ` +
          `which protects files up to cache.recentUseShare=${this.deps.recentShare()} of the budget`,
      );
    }
    if (this.#reserved > 0) held.push(`${this.#reserved} bytes are reserved by fills in flight`);
    const why = blocked ? `nothing can be evicted until ${blocked}` : `nothing more can be evicted: ${held.join(", ") || "no other file is cached"}`;
    return new CacheError(
      507,
      "disk_budget",
      `disk budget exceeded: this file needs ${bytes} more bytes, the cache holds ${this.used()} of ${limit} (cache.diskBudget) and ${why}; raise cache.diskBudget or retry when those pods have ended`,
    );
  }
}

/** The oldest keys of `evictable` that free at least `bytes` (all of them if they cannot). */
function pick(evictable: [string, FileUse][], bytes: number): string[] {
  const out: string[] = [];
  let freed = 0;
  for (const [k, f] of evictable) {
    if (freed >= bytes) break;
    out.push(k);
    freed += f.size;
  }
  return out;
}
