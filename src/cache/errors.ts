// What a request or a fill can fail with: the HTTP status the client gets, the
// metric reason, and a message that says what was wrong and how to fix it.
export type FailReason =
  | "bad_request" | "policy" | "origin_status" | "network" | "timeout" | "truncated"
  | "checksum" | "too_large" | "disk_budget" | "io" | "shutdown" | "busy" | "abandoned" | "not_ready"
  | "unauthenticated";

export class CacheError extends Error {
  /** Seconds a client should wait before retrying (sent as Retry-After). */
  retryAfter: number | undefined;
  /** The origin's HTTP status, when the origin's answer is the cause. */
  originStatus: number | undefined;
  /** The URL that answered with originStatus (after redirects). */
  originUrl: string | undefined;

  constructor(
    readonly status: number,
    readonly reason: FailReason,
    message: string,
    /** Worth another attempt at the origin (5xx, reset, timeout, cut body). */
    readonly transient = false,
  ) {
    super(message);
    this.name = "CacheError";
  }
}

export function badRequest(message: string): CacheError {
  return new CacheError(400, "bad_request", message);
}

export function refused(message: string): CacheError {
  return new CacheError(403, "policy", message);
}

/** 401: the caller did not prove who it is (sent with WWW-Authenticate: Bearer). */
export function unauthorized(message: string): CacheError {
  return new CacheError(401, "unauthenticated", message);
}

/** 503 with Retry-After: a limit of the cache is reached right now. */
export function busy(message: string, retryAfter = 5): CacheError {
  const e = new CacheError(503, "busy", message);
  e.retryAfter = retryAfter;
  return e;
}

/** Any thrown value as a CacheError (unexpected ones become 500 io errors). */
export function asCacheError(err: unknown): CacheError {
  if (err instanceof CacheError) return err;
  const e = err as NodeJS.ErrnoException;
  return new CacheError(500, "io", `cache error: ${e?.message ?? String(err)}`);
}
