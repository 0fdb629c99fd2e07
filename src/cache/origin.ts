// The SSRF-safe origin client: node:http(s) whose `lookup` refuses forbidden resolved
// addresses (so there is no check-then-connect race), redirects followed by hand and
// re-checked at every hop, connect and idle timeouts. A hop whose host has a forward
// proxy (cache.proxies) goes through it to the checked address (src/cache/proxy.ts).
// Fills (fillGet) send a direct plain-http hop on a raw socket (raw-origin.ts: fewer
// copies and no garbage per read); every rule above is the same for both transports.
import { lookup as dnsLookup } from "node:dns/promises";
import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import type { ProxyEntry } from "../policy/proxies.js";
import { checkOriginUrl, forbiddenAddress, type OriginRules } from "../shared/origin.js";
import { CacheError, refused } from "./errors.js";
import { authority, chooseProxy, proxyAuthorization, proxyStatusError, tunnelTo, type CheckedTarget, type ProxyRoute } from "./proxy.js";
import { redact } from "./redact.js";
import { HeadError, RequestHeadError } from "./http1.js";
import { rawGet, RawResponse } from "./raw-origin.js";

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
  /** Forward proxies (cache.proxies); each hop uses the entry of its own host. Default: none. */
  proxies?: readonly ProxyEntry[];
  /** Trust for origins' TLS certificates (PEM); default: Node's bundled roots. */
  ca?: string;
  /** This node's IP, for $(NODE_IP) in cache.proxies URLs; default: the NODE_IP environment variable. */
  nodeIp?: string;
}

export interface OriginRequest {
  url: URL;
  method: "GET" | "HEAD";
  headers: Record<string, string>;
}

/** What the fills use of a response, whichever transport read it. */
export interface ResponseLike {
  readonly statusCode?: number | undefined;
  readonly headers: IncomingHttpHeaders;
  /** Throw the body away. */
  resume(): unknown;
  destroy(err?: Error): unknown;
}

/** A fill's response: node:http's, or the raw transport's (a direct plain-http hop). */
export type FillResponse = IncomingMessage | RawResponse;

export interface OriginResponse<R extends ResponseLike = IncomingMessage> {
  res: R;
  /** The URL that answered (after redirects). */
  url: string;
  /** Why the connection was cut by us (idle timeout) while the body was read, if it was. */
  failure(): CacheError | undefined;
}

const defaultResolve: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

/** GET `start`, following up to MAX_REDIRECTS allowed redirects; resolves on the final response's headers. */
export function originGet(start: string, s: OriginSettings, headers: Record<string, string>, signal: AbortSignal): Promise<OriginResponse> {
  return hops(start, s, headers, signal, requestOnce);
}

/** originGet for a fill's body (fills/receive.ts reads both kinds): a direct plain-http hop goes on a raw socket. */
export function fillGet(start: string, s: OriginSettings, headers: Record<string, string>, signal: AbortSignal): Promise<OriginResponse<FillResponse>> {
  return hops<FillResponse>(start, s, headers, signal, (url, s2, h, sig, via) => (via || url.protocol !== "http:" ? requestOnce(url, s2, h, sig, via) : rawOnce(url, s2, h, sig)));
}

type Transport<R extends ResponseLike> = (url: URL, s: OriginSettings, headers: Record<string, string>, signal: AbortSignal, via?: Via) => Promise<OriginResponse<R>>;

async function hops<R extends ResponseLike>(start: string, s: OriginSettings, headers: Record<string, string>, signal: AbortSignal, send: Transport<R>): Promise<OriginResponse<R>> {
  let url = new URL(start);
  for (let hop = 0; ; hop++) {
    const why = checkOriginUrl(url, s.rules);
    if (why) {
      s.observe?.("refused");
      throw refused(hop === 0 ? `origin ${redact(url)} refused: ${why}` : `redirect to ${redact(url)} refused: ${why}`);
    }
    const signed = s.authorize ? await s.authorize({ url, method: "GET", headers: { ...headers } }) : { url, headers };
    if (signed.url.origin !== url.origin) throw new CacheError(500, "policy", `a credential rewrote ${redact(url)} to another origin; refusing`);
    const proxy = chooseProxy(url.hostname, s.proxies, s.nodeIp);
    const via = proxy && (await route(url, s, proxy));
    const r = await send(signed.url, s, signed.headers, signal, via);
    const location = r.res.headers.location;
    if (!REDIRECT_STATUS.has(r.res.statusCode ?? 0) || !location) return r;
    r.res.resume();
    if (hop >= MAX_REDIRECTS) {
      throw new CacheError(502, "origin_status", `origin redirected more than ${MAX_REDIRECTS} times (last hop: ${redact(url)}); give the final URL in cache.io/files`);
    }
    url = new URL(location, url);
  }
}

/** A hop through a proxy: a CONNECT tunnel, or (plain http, `http: absolute`) an absolute-form request to the checked address. */
interface Via {
  proxy: ProxyRoute;
  absolute: CheckedTarget | undefined;
  /** Proxy-Authorization of an absolute-form request (a tunnel sends it with CONNECT). */
  authorization: string | undefined;
}

async function route(url: URL, s: OriginSettings, proxy: ProxyRoute): Promise<Via> {
  if (url.protocol !== "http:" || proxy.entry.http !== "absolute") return { proxy, absolute: undefined, authorization: undefined };
  const [absolute, authorization] = await observed(Promise.all([checkedTarget(url, s), proxyAuthorization(proxy.entry)]), url, s);
  return { proxy, absolute, authorization };
}

function requestOnce(url: URL, s: OriginSettings, headers: Record<string, string>, signal: AbortSignal, via?: Via): Promise<OriginResponse> {
  return new Promise((resolve, reject) => {
    let failure: CacheError | undefined;
    // A request whose tunnel is still being set up has no socket to destroy: abandon the tunnel too.
    const leg = via && new AbortController();
    const fail = (err: CacheError) => {
      failure ??= err;
      leg?.abort();
      req.destroy(err);
    };
    const mod = url.protocol === "https:" ? https : http;
    const req: http.ClientRequest = mod.request(url, {
      method: "GET",
      signal,
      ...(via ? proxied(url, s, via, AbortSignal.any([signal, leg!.signal])) : { agent: false, lookup: safeLookup(s) }),
      ...(s.ca ? { ca: s.ca } : {}),
      headers: {
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",
        // An absolute-form request goes to the proxy's address: name the origin (the proxy may rewrite it; docs/PROXIES.md).
        ...(via?.absolute ? { host: url.host } : {}),
        ...(via?.authorization ? { "proxy-authorization": via.authorization } : {}),
        ...headers,
      },
    });
    const connectTimer = setTimeout(() => fail(connectTimedOut(url, s, via)), s.connectTimeout);
    // A tunnel comes connected (its connect timeout covered the proxy leg); a direct socket is still connecting.
    req.on("socket", (sock) => (sock.connecting ? sock.once("connect", () => clearTimeout(connectTimer)) : clearTimeout(connectTimer)));
    req.setTimeout(s.idleTimeout, () => fail(idleTimedOut(url, s)));
    req.on("response", (res) => {
      clearTimeout(connectTimer);
      s.observe?.(resultOf(res.statusCode ?? 0));
      if (via?.absolute && res.statusCode === 407) {
        res.resume();
        return reject(proxyStatusError(via.proxy, 407, `GET ${redact(url)}`));
      }
      resolve({ res, url: url.href, failure: () => failure });
    });
    req.on("error", (err) => {
      clearTimeout(connectTimer);
      const e = failure ?? classify(err, url);
      observeFailure(s, e);
      reject(e);
    });
    req.end();
  });
}

/** One hop on a raw socket; a body framing the raw reader does not read (chunked) is asked for again with node:http. */
async function rawOnce(url: URL, s: OriginSettings, headers: Record<string, string>, signal: AbortSignal): Promise<OriginResponse<FillResponse>> {
  const sent: Record<string, string> = { "user-agent": USER_AGENT, "accept-encoding": "identity" };
  for (const [k, v] of Object.entries(headers)) sent[k.toLowerCase()] = v;
  let r;
  try {
    r = await rawGet(url, sent, {
      lookup: safeLookup(s), connectTimeout: s.connectTimeout, idleTimeout: s.idleTimeout, signal,
      connectTimedOut: () => connectTimedOut(url, s), idleTimedOut: () => idleTimedOut(url, s),
    });
  } catch (err) {
    const e = rawError(err as Error, url);
    observeFailure(s, e);
    throw e;
  }
  if (!(r instanceof RawResponse)) {
    s.observe?.(resultOf(r.status));
    return requestOnce(url, s, headers, signal);
  }
  s.observe?.(resultOf(r.statusCode));
  const res = r;
  return { res, url: url.href, failure: () => res.failure() as CacheError | undefined };
}

function rawError(err: Error, url: URL): CacheError {
  if (err instanceof HeadError) return new CacheError(502, "origin_status", `origin ${url.host} broke HTTP/1.1 answering ${redact(url)}: ${err.message}`);
  if (err instanceof RequestHeadError) return new CacheError(500, "policy", `cannot send the request for ${redact(url)}: ${err.message} (check the credential's headers in the policy)`);
  return classify(err, url);
}

function observeFailure(s: OriginSettings, e: CacheError): void {
  s.observe?.(e.reason === "timeout" ? "timeout" : e.reason === "policy" ? "refused" : "network_error");
}

function connectTimedOut(url: URL, s: OriginSettings, via?: Via): CacheError {
  const what = via ? `origin ${url.host} through proxy ${via.proxy.entry.url} (cache.proxies)` : `origin ${url.host}`;
  return new CacheError(504, "timeout", `${what} did not accept a connection within ${s.connectTimeout} ms (cache.connectTimeout)`, true);
}

function idleTimedOut(url: URL, s: OriginSettings): CacheError {
  return new CacheError(504, "timeout", `origin ${url.host} sent nothing for ${s.idleTimeout} ms (cache.idleTimeout)`, true);
}

/** Request options for a hop through a proxy; the proxy's own address is the policy's, never checked against the origin rules. */
function proxied(url: URL, s: OriginSettings, via: Via, signal: AbortSignal): http.RequestOptions {
  const { proxy, absolute } = via;
  if (absolute) {
    return { agent: false, hostname: proxy.host, port: proxy.port, path: `http://${authority(absolute.address, absolute.port)}${url.pathname}${url.search}` };
  }
  return {
    createConnection: (_opts, done) => {
      checkedTarget(url, s)
        .then((target) => tunnelTo(proxy, target, { hostname: url.hostname, tls: url.protocol === "https:", ca: s.ca, signal }))
        .then(
          (sock) => done(null, sock),
          (err: Error) => done(err, undefined as never),
        );
      return undefined;
    },
  };
}

/** A step before the request that can refuse it, counted like a refused connection. */
async function observed<T>(step: Promise<T>, url: URL, s: OriginSettings): Promise<T> {
  try {
    return await step;
  } catch (err) {
    const e = classify(err as Error, url);
    s.observe?.(e.reason === "policy" ? "refused" : "network_error");
    throw e;
  }
}

/** Every address of `hostname`, failing when any of them is forbidden. */
async function checkedAddresses(hostname: string, s: OriginSettings): Promise<ResolvedAddress[]> {
  const addrs = await (s.resolve ?? defaultResolve)(hostname);
  if (!addrs[0]) throw new CacheError(502, "network", `origin host "${hostname}" has no addresses`);
  for (const a of addrs) {
    const why = forbiddenAddress(a.address, s.rules, hostname);
    if (why) throw refused(`origin host "${hostname}" resolves to ${a.address}: ${why}`);
  }
  return addrs;
}

/** The address a proxy is told to connect to: a literal (checkOriginUrl judged it) or the name's first checked address. */
async function checkedTarget(url: URL, s: OriginSettings): Promise<CheckedTarget> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
  if (isIP(host)) return { address: host, port };
  return { address: (await checkedAddresses(host, s))[0]!.address, port };
}

/** A `lookup` for net.connect that fails when any address of the name is forbidden. */
function safeLookup(s: OriginSettings): LookupFunction {
  return (hostname, options, callback) => {
    checkedAddresses(hostname, s).then(
      (addrs) => {
        const first = addrs[0]!;
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
  if (status >= 200 && status < 300) return "ok";
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
