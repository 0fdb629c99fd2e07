// The parts of a ranged fill fetched concurrently: every part request carries If-Range
// with the version's validator and must come back as a 206 of that version with the
// Content-Range asked for; a part that fails is retried on its own (from the byte it
// reached, with backoff), an object that changed restarts the fill. Each request takes
// a connection from the node's pool (cache.parts.maxConnections). Parts open two at a
// time first, more while the connections are slow (ramp.ts), up to cache.parts.concurrency.
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../../shared/log.js";
import { CacheError, asCacheError } from "../errors.js";
import { fillGet, statusError, type FillResponse, type OriginResponse, type OriginSettings, type ResponseLike } from "../origin.js";
import { redact } from "../redact.js";
import type { FillBody, PartState } from "./body.js";
import type { ConnectionPool } from "./connections.js";
import { ifRange, parseContentRange, rangeHeader, sameVersion, type Version } from "./plan.js";
import { initialParts, partsToAdd, RAMP_WINDOW_MS } from "./ramp.js";
import { BodyOverrun, receive } from "./receive.js";

const MAX_BACKOFF_MS = 30_000;

export interface PartsContext {
  url: string;
  origin: OriginSettings;
  connections: ConnectionPool;
  version: Version;
  concurrency: number;
  /** cache.parts.rampBelow (ramp.ts); 0: every part at once. Default RAMP_BELOW. */
  rampBelow?: number;
  retries: number;
  retryBaseMs: number;
  signal: AbortSignal;
  log: Logger;
  /** Every received chunk (size cap, budget, metrics); throw to fail the fill. */
  onBytes(n: number): void;
  /** A part has all its bytes: make them durable (resumable fills). Runs beside the next parts; the fill waits for all before it ends. */
  onPartDone(part: PartState): Promise<void>;
}

/** The object changed at the origin while its parts were fetched: the fill starts over (a transient error of the whole fill). */
export class ObjectChanged extends CacheError {}

export function changed(url: string, why: string): CacheError {
  return new ObjectChanged(502, "network", `${redact(url)} changed at the origin during the fill (${why}); starting over`, true);
}

/** Fetch every part of `body` not yet done; `first` (if given) is a response already in hand for its part. */
export async function fetchParts(ctx: PartsContext, body: FillBody, first?: { part: PartState; r: OriginResponse<FillResponse>; release: () => void }): Promise<void> {
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);
  const queue = body.parts.filter((p) => !p.done && p !== first?.part);
  let failure: unknown;
  /** Parts being made durable: the connection goes on to the next part meanwhile. */
  const syncing: Promise<void>[] = [];
  const durable = (p: PartState) => {
    const s = ctx.onPartDone(p);
    s.catch((err: unknown) => {
      failure ??= err;
      stop.abort();
    });
    syncing.push(s);
  };
  let open = 0;
  const worker = async (initial?: NonNullable<typeof first>) => {
    open++;
    try {
      if (initial) durable(await finishPart(initial.part, initial));
      for (let p = queue.shift(); p && !failure; p = queue.shift()) durable(await finishPart(p));
    } catch (err) {
      failure ??= err;
      stop.abort();
    } finally {
      open--;
    }
  };
  // Parts open progressively (ramp.ts): each window, the rate of the open ones decides.
  let window = { start: Date.now(), bytes: 0 };
  const counted = { ...ctx, onBytes: (n: number) => {
    ctx.onBytes(n);
    window.bytes += n;
    const now = Date.now();
    if (now - window.start < RAMP_WINDOW_MS) return;
    const add = partsToAdd({ open, max: ctx.concurrency, waiting: queue.length, bytes: window.bytes, ms: now - window.start }, ctx.rampBelow);
    if (add > 0) ctx.log.debug({ open, adding: add, mbps: Math.round(window.bytes / 1e3 / (now - window.start)) }, "parts are slow; opening more");
    for (let i = 0; i < add; i++) workers.push(worker());
    window = { start: now, bytes: 0 };
  } };
  const finishPart = (p: PartState, initial?: { r: OriginResponse<FillResponse>; release: () => void }) => finishOne(counted, body, p, signal, initial);
  const workers = [worker(first)];
  for (let i = 1; i < initialParts(ctx.concurrency, ctx.rampBelow) && i <= queue.length; i++) workers.push(worker());
  for (let seen = 0; seen < workers.length; ) {
    const batch = workers.slice(seen);
    seen = workers.length;
    await Promise.all(batch);
  }
  await Promise.allSettled(syncing);
  if (failure) throw failure;
}

/** One part to its end: the response in hand, else ranged requests, each retry from where the last stopped. */
async function finishOne(ctx: PartsContext, body: FillBody, part: PartState, signal: AbortSignal, first?: { r: OriginResponse<FillResponse>; release: () => void }): Promise<PartState> {
  for (let attempt = 0; ; attempt++) {
    try {
      if (attempt === 0 && first) await receiveInto(ctx, body, part, first.r, first.release);
      else await requestPart(ctx, body, part, signal);
      if (part.written < part.end - part.start) throw new CacheError(502, "truncated", `origin sent ${part.written} of the ${part.end - part.start} bytes of part ${part.index} of ${redact(ctx.url)}`, true);
      body.complete(part);
      return part;
    } catch (e) {
      const err = signal.aborted ? e : asPartError(e, ctx.url, part);
      if (!(err instanceof CacheError) || !err.transient || attempt >= ctx.retries || signal.aborted || isChange(err)) throw err;
      const delay = Math.min(ctx.retryBaseMs * 2 ** attempt, MAX_BACKOFF_MS) * (0.8 + 0.4 * Math.random());
      ctx.log.warn({ part: part.index, written: part.written, err: err.message, attempt: attempt + 1, retryInMs: Math.round(delay) }, "part failed; retrying it");
      await sleep(delay, undefined, { signal });
    }
  }
}

async function requestPart(ctx: PartsContext, body: FillBody, part: PartState, signal: AbortSignal): Promise<void> {
  const release = await ctx.connections.acquire(signal);
  let r: OriginResponse<FillResponse>;
  try {
    const from = { start: part.start + part.written, end: part.end };
    r = await fillGet(ctx.url, ctx.origin, { range: rangeHeader(from), "if-range": ifRange(ctx.version)! }, signal);
    checkPartResponse(ctx, r.res, from.start, part.end);
  } catch (err) {
    release();
    throw err;
  }
  await receiveInto(ctx, body, part, r, release);
}

async function receiveInto(ctx: PartsContext, body: FillBody, part: PartState, r: OriginResponse<FillResponse>, release: () => void): Promise<void> {
  try {
    await receive(r.res, body, part, ctx.onBytes);
  } catch (err) {
    throw r.failure() ?? err;
  } finally {
    release();
  }
}

/** A part's answer must be a 206 of the same version starting where asked; a 200 means the If-Range failed: the object changed. */
export function checkPartResponse(ctx: Pick<PartsContext, "url" | "version">, res: ResponseLike, start: number, end: number): void {
  const status = res.statusCode ?? 0;
  if (status === 200) {
    res.destroy();
    throw changed(ctx.url, "a part request got the whole new file instead of its range");
  }
  if (status !== 206) {
    res.resume();
    throw statusError(status, ctx.url);
  }
  const cr = parseContentRange(res.headers["content-range"]);
  const fault = !cr ? `no valid Content-Range (${String(res.headers["content-range"])})` : cr.total !== ctx.version.size ? `length ${cr.total}, was ${ctx.version.size}` : !sameVersion(ctx.version, res) ? "another ETag or Last-Modified" : cr.start !== start || cr.end > end ? `Content-Range ${res.headers["content-range"]} for bytes=${start}-${end - 1}` : null;
  if (!fault) return;
  res.destroy();
  throw cr && (cr.total !== ctx.version.size || !sameVersion(ctx.version, res)) ? changed(ctx.url, fault) : new CacheError(502, "origin_status", `origin answered a range request for ${redact(ctx.url)} with ${fault}`, true);
}

function isChange(err: CacheError): boolean {
  return err instanceof ObjectChanged;
}

function asPartError(e: unknown, url: string, part: PartState): unknown {
  if (e instanceof CacheError) return e;
  if (e instanceof BodyOverrun) return new CacheError(502, "origin_status", `origin sent more than part ${part.index} of ${redact(url)}: ${e.message}`, true);
  const err = e as NodeJS.ErrnoException;
  if (err.syscall === "write" || err.syscall === "open" || err.code === "ENOSPC") return new CacheError(500, "io", `cannot write the cache's temp file: ${err.message}`);
  if (err.code === "ECONNRESET" || err.message === "aborted") return new CacheError(502, "network", `the download of part ${part.index} of ${redact(url)} broke off after ${part.written} bytes: ${err.message}`, true);
  return asCacheError(e);
}
