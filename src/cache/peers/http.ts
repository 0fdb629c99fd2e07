// One GET to a peer's port and what its answer says: no redirects, no SSRF rules (peer
// addresses come from the API, not from users), connect and idle timeouts; an error
// answer read to a bounded message with its x-cache-io-error reason and origin status.
import http, { type IncomingMessage } from "node:http";
import { CacheError } from "../errors.js";
import type { Peer } from "./types.js";

/** A peer failed for `reason`: the next one is asked. */
export class PeerFailed extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

export type PeerResponse = { res: IncomingMessage; failure(): Error | undefined };

export interface GetOptions {
  idleTimeout: number;
  connectTimeout: number;
  signal: AbortSignal;
}

/** GET `path` from `peer` with `headers`. */
export function peerGet(peer: Peer, path: string, headers: Record<string, string>, o: GetOptions): Promise<PeerResponse> {
  return new Promise((resolve, reject) => {
    let failure: Error | undefined;
    const req = http.request({ host: peer.address, port: peer.port, path, method: "GET", agent: false, signal: o.signal, headers: { "user-agent": "cache-io/0.1 (node cache peer)", ...headers } });
    const fail = (err: Error) => {
      failure ??= err;
      req.destroy(err);
    };
    const connectTimer = setTimeout(() => fail(new PeerFailed("connect", `accepted no connection within ${o.connectTimeout} ms (cache.connectTimeout)`)), o.connectTimeout);
    req.on("socket", (sock) => sock.once("connect", () => clearTimeout(connectTimer)));
    req.setTimeout(o.idleTimeout, () => fail(new PeerFailed("idle", `sent nothing for ${o.idleTimeout} ms (cache.peers.idleTimeout)`)));
    req.on("response", (res) => {
      clearTimeout(connectTimer);
      resolve({ res, failure: () => failure });
    });
    req.on("error", (err) => {
      clearTimeout(connectTimer);
      reject(failure ?? err);
    });
    req.end();
  });
}

/** Bytes of a peer's error answer read at most (its message). */
const ERROR_BODY_MAX = 4096;

export interface PeerError {
  reason?: string;
  originStatus?: number;
  message: string;
}

/** What a peer's error answer says: x-cache-io-error, x-cache-io-origin-status and its message (bounded). */
export async function readError(res: IncomingMessage): Promise<PeerError> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res as AsyncIterable<Buffer>) {
      chunks.push(c);
      n += c.length;
      if (n >= ERROR_BODY_MAX) break;
    }
  } catch {
    // the message is a courtesy; the status says enough
  }
  res.destroy();
  const text = Buffer.concat(chunks).subarray(0, ERROR_BODY_MAX).toString("utf8").trim().replace(/^error: /, "");
  const reason = res.headers["x-cache-io-error"];
  const os = Number(res.headers["x-cache-io-origin-status"]);
  return { ...(typeof reason === "string" ? { reason } : {}), ...(Number.isInteger(os) && os > 0 ? { originStatus: os } : {}), message: text || `HTTP ${res.statusCode}` };
}

export function asPeerFailure(err: unknown): PeerFailed {
  if (err instanceof PeerFailed) return err;
  if (err instanceof CacheError) return new PeerFailed(err.reason, err.message);
  const e = err as NodeJS.ErrnoException;
  return new PeerFailed("network", `${e.message}${e.code ? ` (${e.code})` : ""}`);
}
