// A fill's bytes from the peers that rank above this node (docs/PEERS.md): one peer at
// a time, streamed into the fill's FillBody (local readers stream while it lands); a
// peer at its fanout names the peers it serves, which are asked next (ask-order.ts); a
// peer that breaks off, stalls past cache.peers.idleTimeout or errs is counted and the
// next one is asked from the byte reached (Range + the origin version the bytes belong
// to; a 200 there starts over); none left: the origin. The owner's non-transient answer
// about the origin (4xx, checksum, too large, refused) fails the fill: asking the
// origin again would only repeat it. Bytes are checked like an origin's, never trusted more.
import { open, rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import type { Logger } from "../../shared/log.js";
import { objectPath } from "../../shared/protocol.js";
import { CacheError, type FailReason } from "../errors.js";
import { FillBody } from "../fills/body.js";
import type { ConnectionPool } from "../fills/connections.js";
import { ifRange, parseContentRange, type Version } from "../fills/plan.js";
import { receive } from "../fills/receive.js";
import { redact } from "../redact.js";
import type { Caller } from "../request.js";
import type { FillRequest } from "../fill-state.js";
import { AskOrder } from "./ask-order.js";
import { NOT_PRESENT, parseServing } from "./fanout.js";
import { asPeerFailure, PeerFailed, peerGet, readError, type PeerResponse } from "./http.js";
import { peersToAsk } from "./rendezvous.js";
import { PEER_HEADERS, type Peer, type PeerSettings } from "./types.js";

export interface PeerFetchContext {
  key: string;
  url: string;
  /** The sha256 the fill was started for (sent to the owner, so it checks it too). */
  sha256?: string;
  caller?: Caller;
  /** Whom to ask, in order (rendezvous.peersToAsk); the peers busy answers name go in front. */
  peers: readonly Peer[];
  /** This node's name (sent as x-cache-io-node; never asked). */
  self: string;
  /** A node of the membership as a peer (what a busy answer's names are looked up in). */
  lookup(node: string): Peer | undefined;
  token(): Promise<string>;
  idleTimeout: number;
  connectTimeout: number;
  /** Concurrent peer streams of this node (each fill has at most one). */
  streams: ConnectionPool;
  tempPath(): string;
  signal: AbortSignal;
  log: Logger;
  /** Whether some waiter takes content with this sha256. */
  accepts(sha256: string): boolean;
  /** A peer failed (metric peerFailures). */
  onFailure(peer: string, reason: string): void;
  /** A peer sent this fill on to others: busy (at its fanout) or not_present (a named peer without a copy) (metric peerRedirects). */
  onRedirect?(kind: "busy" | "not_present"): void;
  /** Same as for an origin stream (size cap, budget); throwing stops the fill. */
  onLength(total: number, onDisk: number): void;
  onBytes(n: number): void;
  onBody(body: FillBody): void;
  /** The origin version of the bytes (Fill.version). */
  onVersion(v: Version): void;
}

export type PeerResult =
  | { body: FillBody; sha256: string; version: Version | undefined; peer: string }
  /** No peer finished, but these bytes of `version` (which has a validator) can be completed from the origin. */
  | { partial: FillBody; version: Version };

/** An error of this node (size cap, budget, disk), not of the peer: it fails the fill. */
class Local extends Error {
  constructor(readonly inner: unknown) {
    super("local");
  }
}

/**
 * Whom a miss asks before the origin: the ready peers ranked above this node (none for
 * a revalidation, which is conditional at the origin, or for a peer's own request: so a
 * request goes at most one hop, and a chain of asks only ever climbs the ranking).
 */
export function peersFor(req: FillRequest, settings: PeerSettings, policy: { enabled: boolean; maxTries: number }): Peer[] {
  if (!policy.enabled || req.previous || req.caller?.peer || req.viaPeer) return [];
  return peersToAsk(req.key, settings.source.peers(), settings.self, policy.maxTries);
}

/**
 * The bytes from peers; or the bytes reached, when the origin can complete them (a
 * version with a validator); or null (the origin from byte 0). Throws the owner's
 * non-transient answer.
 */
export async function fetchFromPeers(ctx: PeerFetchContext): Promise<PeerResult | null> {
  let body: FillBody | undefined;
  /** The origin version header as the first peer sent it (what a resume must match). */
  let versionRaw: string | undefined;
  let version: Version | undefined;
  const discard = async (err: Error) => {
    if (!body) return;
    const b = body;
    body = undefined;
    b.fail(err);
    await b.release();
    await rm(b.path, { force: true });
  };
  try {
    const order = new AskOrder(ctx.peers, { self: ctx.self, lookup: ctx.lookup });
    for (let ask = order.next(); ask; ask = order.next()) {
      const peer = ask.peer;
      ctx.signal.throwIfAborted();
      const resumeAt = body && versionRaw && body.watermark > 0 ? body.watermark : 0;
      const headers: Record<string, string> = { [PEER_HEADERS.node]: ctx.self };
      if (ask.hinted) headers[PEER_HEADERS.ifPresent] = "1";
      if (resumeAt > 0) Object.assign(headers, { range: `bytes=${resumeAt}-`, [PEER_HEADERS.ifOriginVersion]: versionRaw! });
      try {
        const release = await ctx.streams.acquire(ctx.signal);
        try {
          await addAuth(ctx, headers);
          const r = await peerGet(peer, objectPath(ctx.key, ctx.url, ctx.sha256), headers, ctx);
          const res = r.res;
          const status = res.statusCode ?? 0;
          if (status !== 200 && status !== 206) {
            const serving = status === 503 ? parseServing(res.headers[PEER_HEADERS.serving]) : undefined;
            const e = await readError(res);
            if (serving || (status === 404 && e.reason === NOT_PRESENT)) {
              // At its fanout (ask the peers it names instead), or a named peer without the file: not a failure.
              if (serving) order.busy(peer, serving);
              ctx.onRedirect?.(serving ? "busy" : "not_present");
              ctx.log.debug({ peer: peer.node, status, serving, hops: order.hops }, serving ? "peer at its fanout; asking the peers it serves" : "named peer has no copy; asking the next");
              continue;
            }
            const fatal = ownerVerdict(peer, status, e);
            if (fatal) throw new Local(fatal);
            throw new PeerFailed(e.reason ? `${e.reason}` : `http_${status}`, `answered ${status}: ${e.message}`);
          }
          const total = lengthOf(res, status, resumeAt, body?.size);
          const raw = res.headers[PEER_HEADERS.originVersion];
          const v = typeof raw === "string" ? parseVersion(raw, total) : undefined;
          if (status === 206 && versionRaw && v && !sameVersion(v, version)) throw new PeerFailed("version", "answered a range of another version of the file");
          if (status === 200) {
            if (body) await discard(new CacheError(502, "network", `peer ${peer.node} has another version of ${redact(ctx.url)}; starting over`, true));
            body = await newBody(ctx, total);
            versionRaw = v ? (raw as string) : undefined;
            version = v;
          }
          if (version && status === 200) ctx.onVersion(version);
          await receiveFrom(ctx, r, body!);
          if (body!.parts[0]!.written !== total) throw new PeerFailed("truncated", `closed after ${body!.parts[0]!.written} of ${total} bytes`);
          const part = body!.parts[0]!;
          body!.complete(part);
          const sha256 = await body!.digest();
          const claimed = /^"([0-9a-f]{64})"$/.exec(res.headers.etag ?? "")?.[1];
          if ((claimed && claimed !== sha256) || !ctx.accepts(sha256)) {
            throw new PeerFailed("checksum", `sent bytes with sha256 ${sha256}, not ${claimed && claimed !== sha256 ? `the ${claimed} it announced` : "what was asked for"}`);
          }
          const out: PeerResult = { body: body!, sha256, version, peer: peer.node };
          body = undefined;
          return out;
        } finally {
          release();
        }
      } catch (err) {
        if (err instanceof Local) throw err.inner;
        if (ctx.signal.aborted) throw err;
        const f = asPeerFailure(err);
        const givenUp = order.failed(ask, f.reason === "network" || f.reason === "truncated");
        if (givenUp) ctx.onFailure(peer.node, f.reason);
        ctx.log.warn({ peer: peer.node, reason: f.reason, err: f.message, bytes: body?.watermark ?? 0 }, givenUp ? "peer fetch failed; asking the next peer or the origin" : "peer stream cut; asking that peer once more");
        // Bytes of a version nobody named cannot be resumed (or bytes that proved wrong): start over.
        if (!versionRaw || f.reason === "checksum" || f.reason === "version") await discard(new CacheError(502, "network", `peer ${peer.node} failed: ${f.message}`, true));
      }
    }
    if (body && version && ifRange(version) && body.watermark > 0) {
      const partial = body;
      body = undefined;
      return { partial, version };
    }
    await discard(new CacheError(502, "network", `no peer could send ${redact(ctx.url)}; fetching it from the origin`, true));
    return null;
  } catch (err) {
    await discard(err as Error);
    throw err;
  }
}

async function addAuth(ctx: PeerFetchContext, headers: Record<string, string>): Promise<void> {
  try {
    headers.authorization = `Bearer ${await ctx.token()}`;
  } catch (err) {
    // Without a token the peer decides (identity off: anonymous rules; required: 401, then the next).
    ctx.log.warn({ err: (err as Error).message }, "no peer token; asking the peer without one");
  }
  if (ctx.caller) headers[PEER_HEADERS.onBehalfOf] = `${ctx.caller.namespace}/${ctx.caller.serviceAccount}`;
}

/** The body length a 200 or 206 announces (a 206 must go on exactly where asked, to the end). */
function lengthOf(res: IncomingMessage, status: number, resumeAt: number, size: number | undefined): number {
  const cl = res.headers["content-length"];
  const length = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
  if (status === 200) {
    if (length === undefined) throw new PeerFailed("protocol", "answered 200 without a Content-Length");
    return length;
  }
  const cr = parseContentRange(res.headers["content-range"]);
  if (resumeAt === 0 || !cr || cr.start !== resumeAt || cr.total !== size || cr.end !== size) {
    throw new PeerFailed("protocol", `answered 206 with Content-Range ${String(res.headers["content-range"])} for bytes=${resumeAt}-`);
  }
  return cr.total;
}

async function newBody(ctx: PeerFetchContext, total: number): Promise<FillBody> {
  try {
    ctx.onLength(total, 0);
    const path = ctx.tempPath();
    const body = new FillBody(await open(path, "wx+", 0o644), path, total, [{ index: 0, start: 0, end: total }]);
    ctx.onBody(body);
    return body;
  } catch (err) {
    throw new Local(err);
  }
}

async function receiveFrom(ctx: PeerFetchContext, r: PeerResponse, body: FillBody): Promise<void> {
  let local: unknown;
  try {
    await receive(r.res, body, body.parts[0]!, (n) => {
      try {
        ctx.onBytes(n);
      } catch (err) {
        local = err;
        throw err;
      }
    });
  } catch (err) {
    r.res.destroy();
    const e = err as NodeJS.ErrnoException;
    if (local || e.syscall === "write" || e.code === "ENOSPC") throw new Local(local ?? new CacheError(500, "io", `cannot write the cache's temp file: ${e.message}`));
    throw r.failure() ?? err;
  }
}

/** Reasons that fail the fill here too whatever the status (a policy refusal only as a 403: see ownerVerdict). */
const FATAL_REASONS = new Set<string>(["checksum", "too_large"]);

/** The owner's answer about the origin that fails the fill here too, or null (ask the next). */
export function ownerVerdict(peer: Peer, status: number, e: { reason?: string; originStatus?: number; message: string }): CacheError | null {
  const originClient = e.reason === "origin_status" && e.originStatus !== undefined && e.originStatus >= 400 && e.originStatus < 500 && e.originStatus !== 408 && e.originStatus !== 429;
  const fatal = originClient || (e.reason === "policy" && status === 403) || (e.reason !== undefined && FATAL_REASONS.has(e.reason));
  if (!fatal) return null;
  const err = new CacheError(status >= 400 && status < 600 ? status : 502, e.reason as FailReason, `peer ${peer.node}: ${e.message}`);
  if (e.originStatus !== undefined) err.originStatus = e.originStatus;
  return err;
}

/** The x-cache-io-origin-version JSON, when it is well-formed and names `total` bytes. */
export function parseVersion(raw: string, total: number): Version | undefined {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const { size, etag, lastModified } = v as Record<string, unknown>;
  if (size !== total || (etag !== undefined && typeof etag !== "string") || (lastModified !== undefined && typeof lastModified !== "string")) return undefined;
  return { size, ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
}

function sameVersion(a: Version, b: Version | undefined): boolean {
  return !!b && a.size === b.size && a.etag === b.etag && a.lastModified === b.lastModified;
}

