// The SSRF-safe origin client: node:http(s) whose `lookup` refuses forbidden resolved
// addresses (so there is no check-then-connect race), redirects followed by hand and
// re-checked at every hop, connect and idle timeouts.
import { lookup as dnsLookup } from "node:dns/promises";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { checkOriginUrl, forbiddenAddress, type OriginRules } from "../shared/origin.js";
import { CacheError, refused } from "./errors.js";
import { redact } from "./redact.js";

export const MAX_REDIRECTS = 5;
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
const USER_AGENT = "cache-io/0.1 (node cache)";

export interface ResolvedAddress {
  address: string;
  family: number;
}
/** Name resolution; injectable so tests can make a name resolve to any address. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface OriginSettings {
  rules: OriginRules;
  connectTimeout: number;
  idleTimeout: number;
  resolve?: Resolver;
  /** Called once per HTTP request made (each redirect hop), for the origin_requests metric. */
  observe?: (result: string) => void;
  /**
   * Credentials for one request (called per hop, after the SSRF check): returns the URL and
   * headers to send. A credential applies only to the origins it names, so a redirect to
   * another host gets none. Default: anonymous.
   */
  authorize?: (req: OriginRequest) => Promise<OriginRequest>;
}

export interface OriginRequest {
  url: URL;
  method: "GET" | "HEAD";
  headers: Record<string, string>;
}

export interface OriginResponse {
  res: IncomingMessage;
  /** The URL that answered (after redirects). */
  url: string;
  /** Why the connection was cut by us (idle timeout) while the body was read, if it was. */
  failure(): CacheError | undefined;
}

const defaultResolve: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

/** GET `start`, following up to MAX_REDIRECTS allowed redirects; resolves on the final response's headers. */
export async function originGet(
  start: string,
  s: OriginSettings,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<OriginResponse> {
  let url = new URL(start);
  for (let hop = 0; ; hop++) {
    const why = checkOriginUrl(url, s.rules);
    if (why) {
      s.observe?.("refused");
      throw refused(hop === 0 ? `origin ${redact(url)} refused: ${why}` : `redirect to ${redact(url)} refused: ${why}`);
    }
    const signed = s.authorize ? await s.authorize({ url, method: "GET", headers: { ...headers } }) : { url, headers };
    if (signed.url.origin !== url.origin) throw new CacheError(500, "policy", `a credential rewrote ${redact(url)} to another origin; refusing`);
    const r = await requestOnce(signed.url, s, signed.headers, signal);
    const location = r.res.headers.location;
    if (!REDIRECT_STATUS.has(r.res.statusCode ?? 0) || !location) return r;
    r.res.resume();
    if (hop >= MAX_REDIRECTS) {
      throw new CacheError(502, "origin_status", `origin redirected more than ${MAX_REDIRECTS} times (last hop: ${redact(url)}); give the final URL in cache.io/files`);
    }
    url = new URL(location, url);
  }
}

function requestOnce(url: URL, s: OriginSettings, headers: Record<string, string>, signal: AbortSignal): Promise<OriginResponse> {
  return new Promise((resolve, reject) => {
    let failure: CacheError | undefined;
    const fail = (err: CacheError) => {
      failure ??= err;
      req.destroy(err);
    };
    const mod = url.protocol === "https:" ? https : http;
    const req = mod.request(url, {
      method: "GET",
      agent: false,
      signal,
      lookup: safeLookup(s),
      headers: { "user-agent": USER_AGENT, "accept-encoding": "identity", ...headers },
    });
    const connectTimer = setTimeout(
      () => fail(new CacheError(504, "timeout", `origin ${url.host} did not accept a connection within ${s.connectTimeout} ms (cache.connectTimeout)`, true)),
      s.connectTimeout,
    );
    req.on("socket", (sock) => sock.once("connect", () => clearTimeout(connectTimer)));
    req.setTimeout(s.idleTimeout, () =>
      fail(new CacheError(504, "timeout", `origin ${url.host} sent nothing for ${s.idleTimeout} ms (cache.idleTimeout)`, true)),
    );
    req.on("response", (res) => {
      clearTimeout(connectTimer);
      s.observe?.(resultOf(res.statusCode ?? 0));
      resolve({ res, url: url.href, failure: () => failure });
    });
    req.on("error", (err) => {
      clearTimeout(connectTimer);
      const e = failure ?? classify(err, url);
      s.observe?.(e.reason === "timeout" ? "timeout" : e.reason === "policy" ? "refused" : "network_error");
      reject(e);
    });
    req.end();
  });
}

/** A `lookup` for net.connect that fails when any address of the name is forbidden. */
function safeLookup(s: OriginSettings): LookupFunction {
  const resolve = s.resolve ?? defaultResolve;
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (addrs) => {
        const first = addrs[0];
        if (!first) return callback(new CacheError(502, "network", `origin host "${hostname}" has no addresses`), "", 4);
        for (const a of addrs) {
          const why = forbiddenAddress(a.address, s.rules, hostname);
          if (why) return callback(refused(`origin host "${hostname}" resolves to ${a.address}: ${why}`), "", 4);
        }
        if (options.all) (callback as unknown as (e: null, a: ResolvedAddress[]) => void)(null, addrs);
        else callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, "", 4),
    );
  };
}

const TRANSIENT_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "UND_ERR_SOCKET"]);

function classify(err: Error, url: URL): CacheError {
  if (err instanceof CacheError) return err;
  if (err.name === "AbortError") return new CacheError(504, "timeout", `fetching ${redact(url)} was aborted: ${err.message}`);
  const code = (err as NodeJS.ErrnoException).code ?? "";
  if (code === "ENOTFOUND") return new CacheError(502, "network", `origin host "${url.hostname}" does not resolve (check the URL in cache.io/files)`);
  const transient = TRANSIENT_CODES.has(code) || !code;
  return new CacheError(502, "network", `cannot fetch ${redact(url)}: ${err.message}${code ? ` (${code})` : ""}`, transient);
}

function resultOf(status: number): string {
  if (status === 200) return "ok";
  if (status === 304) return "not_modified";
  if (REDIRECT_STATUS.has(status)) return "redirect";
  return status >= 500 ? "server_error" : "client_error";
}

/** The error for a final response that is not 200 (or 304 when revalidating). */
export function statusError(status: number, url: string): CacheError {
  const text = http.STATUS_CODES[status] ?? "";
  const transient = status >= 500 || status === 408 || status === 429;
  const hint = transient ? "" : ": check the URL in cache.io/files and that the origin serves it";
  const e = new CacheError(502, "origin_status", `origin answered ${status} ${text} for ${redact(url)}${hint}`, transient);
  e.originStatus = status;
  e.originUrl = url;
  return e;
}
