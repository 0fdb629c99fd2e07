// A real local origin server for tests, the demo-like scenarios and benchmarks: serves
// files (from memory or disk) throttled to a rate per response (so per connection, not
// in total), fails on cue (status, reset, cut body, wrong bytes, stall; optionally only
// for the range starting at a byte), redirects, changes content, counts what it sent,
// answers conditional requests with 304 and, when `ranges` is on, single byte ranges
// with 206 (If-Range honoured). Dependency-free (node:* only).
import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";

/** What the next GET of a path does instead of (or while) serving the file. */
export interface Cue {
  /** Answer with this status and a short error body. */
  status?: number;
  /** Destroy the connection after this many body bytes (a reset). */
  resetAfter?: number;
  /** Send this many body bytes of the announced Content-Length, then close cleanly (a truncated body). */
  truncateAfter?: number;
  /** Flip the first byte: the right length, the wrong bytes. */
  corrupt?: boolean;
  /** Send nothing (not even headers) for this long; or, with `stallAfter`, stop after that many body bytes. */
  stallMs?: number;
  stallAfter?: number;
  /** Announce this Content-Length instead of the file's (sending the file's bytes, or fewer with a cut cue). */
  announce?: number;
  /** Send no Content-Length (a chunked body of unannounced length). */
  noLength?: boolean;
  /** How many GETs this cue applies to (default 1). */
  times?: number;
  /** Only for GETs of a range starting at this byte (ranged fills' parts); other GETs pass it by. */
  rangeStart?: number;
}

interface Entry {
  size: number;
  sha256: string;
  etag: string;
  lastModified: string;
  open(start: number): AsyncIterable<Buffer>;
}

export interface OriginStats {
  gets: number;
  heads: number;
  notModified: number;
  bytesSent: number;
  /** Responses being sent now, and the most at once so far. */
  active: number;
  maxActive: number;
}

export interface Origin {
  port: number;
  /** http://127.0.0.1:port + path */
  url(path: string): string;
  /** Serve `content` at `path` (a new version: new ETag and Last-Modified). */
  put(path: string, content: Buffer): { sha256: string; etag: string };
  /** Serve a file from disk at `path`; its sha256 is computed once, here. */
  putFile(path: string, file: string): Promise<{ sha256: string; etag: string; size: number }>;
  /** Answer GET and HEAD of `path` with a redirect to `location`. */
  redirect(path: string, location: string, status?: number): void;
  /** Queue a cue for the next GET(s) of `path`. */
  cue(path: string, cue: Cue): void;
  /** Bytes per second for every response (undefined: unthrottled); `rateFor` overrides per path. */
  rate: number | undefined;
  rateFor: Map<string, number>;
  /** Serve single byte ranges (206, Accept-Ranges: bytes, If-Range); off: Range is ignored (200, Accept-Ranges: none). */
  ranges: boolean;
  /** Send no ETag and no Last-Modified (nothing binds ranges to one version). */
  noValidators: boolean;
  stats: OriginStats;
  /** GETs of one path (including failed and 304 ones). */
  gets(path: string): number;
  /** Request headers of every GET, in order (for conditional-request checks). */
  requests: { method: string; path: string; headers: IncomingMessage["headers"] }[];
  close(): Promise<void>;
}

const SLICE = 64 * 1024;

export async function startOrigin(opts: { rate?: number; host?: string; ranges?: boolean } = {}): Promise<Origin> {
  const files = new Map<string, Entry>();
  const redirects = new Map<string, { location: string; status: number }>();
  const cues = new Map<string, Cue[]>();
  const perPath = new Map<string, number>();
  let version = 0;
  const origin: Origin = {
    port: 0,
    url: (path) => `http://${host}:${origin.port}${path}`,
    put(path, content) {
      const sha256 = sha(content);
      files.set(path, entry(content.length, sha256, ++version, async function* (start) {
        for (let i = start; i < content.length; i += SLICE) yield content.subarray(i, i + SLICE);
      }));
      return { sha256, etag: files.get(path)!.etag };
    },
    async putFile(path, file) {
      const hash = createHash("sha256");
      for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
      const sha256 = hash.digest("hex");
      const size = statSync(file).size;
      files.set(path, entry(size, sha256, ++version, (start) => createReadStream(file, { start, highWaterMark: SLICE })));
      return { sha256, etag: files.get(path)!.etag, size };
    },
    redirect: (path, location, status = 302) => void redirects.set(path, { location, status }),
    cue: (path, cue) => void cues.set(path, [...(cues.get(path) ?? []), { times: 1, ...cue }]),
    rate: opts.rate,
    rateFor: new Map(),
    ranges: opts.ranges ?? false,
    noValidators: false,
    stats: { gets: 0, heads: 0, notModified: 0, bytesSent: 0, active: 0, maxActive: 0 },
    gets: (path) => perPath.get(path) ?? 0,
    requests: [],
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const nextCue = (path: string, rangeStart: number): Cue | undefined => {
    const queue = cues.get(path) ?? [];
    const i = queue.findIndex((c) => c.rangeStart === undefined || c.rangeStart === rangeStart);
    const c = queue[i];
    if (c && --c.times! <= 0) queue.splice(i, 1);
    return c;
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!;
    const isGet = req.method === "GET";
    if (isGet) {
      origin.stats.gets++;
      perPath.set(path, (perPath.get(path) ?? 0) + 1);
    } else if (req.method === "HEAD") origin.stats.heads++;
    origin.requests.push({ method: req.method ?? "", path, headers: req.headers });
    const redirect = redirects.get(path);
    if (redirect) return void res.writeHead(redirect.status, { location: redirect.location, "content-length": 0 }).end();
    const file = files.get(path);
    const range = file && origin.ranges ? pickRange(req, file, origin.noValidators) : null;
    const cue = isGet ? nextCue(path, range ? range[0] : 0) : undefined;
    if (cue?.stallMs && cue.stallAfter === undefined) await sleep(cue.stallMs);
    if (cue?.status) return void res.writeHead(cue.status, { "content-type": "text/plain" }).end(`origin error ${cue.status} (on cue)\n`);
    if (!file) return void res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    const validators = origin.noValidators ? {} : { etag: file.etag, "last-modified": file.lastModified };
    if (fresh(req, file)) {
      origin.stats.notModified++;
      return void res.writeHead(304, validators).end();
    }
    const [from, to] = range ?? [0, file.size];
    const length = cue?.noLength ? {} : { "content-length": cue?.announce ?? to - from };
    const common = { ...validators, ...length, "content-type": "application/octet-stream", "accept-ranges": origin.ranges ? "bytes" : "none" };
    if (range) res.writeHead(206, { ...common, "content-range": `bytes ${from}-${to - 1}/${file.size}` });
    else res.writeHead(200, common);
    if (!isGet) return void res.end();
    origin.stats.maxActive = Math.max(origin.stats.maxActive, ++origin.stats.active);
    try {
      await send(res, file, from, to, cue, origin.rateFor.get(path) ?? origin.rate);
    } finally {
      origin.stats.active--;
    }
  }

  async function send(res: ServerResponse, file: Entry, from: number, to: number, cue: Cue | undefined, rate: number | undefined): Promise<void> {
    const start = Date.now();
    let sent = 0;
    const size = to - from;
    const stop = Math.min(size, cue?.resetAfter ?? cue?.truncateAfter ?? cue?.stallAfter ?? Infinity);
    for await (const chunk of file.open(from)) {
      let buf = chunk;
      if (cue?.corrupt && sent === 0 && buf.length > 0) buf = Buffer.concat([Buffer.from([buf[0]! ^ 0xff]), buf.subarray(1)]);
      if (sent + buf.length > stop) buf = buf.subarray(0, stop - sent);
      if (rate) {
        const due = start + ((sent + buf.length) / rate) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      if (res.destroyed) return;
      const ok = res.write(buf);
      sent += buf.length;
      origin.stats.bytesSent += buf.length;
      if (!ok) await drained(res);
      if (sent >= stop) break;
    }
    if (sent < size && cue?.resetAfter !== undefined) return void res.socket?.resetAndDestroy();
    if (sent < size && cue?.stallAfter !== undefined) return void (await sleep(cue.stallMs ?? 3_600_000), res.destroy());
    if (sent < size || (cue?.announce ?? 0) > sent) return void res.socket?.end();
    res.end();
  }

  const host = opts.host ?? "127.0.0.1";
  server.listen(0, host);
  await once(server, "listening");
  origin.port = (server.address() as AddressInfo).port;
  return origin;
}

/** Wait for `drain` (or the end of the connection), leaving no listener behind. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

function sha(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function entry(size: number, sha256: string, version: number, open: (start: number) => AsyncIterable<Buffer>): Entry {
  // Each version one second apart, so Last-Modified changes with every put.
  const lastModified = new Date(Math.floor(Date.now() / 1000) * 1000 + version * 1000).toUTCString();
  return { size, sha256, etag: `"v${version}-${sha256.slice(0, 16)}"`, lastModified, open };
}

/** The single range `Range` asks for ([start, end) clipped to the file), or null: no, several or unsatisfiable ranges, or an If-Range that does not match. */
function pickRange(req: IncomingMessage, file: Entry, noValidators: boolean): [number, number] | null {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
  if (!m) return null;
  const ifRange = req.headers["if-range"];
  if (ifRange !== undefined && (noValidators || (ifRange !== file.etag && ifRange !== file.lastModified))) return null;
  const start = Number(m[1]);
  const end = m[2] === "" ? file.size : Math.min(file.size, Number(m[2]) + 1);
  return start < file.size && end > start ? [start, end] : null;
}

function fresh(req: IncomingMessage, file: Entry): boolean {
  const inm = req.headers["if-none-match"];
  if (inm !== undefined) return inm.split(",").some((t) => t.trim() === file.etag || t.trim() === "*");
  const ims = Date.parse(req.headers["if-modified-since"] ?? "");
  return !Number.isNaN(ims) && Date.parse(file.lastModified) <= ims;
}

/** Deterministic pseudo-random bytes (xorshift), so tests can make large distinct files cheaply. */
export function pseudoRandom(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  for (let i = size - (size % 4); i < size; i++) buf[i] = i & 0xff;
  return buf;
}

export function sha256Hex(data: Buffer): string {
  return sha(data);
}

export interface Fetched {
  status: number;
  headers: IncomingMessage["headers"];
  body: Buffer;
  /** False when the connection was cut before the body ended (a broken chunked stream). */
  complete: boolean;
}

/** A raw HTTP request (the path is sent exactly as given: no `..` normalization). */
export function fetchRaw(url: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Fetched> {
  const u = new URL(url);
  const rawPath = url.slice(url.indexOf("/", u.protocol.length + 2));
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: rawPath, method: init.method ?? "GET", headers: init.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      const done = (complete: boolean) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete });
      res.on("end", () => done(res.complete));
      res.on("error", () => done(false));
    });
    req.on("error", reject);
    req.end();
  });
}
