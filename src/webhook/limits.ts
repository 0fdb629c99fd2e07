// What one hostile (or just slow) caller may cost the webhook: bytes of request bodies
// buffered at once across all connections, how long a body may take to arrive, and how
// many connections may be open. Defaults keep the Deployment inside its 256Mi limit.

export interface ServingLimits {
  /** Largest accepted body in bytes (413 above). */
  bodyLimit: number;
  /** Body bytes buffered at once across all reviews (503 above). */
  maxInFlightBytes: number;
  /** A request must deliver its headers and whole body within this (408 after). */
  bodyTimeoutMs: number;
  /** Open connections at most; more are closed at accept. */
  maxConnections: number;
}

/**
 * kube-apiserver refuses request bodies over 3 MiB and etcd objects over 1.5 MiB, so
 * an AdmissionReview of the largest storable Pod (with its JSON overhead) fits.
 */
export const DEFAULT_BODY_LIMIT = 3 * 1024 * 1024;

/**
 * 16 MiB of bodies: five reviews of the largest pod, or hundreds of ordinary (~20 KB)
 * ones, at once. Measured (bench/slow-bodies.ts): 60 stalled 3 MiB bodies peak near
 * 105 MiB RSS, 60 dense 0.8 MB reviews at once near 160 MiB, from ~85 MiB idle.
 */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024;

/** The webhook configuration's timeoutSeconds is 5: a body that is not in after 2.5 s would miss it anyway. */
export const DEFAULT_BODY_TIMEOUT_MS = 2500;

/** kube-apiserver replicas keep a few keep-alive connections each; idle TLS connections cost ~50 KiB. */
export const DEFAULT_MAX_CONNECTIONS = 256;

/**
 * JSON values (objects, arrays and members, counted by "{", "[" and "," outside strings)
 * one review may hold. A 3 MiB body of `[],[],...` parses into a million arrays (~40 MiB
 * each time); real pods, even 1.5 MiB ones, hold a few thousand values (their bulk is
 * strings). 100,000 bounds one parse near 10 MiB.
 */
export const MAX_JSON_VALUES = 100_000;

/** Whether `body` holds more than `max` JSON values; a byte scan, far cheaper than the parse it guards. */
export function tooManyJsonValues(body: Buffer, max = MAX_JSON_VALUES): boolean {
  let n = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const b = body[i];
    if (inString) {
      if (b === 0x5c) i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if ((b === 0x2c || b === 0x7b || b === 0x5b) && ++n > max) return true;
  }
  return false;
}

export const DEFAULT_LIMITS: ServingLimits = {
  bodyLimit: DEFAULT_BODY_LIMIT,
  maxInFlightBytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
  bodyTimeoutMs: DEFAULT_BODY_TIMEOUT_MS,
  maxConnections: DEFAULT_MAX_CONNECTIONS,
};

/** A shared count of buffered body bytes; every reservation is released exactly once. */
export class ByteBudget {
  private used = 0;
  constructor(readonly max: number) {}

  /** Take `n` bytes; false (and nothing taken) when that would pass the maximum. */
  take(n: number): boolean {
    if (this.used + n > this.max) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }

  get inUse(): number {
    return this.used;
  }
}

/**
 * At most one log line per reason and interval for refused requests, so a flood costs
 * log volume in proportion to time, not to requests; `suppressed` says how many were folded in.
 */
export class RefusalLog {
  private last = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly intervalMs = 1000) {}

  /** The number of refusals folded into this line, or undefined when this one should not be logged. */
  admit(reason: string, now = Date.now()): number | undefined {
    const entry = this.last.get(reason);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return undefined;
    }
    this.last.set(reason, { at: now, suppressed: 0 });
    return entry?.suppressed ?? 0;
  }
}

/** Parse a positive integer flag or option; the error names the flag. */
export function positiveInt(name: string, value: unknown): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${String(value)}"`);
  return n;
}
