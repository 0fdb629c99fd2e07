// The node cache's HTTP endpoints on node:http: /v1/ensure (progress text while a fill
// runs), /v1/objects (the bytes), /healthz, /readyz, /metrics; the peer port's (only
// /v1/objects for other node caches, paced by cache.peers.maxBandwidth, at most
// cache.peers.fanout streams per file (more are answered busy, naming the peers served:
// src/cache/peers/fanout.ts), and /healthz);
// error responses that say why in x-cache-io-error (and x-cache-io-origin-status); and
// the servers' own limits (header and request timeouts, header size, connections) that
// bound what idle or slow clients can hold.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { CACHE_MAX_HEADER_BYTES } from "../shared/protocol.js";
import { CacheError, asCacheError } from "./errors.js";
import type { Fill } from "./fill.js";
import type { OwnAccount } from "./identity/verify.js";
import { TokenBucket } from "./limits.js";
import type { NodeCache } from "./node-cache.js";
import { claimedNode, formatServing, NOT_PRESENT, PeerStreams, type PeerStream } from "./peers/fanout.js";
import { PEER_HEADERS } from "./peers/types.js";
import { cachedLine, doneLine, errorLine, progressLine, startLine } from "./progress.js";
import { parseObjectRequest, type ObjectRequest } from "./request.js";
import { serveObject, type SendOptions } from "./serve-file.js";
import type { ObjectMeta } from "./store.js";

export interface ServerOptions {
  /** How long ensure waits before committing to 200 + progress, so fast failures get a real status. */
  ensureGraceMs?: number;
  progressIntervalMs?: number;
  /** Connection-level bounds (tests shorten them); defaults: SERVER_LIMITS. */
  limits?: Partial<typeof SERVER_LIMITS>;
}

/** Connection-level bounds: a request must arrive quickly and be small; idle keep-alive ends. */
export const SERVER_LIMITS = {
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  /** How often Node checks the two timeouts above (its default, 30 s, would let a slow client hold on 40 s). */
  connectionsCheckingInterval: 2_000,
  keepAliveTimeout: 30_000,
  maxHeaderSize: CACHE_MAX_HEADER_BYTES,
  /** Open connections at most (each ensure waiter holds one); more are closed at once. */
  maxConnections: 4096,
};

const TEXT = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff" };
const ROUTE = /^\/v1\/(ensure|objects)\/(.*)$/;
/** ensure responses that committed to 200 and stream progress text. */
const progressStreams = new WeakSet<ServerResponse>();

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

function listener(opts: ServerOptions, handler: Handler): http.Server {
  const { maxConnections, ...limits } = { ...SERVER_LIMITS, ...opts.limits };
  const server = http.createServer(limits, (req, res) => {
    handler(req, res).catch((err: unknown) => fail(res, asCacheError(err)));
  });
  server.maxConnections = maxConnections;
  return server;
}

export function createCacheServer(cache: NodeCache, opts: ServerOptions = {}): http.Server {
  const o = { ensureGraceMs: opts.ensureGraceMs ?? 1000, progressIntervalMs: opts.progressIntervalMs ?? 2000 };
  return listener(opts, (req, res) => handle(cache, req, res, o));
}

export interface PeerServerOptions extends ServerOptions {
  /** The node cache's own ServiceAccount: peer tokens must be of it. */
  own: OwnAccount;
}

/**
 * The peer port: GET/HEAD /v1/objects for other node caches (their own ServiceAccount's
 * token, acting for the caller named in x-cache-io-on-behalf-of), /healthz; every byte
 * sent paced by one token bucket (cache.peers.maxBandwidth) and counted in peerBytes{out};
 * at most cache.peers.fanout GETs of one key at once, more are answered busy with the
 * peers being served (docs/PEERS.md, "Fanout").
 */
export function createPeerServer(cache: NodeCache, opts: PeerServerOptions): http.Server {
  const bucket = new TokenBucket(() => cache.policy().cache.peers.maxBandwidth);
  const out = cache.metrics.peerBytes.labels({ direction: "out" });
  const streams = new PeerStreams(() => cache.policy().cache.peers.fanout);
  /** Each chunk is paced by the shared bucket, counted in peerBytes{out} and in its stream's progress (what "most advanced" means in a busy answer). */
  const send = (stream: PeerStream): SendOptions => ({
    pacer: {
      chunk: () => bucket.chunk(),
      take: (n) => {
        stream.sent += n;
        out.inc(n);
        return bucket.take(n);
      },
    },
  });
  return listener(opts, (req, res) => handlePeer(cache, req, res, { own: opts.own, streams, send }));
}

type PeerPort = { own: OwnAccount; streams: PeerStreams; send(stream: PeerStream): SendOptions };

async function handlePeer(cache: NodeCache, req: IncomingMessage, res: ServerResponse, port: PeerPort): Promise<void> {
  const { own } = port;
  const [path = "", query = ""] = (req.url ?? "").split(/\?(.*)/s);
  const m = ROUTE.exec(path);
  if (m?.[1] === "objects") {
    if (req.method !== "GET" && req.method !== "HEAD") throw new CacheError(405, "bad_request", `${req.method} is not allowed on /v1/objects/...: use GET or HEAD`);
    const problem = cache.policyProblem();
    if (problem) throw Object.assign(new CacheError(503, "not_ready", problem), { retryAfter: 10 });
    if (!cache.policy().cache.peers.enabled) throw Object.assign(new CacheError(503, "not_ready", "the cluster tier is off on this node (cache.peers.enabled: false): fill from the origin"), { retryAfter: 60 });
    const caller = await cache.access.identifyPeer(req.headers.authorization, req.headers[PEER_HEADERS.onBehalfOf], own, () => cache.isPrewarmKey(m[2] ?? ""));
    const params = parseObjectRequest(m[2] ?? "", query, cache.access.rulesFor(caller), caller, cache.policy().cache.keyIgnoreQuery);
    cache.access.check(caller, params.url);
    const node = req.method === "GET" ? await callerNode(cache, req, own) : undefined;
    // From here on synchronous up to serveObject's acquire: what "present" saw is what it joins.
    if (req.headers[PEER_HEADERS.ifPresent] !== undefined && !present(cache, params)) {
      return text(res, 404, `${NOT_PRESENT}: this node cache has no copy of ${params.key} and is not filling one; ask the next peer\n`, { "x-cache-io-error": NOT_PRESENT });
    }
    if (req.method === "HEAD") return serveObject(cache, req, res, { ...params, viaPeer: true });
    const members = cache.filler.peers?.source.peers() ?? [];
    const opened = port.streams.open(params.key, node, (n) => members.some((p) => p.node === n));
    if ("busy" in opened) return busyAnswer(cache, res, params.key, opened.serving);
    // The peer may have gone during the awaits above: its "close" has fired already, and the place would never be freed.
    if (req.socket.destroyed || res.destroyed) return opened.close();
    res.once("close", opened.close);
    return serveObject(cache, req, res, { ...params, viaPeer: true }, port.send(opened.stream));
  }
  if (path === "/healthz") return text(res, 200, "ok\n");
  throw new CacheError(404, "bad_request", `no such endpoint ${JSON.stringify(path.slice(0, 100))} on the peer port (endpoints: /v1/objects/<key>, /healthz; pods use cache.port)`);
}

/**
 * The caller's node: the one its verified peer token is bound to (the verifier remembers
 * the token, so this costs no second signature check); without one (identity.mode off, or
 * no token) the node it claims in x-cache-io-node, which decides only whom it is hinted to.
 */
async function callerNode(cache: NodeCache, req: IncomingMessage, own: OwnAccount): Promise<string | undefined> {
  const v = cache.access.verifier;
  const auth = req.headers.authorization;
  if (v && auth && cache.policy().identity.mode !== "off") return (await v.verifyPeer(auth, own)).node;
  return claimedNode(req.headers[PEER_HEADERS.node]);
}

/** A complete copy of the asked content, or a fill of the key in flight. */
function present(cache: NodeCache, params: ObjectRequest): boolean {
  const m = cache.current(params.key);
  return (!!m && (!params.sha256 || m.sha256 === params.sha256)) || cache.filler.filling(params.key);
}

/** 503: this node streams the file to cache.peers.fanout peers already; x-cache-io-peers-serving names them (those of its membership). */
function busyAnswer(cache: NodeCache, res: ServerResponse, key: string, serving: string[]): void {
  const { fanout } = cache.policy().cache.peers;
  const them = serving.length > 0 ? `ask one of them: ${serving.join(", ")}` : "none of them is a known peer: ask the next peer";
  text(res, 503, `busy: this node cache streams ${key} to ${fanout} peer(s) already (cache.peers.fanout); ${them}\n`, {
    "x-cache-io-error": "busy",
    "retry-after": "1",
    [PEER_HEADERS.serving]: formatServing(serving),
  });
}

type Timing = { ensureGraceMs: number; progressIntervalMs: number };

async function handle(cache: NodeCache, req: IncomingMessage, res: ServerResponse, o: Timing): Promise<void> {
  const [path = "", query = ""] = (req.url ?? "").split(/\?(.*)/s);
  const m = ROUTE.exec(path);
  if (m) {
    const isEnsure = m[1] === "ensure";
    if (req.method !== "GET" && (isEnsure || req.method !== "HEAD")) {
      throw new CacheError(405, "bad_request", `${req.method} is not allowed on ${path.slice(0, 12)}...: use GET${isEnsure ? "" : " or HEAD"}`);
    }
    const problem = cache.policyProblem();
    if (problem) throw Object.assign(new CacheError(503, "not_ready", problem), { retryAfter: 10 });
    const caller = await cache.access.identify(req.headers.authorization);
    const params = parseObjectRequest(m[2] ?? "", query, cache.access.rulesFor(caller), caller, cache.policy().cache.keyIgnoreQuery);
    cache.access.check(caller, params.url);
    return isEnsure ? ensure(cache, res, params, o) : serveObject(cache, req, res, params);
  }
  if (path === "/healthz") return text(res, 200, "ok\n");
  if (path === "/readyz") {
    const r = await cache.ready();
    return text(res, r.ok ? 200 : 503, r.ok ? "ready\n" : `not ready: ${r.why}\n`);
  }
  if (path === "/metrics") {
    const body = await cache.metrics.registry.metrics();
    return void res.writeHead(200, { "content-type": cache.metrics.registry.contentType }).end(body);
  }
  throw new CacheError(404, "bad_request", `no such endpoint ${JSON.stringify(path.slice(0, 100))} (endpoints: /v1/ensure/<key>, /v1/objects/<key>, /healthz, /readyz, /metrics)`);
}

function text(res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...TEXT, ...extra }).end(body);
}

/**
 * An error before the response started gets its status; after, the stream is cut so
 * the client fails (a text response first gets an `error:` line for the log).
 */
function fail(res: ServerResponse, err: CacheError): void {
  if (!res.headersSent) return text(res, err.status, errorLine(err.message), errorHeaders(err));
  if (res.destroyed) return;
  if (!progressStreams.has(res)) return void res.destroy();
  res.write(errorLine(err.message), () => res.destroy());
  setTimeout(() => res.destroy(), 5000).unref();
}

/** Why, for programs (a peer decides from them whether to ask the next peer): the reason, and the origin's status when it caused the error. */
function errorHeaders(err: CacheError): Record<string, string> {
  return {
    "x-cache-io-error": err.reason,
    ...(err.originStatus !== undefined ? { "x-cache-io-origin-status": String(err.originStatus) } : {}),
    ...(err.retryAfter ? { "retry-after": String(err.retryAfter) } : {}),
    ...(err.status === 401 ? { "www-authenticate": 'Bearer realm="cache-io", error="invalid_token"' } : {}),
  };
}

type Outcome = { meta: ObjectMeta } | { err: CacheError };

/**
 * GET /v1/ensure: returns when the file is complete. A fill that ends within the grace
 * period answers with its real status; after that the answer is 200 with a progress
 * line every interval and `done ...` at the end, or `error: ...` and a cut stream.
 */
async function ensure(cache: NodeCache, res: ServerResponse, params: ObjectRequest, o: Timing): Promise<void> {
  const a = await cache.acquire(params);
  if ("meta" in a) {
    cache.metrics.ensuredBytes.inc(a.meta.size);
    return text(res, 200, cachedLine(a.meta));
  }
  const { fill } = a;
  const gone = new AbortController();
  res.once("close", () => {
    gone.abort();
    fill.leave();
  });
  const outcome: Promise<Outcome> = cache.settle(fill, params, gone.signal).then((meta) => ({ meta }), (e: unknown) => ({ err: asCacheError(e) }));
  const early = await Promise.race([outcome, sleep(o.ensureGraceMs).then(() => null)]);
  if (early) return finish(cache, res, early, fill);
  if (res.destroyed) return;
  res.writeHead(200, TEXT);
  progressStreams.add(res);
  res.write(startLine(fill));
  const timer = setInterval(() => res.write(progressLine(fill)), o.progressIntervalMs);
  try {
    finish(cache, res, await outcome, fill);
  } finally {
    clearInterval(timer);
  }
}

function finish(cache: NodeCache, res: ServerResponse, outcome: Outcome, fill: Fill): void {
  if ("err" in outcome) return fail(res, outcome.err);
  cache.metrics.ensuredBytes.inc(outcome.meta.size);
  if (!res.headersSent) res.writeHead(200, TEXT);
  res.end(doneLine(outcome.meta, fill.startedAt));
}
