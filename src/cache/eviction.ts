// The disk budget: bytes of complete files plus what fills in flight have reserved;
// least-recently-used eviction of files that nothing protects, and a clear 507 when
// the budget cannot be met. Files mounted by running pods are never evicted; files
// protected only by a recent request hold at most cache.recentUseShare of the budget.
// Files and fills are attributed to the namespace whose caller filled them: one that
// would pass its share (identity.diskSharePerNamespace) evicts its own files first.
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
  /** A namespace's share of the budget (0 < share <= 1) and the policy field that sets it; absent: no caps. */
  share?(namespace: string): { share: number; field: string };
}

interface FileUse {
  size: number;
  lastUsed: number;
  namespace?: string;
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
  /** Bytes of files plus reservations per namespace (only namespaces with any). */
  #byNamespace = new Map<string, number>();

  constructor(private readonly deps: BudgetDeps) {}

  /** Bytes counted against the budget: complete files plus reservations. */
  used(): number {
    return this.#filesBytes + this.#reserved;
  }

  /** Bytes counted against one namespace's share: its files plus its fills' reservations. */
  usedBy(namespace: string): number {
    return this.#byNamespace.get(namespace) ?? 0;
  }

  /** `namespace`: whose caller filled the file (its share of the budget, identity.diskSharePerNamespace). */
  add(key: string, size: number, lastUsed = Date.now(), namespace?: string): void {
    this.delete(key);
    this.#files.set(key, namespace === undefined ? { size, lastUsed } : { size, lastUsed, namespace });
    this.#filesBytes += size;
    this.#count(namespace, size);
  }

  delete(key: string): void {
    const f = this.#files.get(key);
    if (!f) return;
    this.#filesBytes -= f.size;
    this.#count(f.namespace, -f.size);
    this.#files.delete(key);
  }

  touch(key: string, now = Date.now()): void {
    const f = this.#files.get(key);
    if (f) f.lastUsed = now;
  }

  /** Throw the 507 now when `bytes` can never fit, even after evicting everything evictable. */
  checkFits(key: string, bytes: number, namespace?: string): void {
    const room = this.#room(key);
    const cap = this.#cap(namespace);
    if (cap && namespace !== undefined) {
      const own = room.evictable.filter(([, f]) => f.namespace === namespace);
      if (bytes > cap.bytes - this.usedBy(namespace) + sum(own)) throw this.#shareRefusal(namespace, bytes, cap, room);
    }
    const free = this.deps.limit() - this.used() + sum(room.evictable);
    if (bytes > free) throw this.#refusal(bytes, room);
  }

  /** Hold space for a fill of `key` by `namespace`'s caller (nothing yet: it grows as bytes arrive). */
  reserve(key: string, bytes = 0, namespace?: string): Reservation {
    this.#makeRoom(key, bytes, bytes, namespace);
    this.#hold(namespace, bytes);
    let held = bytes;
    let open = true;
    const release = () => {
      if (open) this.#hold(namespace, -held);
      open = false;
    };
    return {
      get bytes() {
        return held;
      },
      grow: (need, ahead = need) => {
        if (need <= held) return;
        const target = Math.max(need, ahead);
        const got = this.#makeRoom(key, need - held, target - held, namespace);
        this.#hold(namespace, got);
        held += got;
      },
      commit: (k, size) => {
        release();
        this.add(k, size, Date.now(), namespace);
      },
      release,
    };
  }

  /** Evict down to the budget and each namespace to its share (after a fill, or when the policy shrank them); returns the keys evicted. */
  trim(): string[] {
    const evicted: string[] = [];
    for (const [ns, used] of this.#byNamespace) {
      const cap = this.#cap(ns);
      if (cap && used > cap.bytes) evicted.push(...this.#evict(pick(this.#room(undefined).evictable.filter(([, f]) => f.namespace === ns), used - cap.bytes)));
    }
    const over = this.used() - this.deps.limit();
    if (over > 0) evicted.push(...this.#evict(pick(this.#room(undefined).evictable, over)));
    return evicted;
  }

  /**
   * Hold `need` more bytes, evicting for them if needed, and up to `want` from space that is
   * free anyway (nothing is evicted for bytes that have not arrived); returns the bytes held
   * (>= need). Throws 507, evicting nothing, when `need` cannot fit.
   */
  #makeRoom(key: string, need: number, want: number, namespace?: string): number {
    const cap = namespace === undefined ? undefined : this.#cap(namespace);
    const nsFree = () => (cap && namespace !== undefined ? cap.bytes - this.usedBy(namespace) : Number.POSITIVE_INFINITY);
    const free = this.deps.limit() - this.used();
    if (need <= free && need <= nsFree()) return Math.max(need, Math.min(want, free, nsFree()));
    const room = this.#room(key);
    // The namespace's own least recently used files first, then anyone's for the budget.
    let victims: string[] = [];
    if (need > nsFree()) {
      victims = pick(room.evictable.filter(([, f]) => f.namespace === namespace), need - nsFree());
      if (nsFree() + this.#sizeOf(victims) < need) throw this.#shareRefusal(namespace!, need, cap!, room);
    }
    const freeAfter = free + this.#sizeOf(victims);
    if (need > freeAfter) {
      const taken = new Set(victims);
      victims.push(...pick(room.evictable.filter(([k]) => !taken.has(k)), need - freeAfter));
      if (free + this.#sizeOf(victims) < need) throw this.#refusal(need, room);
    }
    this.#evict(victims);
    return Math.max(need, Math.min(want, this.deps.limit() - this.used(), nsFree()));
  }

  /** A namespace's cap in bytes, or undefined when it has none (share 1, or no caps at all). */
  #cap(namespace: string | undefined): { bytes: number; share: number; field: string } | undefined {
    if (namespace === undefined || !this.deps.share) return undefined;
    const s = this.deps.share(namespace);
    return s.share >= 1 ? undefined : { ...s, bytes: Math.floor(s.share * this.deps.limit()) };
  }

  #count(namespace: string | undefined, bytes: number): void {
    if (namespace === undefined) return;
    const n = (this.#byNamespace.get(namespace) ?? 0) + bytes;
    if (n > 0) this.#byNamespace.set(namespace, n);
    else this.#byNamespace.delete(namespace);
  }

  #hold(namespace: string | undefined, bytes: number): void {
    this.#reserved += bytes;
    this.#count(namespace, bytes);
  }

  #sizeOf(keys: string[]): number {
    return keys.reduce((n, k) => n + (this.#files.get(k)?.size ?? 0), 0);
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

  #shareRefusal(namespace: string, bytes: number, cap: { bytes: number; share: number; field: string }, room: Room): CacheError {
    const evictable = new Set(room.evictable.map(([k]) => k));
    const kept = [...this.#files].filter(([k, f]) => f.namespace === namespace && !evictable.has(k));
    const filled = [...this.#files.values()].filter((f) => f.namespace === namespace).reduce((n, f) => n + f.size, 0);
    const reserved = this.usedBy(namespace) - filled;
    const blocked = this.deps.blocked();
    const held: string[] = [];
    if (kept.length) held.push(`${kept.length} of its file(s) (${sum(kept)} bytes) are mounted by running pods or were requested in the last ${this.deps.recentWindow()}`);
    if (reserved > 0) held.push(`${reserved} bytes are reserved by its fills in flight`);
    const why = blocked ? `nothing can be evicted until ${blocked}` : `none of its files can be evicted: ${held.join(", ") || "it has no other file here"}`;
    return new CacheError(
      507,
      "disk_budget",
      `disk share of namespace "${namespace}" exceeded: this file needs ${bytes} more bytes, the namespace's files and fills on this node hold ${this.usedBy(namespace)} bytes ` +
        `of its share ${cap.share} of cache.diskBudget (${cap.bytes} bytes, ${cap.field}) and ${why}; raise ${cap.field}, or retry when its pods have ended`,
    );
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

function sum(entries: [string, FileUse][]): number {
  return entries.reduce((n, [, f]) => n + f.size, 0);
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
