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
 * 32 MiB of bodies: ten reviews of the largest pod or thousands of ordinary ones at
 * once. Buffers cost about twice their size (TLS records, then the joined body), so
 * this bounds body memory near 64 MiB over the idle ~90 MiB.
 */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024;

/** The webhook configuration's timeoutSeconds is 5: a body that is not in after 2.5 s would miss it anyway. */
export const DEFAULT_BODY_TIMEOUT_MS = 2500;

/** kube-apiserver replicas keep a few keep-alive connections each; idle TLS connections cost ~50 KiB. */
export const DEFAULT_MAX_CONNECTIONS = 256;

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

/** Parse a positive integer flag or option; the error names the flag. */
export function positiveInt(name: string, value: unknown): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${String(value)}"`);
  return n;
}
