// Counting caps for what hostile callers can hold at once: downloads (in all and per
// client address) and fills (in all and per origin host). A refused slot is a 503 with
// Retry-After whose message names the policy field to raise. And the token bucket that
// paces every byte sent on the peer port (cache.peers.maxBandwidth).
import { busy, type CacheError } from "./errors.js";

export interface SlotLimits {
  /** The cap in all (read each time: the policy hot-reloads). */
  total: number;
  /** The cap per group (client address, origin host). */
  perGroup: number;
}

export interface Refusal {
  /** The metric label: which cap was hit. */
  reason: "total" | "per_group";
  count: number;
  limit: number;
}

/** A counter of slots in all and per group; `acquire` returns a release function or why not. */
export class Slots {
  #total = 0;
  readonly #groups = new Map<string, number>();

  get inUse(): number {
    return this.#total;
  }

  held(group: string): number {
    return this.#groups.get(group) ?? 0;
  }

  acquire(group: string, limits: SlotLimits): { release: () => void } | Refusal {
    if (this.#total >= limits.total) return { reason: "total", count: this.#total, limit: limits.total };
    const n = this.held(group);
    if (n >= limits.perGroup) return { reason: "per_group", count: n, limit: limits.perGroup };
    this.#total++;
    this.#groups.set(group, n + 1);
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.#total--;
        const left = this.held(group) - 1;
        if (left > 0) this.#groups.set(group, left);
        else this.#groups.delete(group);
      },
    };
  }
}

/** The 503 for a refused download. */
export function downloadRefusal(r: Refusal, client: string, retryAfter: number): CacheError {
  return r.reason === "total"
    ? busy(`the node cache is serving ${r.count} downloads, its limit (cache.maxDownloads=${r.limit}); retry in ${retryAfter}s, or raise cache.maxDownloads`, retryAfter)
    : busy(`client ${client} already has ${r.count} downloads running, the limit per client address (cache.maxDownloadsPerClient=${r.limit}); finish those first, or raise cache.maxDownloadsPerClient`, retryAfter);
}

/** The 503 for a refused fill. */
export function fillRefusal(r: Refusal, host: string, retryAfter: number): CacheError {
  return r.reason === "total"
    ? busy(`the node cache has ${r.count} origin fills in flight, its limit (cache.maxFills=${r.limit}); retry in ${retryAfter}s, or raise cache.maxFills`, retryAfter)
    : busy(`the node cache has ${r.count} fills in flight from origin host ${host}, the limit per host (cache.maxFillsPerHost=${r.limit}); retry in ${retryAfter}s, or raise cache.maxFillsPerHost`, retryAfter);
}

/**
 * Large read buffers shared by all downloads: a download gets a large buffer only while
 * fewer than `max` are out, else a small one. A crowd of stalled downloads then pins
 * at most `max` large buffers plus a small one each.
 */
export class BufferPool {
  #out = 0;

  constructor(readonly max: number) {}

  get out(): number {
    return this.#out;
  }

  tryTake(): boolean {
    if (this.#out >= this.max) return false;
    this.#out++;
    return true;
  }

  give(): void {
    this.#out = Math.max(0, this.#out - 1);
  }
}

/** Paces a download's chunks: at most `chunk()` bytes each, sent when `take` resolves. */
export interface Pacer {
  chunk(): number;
  take(bytes: number): Promise<void>;
}

/** A burst of this long at the full rate goes out at once; a chunk is a twentieth of a second's bytes (16 KiB to 1 MiB). */
const BURST_S = 0.25;
const MIN_CHUNK = 16 << 10;
const MAX_CHUNK = 1 << 20;

/**
 * A token bucket shared by every download it paces (GCRA: one "theoretical arrival
 * time" instead of a token count, so concurrent takers queue in order of asking). The
 * rate is read on each take (the policy hot-reloads); 0 means no limit. Small chunks
 * keep a throttled download sending something often, so a peer's idle timeout does
 * not fire while it waits its turn.
 */
export class TokenBucket implements Pacer {
  #tat = 0;

  constructor(
    private readonly rate: () => number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  chunk(): number {
    const r = this.rate();
    return r > 0 ? Math.max(MIN_CHUNK, Math.min(MAX_CHUNK, Math.floor(r / 20))) : MAX_CHUNK;
  }

  /** Milliseconds to wait before `bytes` may go (the bytes are counted at once). */
  reserve(bytes: number): number {
    const r = this.rate();
    if (r <= 0) return 0;
    const now = this.now();
    this.#tat = Math.max(this.#tat, now) + (bytes / r) * 1000;
    return Math.max(0, this.#tat - now - BURST_S * 1000);
  }

  async take(bytes: number): Promise<void> {
    const wait = this.reserve(bytes);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
