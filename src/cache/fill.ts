// Single-flight fills: one origin fetch per key however many requests wait. Bytes go
// to a temp file (from the owning peer or one it names: src/cache/peers/, docs/PEERS.md; else one stream,
// or parallel ranged parts: src/cache/fills/, docs/FILLS.md),
// are counted against the size cap and the budget (growing as they arrive), hashed,
// checked against what the waiters asked for and published atomically; transient
// errors are retried. Fills are capped in all and per origin host, and a fill
// every waiter has left is abandoned after cache.abandonGrace.
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { Policy } from "../policy/schema.js";
import type { Logger } from "../shared/log.js";
import { CacheError, asCacheError } from "./errors.js";
import type { Budget, Reservation } from "./eviction.js";
import { Slots, fillRefusal } from "./limits.js";
import type { CacheMetrics } from "./metrics.js";
import type { OriginSettings } from "./origin.js";
import type { FillBody } from "./fills/body.js";
import { ConnectionPool } from "./fills/connections.js";
import { attempt as runAttempt, bodyError, completeFromOrigin, type AttemptContext } from "./fills/download.js";
import { conditionalHeaders, present, validators, type Version } from "./fills/plan.js";
import { removeResume } from "./fills/sidecar.js";
import { fetchFromPeers, peersFor } from "./peers/fetch.js";
import type { PeerSettings } from "./peers/types.js";
import { VerifiedBodies } from "./peers/verified.js";
import { redact } from "./redact.js";
import { Fill, type FillRequest } from "./fill-state.js";
import type { ObjectMeta, Store } from "./store.js";

export { Fill, type FillRequest } from "./fill-state.js";

const MAX_BACKOFF_MS = 30_000;
/** Space that is free anyway is held this far ahead of the bytes received (never past the announced length; nothing is evicted for it). */
const RESERVE_AHEAD = 16 * 2 ** 20;
const RETRY_AFTER_S = 5;
/** Peer streams of this node at once (a fill has at most one; cache.maxFills bounds them too). */
const MAX_PEER_STREAMS = 32;

export interface FillDeps {
  store: Store;
  budget: Budget;
  metrics: CacheMetrics;
  log: Logger;
  policy(): Policy;
  /** Origin settings for one fill: the rules and credentials of the caller that started it. */
  origin(req: FillRequest): OriginSettings;
  /** First retry delay; doubles per attempt. */
  retryBaseMs: number;
  /** Record a published or revalidated entry (called before the fill's waiters hear of it). */
  onPublished(meta: ObjectMeta): void;
  /** The origin says the file is gone (404, 410): drop the cached copy. */
  onGone(meta: ObjectMeta): Promise<void>;
  /** For an origin's 401/403/404: which credential was sent and what to check (credentials.explain). */
  explain?(url: string, status: number): { credential: string; hint: string } | undefined;
  /** The cluster tier: a miss asks the peers ranked above this node first. */
  peers?: PeerSettings;
}

export class Filler {
  readonly #inflight = new Map<string, Fill>();
  readonly #shutdown = new AbortController();
  readonly #slots = new Slots();
  /** Origin connections of every fill (cache.parts.maxConnections). */
  readonly #connections = new ConnectionPool(() => this.deps.policy().cache.parts.maxConnections);
  readonly #peerStreams = new ConnectionPool(() => MAX_PEER_STREAMS);
  /** Bodies verified before their publish (a peer stream's last byte may go then: src/cache/peers/verified.ts). */
  readonly verified = new VerifiedBodies<FillBody>();

  constructor(private readonly deps: FillDeps) {}

  get inFlight(): number {
    return this.#inflight.size;
  }

  /** The cluster tier's settings (membership, this node's name), when it runs with peers. */
  get peers(): PeerSettings | undefined {
    return this.deps.peers;
  }

  /** Whether a fill of `key` is in flight (a peer named in a busy answer serves only then, or a complete file). */
  filling(key: string): boolean {
    return this.#inflight.has(key);
  }

  /** Start the fill of `req.key`, or join the one in flight; the caller counts as a waiter. Throws 503 past the caps. */
  join(req: FillRequest): { fill: Fill; joined: boolean } {
    const existing = this.#inflight.get(req.key);
    if (existing) {
      existing.join(req);
      return { fill: existing, joined: true };
    }
    const c = this.deps.policy().cache;
    const host = new URL(req.url).hostname;
    const slot = this.#slots.acquire(host, { total: c.maxFills, perGroup: c.maxFillsPerHost });
    if (!("release" in slot)) {
      this.deps.metrics.downloadsRefused.inc({ reason: slot.reason === "total" ? "max_fills" : "max_fills_per_host" });
      throw fillRefusal(slot, host, RETRY_AFTER_S);
    }
    const fill = new Fill(req, () => this.deps.policy().cache.abandonGrace, (f) =>
      this.#run(f).finally(() => {
        this.#inflight.delete(req.key);
        slot.release();
      }),
    );
    this.#inflight.set(req.key, fill);
    return { fill, joined: false };
  }

  /** Abort every fill (shutdown); their waiters get a 503. */
  stop(): void {
    this.#shutdown.abort();
  }

  async #run(fill: Fill): Promise<ObjectMeta> {
    const c = this.deps.policy().cache;
    const timeout = AbortSignal.timeout(c.fillTimeout);
    const signal = AbortSignal.any([this.#shutdown.signal, timeout, fill.abandoned.signal]);
    const shown = redact(fill.req.url);
    const log = this.deps.log.child({ key: fill.req.key, url: shown });
    log.info({ revalidate: !!fill.req.previous }, "fill started");
    const observe = (result: string) => this.deps.metrics.fillDuration.observe({ result }, (Date.now() - fill.startedAt) / 1000);
    try {
      for (let attempt = 0; ; attempt++) {
        fill.attempt = attempt;
        try {
          const meta = await this.#attempt(fill, signal, log);
          observe(meta.ino === fill.req.previous?.ino ? "unchanged" : "ok");
          return meta;
        } catch (e) {
          const err = this.#why(e, fill, signal, c.fillTimeout, shown);
          if (!err.transient || attempt >= c.originRetries || signal.aborted) throw err;
          const delay = Math.min(this.deps.retryBaseMs * 2 ** attempt, MAX_BACKOFF_MS) * (0.8 + 0.4 * Math.random());
          log.warn({ err: err.message, attempt: attempt + 1, retryInMs: Math.round(delay) }, "origin attempt failed; retrying");
          await sleep(delay, undefined, { signal });
        }
      }
    } catch (e) {
      const err = this.#explained(this.#why(e, fill, signal, c.fillTimeout, shown));
      this.deps.metrics.fillFailed(err.reason);
      const { previous } = fill.req;
      if (previous && err.reason !== "shutdown" && err.reason !== "abandoned") return this.#revalidationFailed(fill, previous, err, log, observe);
      observe(err.reason);
      // Saved parts outlive a shutdown (the restart resumes them), not a failure.
      if (err.reason !== "shutdown") await removeResume(this.deps.store.tmpDir, fill.req.key).catch(() => undefined);
      if (err.reason === "abandoned") log.info({ bytes: fill.bytes }, "fill abandoned: every client waiting for it left");
      else log.error({ err: err.message, status: err.status }, "fill failed");
      throw err;
    }
  }

  /** The origin could not confirm the cached copy: gone (404, 410) removes it; otherwise it is served while not too stale. */
  async #revalidationFailed(fill: Fill, previous: ObjectMeta, err: CacheError, log: Logger, observe: (r: string) => void): Promise<ObjectMeta> {
    const c = this.deps.policy().cache;
    if (err.originStatus === 404 || err.originStatus === 410) {
      observe("gone");
      await this.deps.onGone(previous);
      log.warn({ status: err.originStatus }, "the origin no longer has the file; removed the cached copy");
      throw new CacheError(502, "origin_status", `${err.message}; the cached copy was removed`);
    }
    const pastDue = Date.now() - Date.parse(previous.validatedAt) - c.revalidateAfter;
    if (pastDue <= c.maxStale) {
      observe("stale");
      fill.stale = true;
      log.warn({ err: err.message, staleMs: Math.max(0, pastDue) }, "revalidation failed; serving a stale copy");
      return previous;
    }
    observe(err.reason);
    log.error({ err: err.message, staleMs: pastDue }, "revalidation failed and the cached copy is too stale to serve");
    const out = new CacheError(
      err.status,
      err.reason,
      `${err.message}; the cached copy is not served: it was last confirmed by the origin ${Math.round((pastDue + c.revalidateAfter) / 1000)} s ago, more than cache.revalidateAfter + cache.maxStale`,
    );
    out.originStatus = err.originStatus;
    out.originUrl = err.originUrl;
    throw out;
  }

  /** An origin's 401/403/404 names the credential that was sent and what to check; counted per credential. */
  #explained(err: CacheError): CacheError {
    const status = err.originStatus;
    const e = status && err.originUrl ? this.deps.explain?.(err.originUrl, status) : undefined;
    if (!e) return err;
    this.deps.metrics.originAuthFailures.inc({ credential: e.credential });
    const out = new CacheError(err.status, err.reason, `${err.message}; ${e.hint}`, err.transient);
    out.originStatus = status;
    out.originUrl = err.originUrl;
    return out;
  }

  #why(e: unknown, fill: Fill, signal: AbortSignal, fillTimeout: number, url: string): CacheError {
    if (this.#shutdown.signal.aborted) return new CacheError(503, "shutdown", "the node cache is shutting down; retry in a moment", true);
    if (fill.abandoned.signal.aborted) return new CacheError(503, "abandoned", `every client waiting for ${url} left; the fill was abandoned after cache.abandonGrace`);
    if (signal.aborted) return new CacheError(504, "timeout", `fetching ${url} did not finish within ${fillTimeout} ms (cache.fillTimeout)`);
    return asCacheError(e);
  }

  async #attempt(fill: Fill, signal: AbortSignal, log: Logger): Promise<ObjectMeta> {
    const { req } = fill;
    const c = this.deps.policy().cache;
    let reservation: Reservation | undefined;
    let body: FillBody | undefined;
    fill.bytes = 0;
    fill.total = undefined;
    fill.version = undefined;
    const onLength = (total: number | undefined, onDisk: number) => {
      this.#checkSize(total ?? 0, req.url);
      fill.total = total;
      fill.bytes = onDisk;
      // Room is made as bytes arrive (an announced length is not trusted), but a file that can never fit is refused now.
      this.deps.budget.checkFits(req.key, total ?? 0, req.caller?.namespace);
      reservation?.release();
      reservation = this.deps.budget.reserve(req.key, 0, req.caller?.namespace);
      if (onDisk > 0) reservation.grow(onDisk, onDisk);
    };
    const onBytes = (n: number) => {
      fill.bytes += n;
      this.#checkSize(fill.bytes, req.url);
      if (reservation && fill.bytes > reservation.bytes) reservation.grow(fill.bytes, Math.min(fill.bytes + RESERVE_AHEAD, fill.total ?? Infinity));
    };
    try {
      const peers = fill.attempt === 0 && this.deps.peers ? peersFor(req, this.deps.peers, c.peers) : [];
      const got = peers.length === 0 ? null : await fetchFromPeers({
        key: req.key, url: req.url, ...(req.sha256 ? { sha256: req.sha256 } : {}), ...(req.caller ? { caller: req.caller } : {}),
        peers, self: this.deps.peers!.self, lookup: (node) => this.deps.peers!.source.peers().find((p) => p.node === node),
        token: this.deps.peers!.token, idleTimeout: c.peers.idleTimeout, connectTimeout: c.connectTimeout, streams: this.#peerStreams,
        tempPath: () => this.deps.store.tempPath(req.key), signal, log, accepts: (sha) => fill.accepts(sha),
        onFailure: (peer, reason) => this.deps.metrics.peerFailures.inc({ peer, reason }),
        onRedirect: (kind) => this.deps.metrics.peerRedirects.inc({ kind }),
        onLength,
        onBytes: (n) => {
          onBytes(n);
          this.deps.metrics.peerBytes.inc({ direction: "in" }, n);
        },
        onBody: (b) => fill.setBody(b),
        onVersion: (v) => (fill.version = v),
      });
      if (got && "sha256" in got) {
        body = got.body;
        return await this.#done(fill, got.body, got.sha256, got.version ?? {}, reservation!, false, log, `peer ${got.peer}`);
      }
      const ctx: AttemptContext = {
        key: req.key,
        url: req.url,
        tmpDir: this.deps.store.tmpDir,
        tempPath: () => this.deps.store.tempPath(req.key),
        origin: this.deps.origin(req),
        connections: this.#connections,
        parts: c.parts,
        retries: c.originRetries,
        retryBaseMs: this.deps.retryBaseMs,
        conditional: conditionalHeaders(req.previous),
        signal,
        log,
        onLength,
        onBytes: (n) => {
          onBytes(n);
          this.deps.metrics.originBytes.inc(n);
        },
        onBody: (b) => {
          body = b;
          fill.setBody(b);
        },
        onVersion: (v) => (fill.version = v),
      };
      if (got) {
        // The peers' bytes so far are of a version the origin can be held to: the rest from the origin, into the same body.
        body = got.partial;
        log.info({ bytes: body.watermark, of: got.version.size }, "no peer could finish; the rest comes from the origin");
        return await this.#done(fill, body, await completeFromOrigin(ctx, body, got.version), got.version, reservation!, false, log, "origin");
      }
      [fill.bytes, fill.total, fill.version] = [0, undefined, undefined]; // no peer could: the origin, from byte 0
      const done = await runAttempt(ctx);
      if (done.kind === "not_modified" && req.previous) {
        return await this.#record({ ...req.previous, ...validators(done.res, req.previous), validatedAt: new Date().toISOString() }, true);
      }
      if (done.kind !== "body") throw new CacheError(502, "origin_status", `origin answered 304 for ${redact(req.url)} without a conditional request`);
      return await this.#done(fill, done.body, done.sha256, validators(done.res), reservation!, done.resumable, log, "origin");
    } catch (e) {
      const err = bodyError(e, fill.bytes, fill.total, req.url);
      body?.fail(err);
      throw err;
    } finally {
      reservation?.release();
      if (body) {
        await body.release();
        if (!body.path.endsWith(".ranged")) await rm(body.path, { force: true });
      }
    }
  }

  /** Publish a complete body; `from` is where the bytes came from (the origin, or "peer <node>"). */
  async #done(fill: Fill, body: FillBody, sha256: string, v: Omit<Version, "size">, reservation: Reservation, resumable: boolean, log: Logger, from: string): Promise<ObjectMeta> {
    fill.bytes = body.watermark;
    if (fill.accepts(sha256) && !fill.req.previous) this.verified.resolve(body, sha256);
    const meta = await this.#publish(fill, body.path, sha256, present(v), reservation);
    if (resumable) await removeResume(this.deps.store.tmpDir, fill.req.key);
    body.finish();
    this.deps.metrics.fillSources.inc({ source: from === "origin" ? "origin" : "peer" });
    const secs = (Date.now() - fill.startedAt) / 1000;
    log.info({ bytes: meta.size, seconds: secs, mbps: +(meta.size / 1e6 / secs).toFixed(1), sha256, parts: body.parts.length, from }, "fill done");
    return meta;
  }

  #checkSize(bytes: number, url: string): void {
    const max = this.deps.policy().cache.maxFileSize;
    if (bytes > max) {
      throw new CacheError(413, "too_large", `${redact(url)} is larger than the cache's size cap (${bytes > 0 ? `at least ${bytes}` : "?"} > ${max} bytes, cache.maxFileSize); raise cache.maxFileSize or use a smaller file`);
    }
  }

  async #publish(fill: Fill, temp: string, sha256: string, v: { etag?: string; lastModified?: string }, reservation: Reservation): Promise<ObjectMeta> {
    const { req } = fill;
    // The bytes decide: kept when some waiter asked for this sha256 or for any content; each waiter is checked on its own.
    if (!fill.accepts(sha256)) {
      const asked = fill.wanted.join(" or ");
      throw new CacheError(502, "checksum", `${redact(req.url)} has sha256 ${sha256}, not the ${asked} that was asked for; nothing was stored. Fix the #sha256= of this file in cache.io/files, or the file at the origin`);
    }
    const now = new Date().toISOString();
    if (req.previous?.sha256 === sha256) {
      return this.#record({ ...req.previous, ...present({ etag: v.etag ?? req.previous.etag, lastModified: v.lastModified ?? req.previous.lastModified }), validatedAt: now }, true);
    }
    const meta = await this.deps.store.publish(temp, { key: req.key, url: req.url, size: fill.bytes, sha256, ...v, fetchedAt: now, validatedAt: now, ...(req.caller ? { namespace: req.caller.namespace } : {}) });
    reservation.commit(req.key, meta.size);
    return this.#record(meta, false);
  }

  async #record(meta: ObjectMeta, rewriteMeta: boolean): Promise<ObjectMeta> {
    if (rewriteMeta) await this.deps.store.writeMeta(meta);
    this.deps.onPublished(meta);
    return meta;
  }
}
