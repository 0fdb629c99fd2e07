// Origin fetches through a forward proxy (cache.proxies, docs/PROXIES.md): which entry
// applies to a host (the most specific pattern), and the CONNECT tunnel to the origin's
// *checked* address (never its name, so the proxy's own DNS answer cannot take a fetch
// to a forbidden address), with TLS to the origin's name inside the tunnel.
import { STATUS_CODES } from "node:http";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import ipaddr from "ipaddr.js";
import { NODE_IP, type ProxyEntry } from "../policy/proxies.js";
import { secretFiles, SecretMaterialError, type SecretFiles } from "./credentials/secret-files.js";
import { CacheError } from "./errors.js";

/** A proxy that applies to one request: its entry and where it listens. */
export interface ProxyRoute {
  entry: ProxyEntry;
  host: string;
  port: number;
}

/** An address the origin rules allow, and the origin's port. */
export interface CheckedTarget {
  address: string;
  port: number;
}

/** Bound on a proxy's answer to CONNECT (status line and headers). */
const MAX_CONNECT_HEAD = 16 * 1024;

function sameAddress(a: string, b: string): boolean {
  if (!isIP(a) || !isIP(b)) return false;
  try {
    return ipaddr.parse(a).toNormalizedString() === ipaddr.parse(b).toNormalizedString();
  } catch {
    return false;
  }
}

function bare(host: string): string {
  const h = host.toLowerCase().replace(/\.+$/, "");
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

/** How specific a pattern matching `host` is (higher wins), or -1 when it does not match. */
export function specificity(host: string, pattern: string): number {
  const p = bare(pattern);
  if (p === "*") return 0;
  if (p.startsWith("*.")) {
    const suffix = p.slice(1);
    return host.endsWith(suffix) && host.length > suffix.length ? suffix.split(".").length - 1 : -1;
  }
  // Exact names and addresses beat every wildcard (a label count never reaches 1000).
  return p === host || sameAddress(p, host) ? 1000 : -1;
}

/**
 * The proxy for fetches of `hostname`, or undefined when they go direct (no entry, or a
 * `direct` one). `nodeIp` replaces $(NODE_IP) in its URL (default: the NODE_IP
 * environment variable, which the DaemonSet sets from status.hostIP).
 */
export function chooseProxy(hostname: string, entries: readonly ProxyEntry[] | undefined, nodeIp?: string): ProxyRoute | undefined {
  if (!entries?.length) return undefined;
  const host = bare(hostname);
  let best: ProxyEntry | undefined;
  let score = -1;
  for (const e of entries) {
    const s = specificity(host, e.host);
    if (s > score) [best, score] = [e, s];
  }
  if (!best || best.url === "direct") return undefined;
  const u = new URL(best.url.includes(NODE_IP) ? best.url.replace(NODE_IP, nodeAuthority(best, nodeIp ?? process.env.NODE_IP)) : best.url);
  return { entry: best, host: bare(u.hostname), port: Number(u.port) };
}

function nodeAuthority(entry: ProxyEntry, nodeIp: string | undefined): string {
  if (!nodeIp || !isIP(nodeIp)) {
    const got = nodeIp ? `"${nodeIp}", not an IP address` : "not set";
    throw new CacheError(500, "policy", `cache.proxies entry "${entry.host}" names ${NODE_IP}, but NODE_IP is ${got}: run the node cache with NODE_IP from the downward API (fieldRef status.hostIP)`);
  }
  return isIP(nodeIp) === 6 ? `[${nodeIp}]` : nodeIp;
}

/** `host:port` as a CONNECT target or URL authority (IPv6 in brackets). */
export function authority(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** One reader per entry (it caches the Secret until it changes); a reloaded policy's entries get new ones. */
const readers = new WeakMap<ProxyEntry, SecretFiles>();

/** The Proxy-Authorization value of an entry with a secretDir, read from the mounted Secret. */
export async function proxyAuthorization(entry: ProxyEntry): Promise<string | undefined> {
  const dir = entry.secretDir;
  if (!dir) return undefined;
  let files = readers.get(entry);
  if (!files) readers.set(entry, (files = secretFiles(`of cache.proxies entry "${entry.host}"`, dir, ["username", "password"])));
  const { username, password } = await files.read();
  if (username!.includes(":")) throw new SecretMaterialError(`proxy credentials in ${dir}/username contain ":", which basic auth cannot carry`);
  return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}

function named(route: ProxyRoute): string {
  return `proxy ${route.entry.url} (cache.proxies entry "${route.entry.host}")`;
}

/** The error for a proxy's non-2xx answer; 407 (401 from tinyproxy: wrong credentials) and 403 are the platform's to fix, 5xx may pass. */
export function proxyStatusError(route: ProxyRoute, status: number, what: string): CacheError {
  if (status === 407 || status === 401) {
    const fix = route.entry.secretDir
      ? `it did not accept the username and password in ${route.entry.secretDir}: check that Secret`
      : "the proxy wants credentials: give the entry a secretDir (a Secret with username and password), or let the proxy admit the node cache by its address";
    return new CacheError(502, "policy", `${named(route)} answered ${status} ${STATUS_CODES[status]} to ${what}: ${fix}`);
  }
  if (status === 403) {
    return new CacheError(502, "policy", `${named(route)} refused ${what} (403 Forbidden): allow it in the proxy's configuration (squid: http_access and the CONNECT port ACLs; tinyproxy: Allow, ConnectPort) or change cache.proxies`);
  }
  const transient = status >= 500 || status === 408 || status === 429;
  return new CacheError(502, "network", `${named(route)} answered ${status} to ${what}${transient ? " (it could not reach the origin; retried)" : ""}`, transient);
}

/** Connect to the proxy, ask it for a tunnel to `target`; resolves with the open tunnel. */
export async function openTunnel(route: ProxyRoute, target: CheckedTarget, signal: AbortSignal): Promise<Socket> {
  const to = authority(target.address, target.port);
  const auth = await proxyAuthorization(route.entry);
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: route.host, port: route.port });
    let head = Buffer.alloc(0);
    const done = (err: Error | null) => {
      signal.removeEventListener("abort", onAbort);
      sock.off("data", onData);
      sock.off("error", onError);
      sock.off("end", onEnd);
      if (err) {
        sock.destroy();
        reject(err);
      } else {
        // Until the request takes the socket (next tick), an error must not go unheard.
        sock.on("error", () => undefined);
        resolve(sock);
      }
    };
    const onAbort = () => done(new CacheError(504, "timeout", `the tunnel through ${named(route)} to ${to} was abandoned`));
    const onError = (err: NodeJS.ErrnoException) =>
      done(new CacheError(502, "network", `cannot reach ${named(route)}: ${err.message}${err.code ? ` (${err.code})` : ""}; check that the proxy runs, or fix cache.proxies`, true));
    const onEnd = () => done(new CacheError(502, "network", `${named(route)} closed the connection before answering CONNECT ${to}`, true));
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > MAX_CONNECT_HEAD) done(new CacheError(502, "network", `${named(route)} sent more than ${MAX_CONNECT_HEAD} bytes of headers to CONNECT ${to}`, true));
        return;
      }
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString("latin1"))?.[1] ?? 0);
      if (status < 200 || status > 299) return done(proxyStatusError(route, status, `CONNECT ${to}`));
      const rest = head.subarray(end + 4);
      if (rest.length) sock.unshift(rest);
      done(null);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    sock.on("data", onData);
    sock.on("error", onError);
    sock.on("end", onEnd);
    sock.write(`CONNECT ${to} HTTP/1.1\r\nHost: ${to}\r\nUser-Agent: cache-io\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ""}\r\n`);
  });
}

export interface TunnelOptions {
  /** The origin's name (TLS servername and certificate check) and whether it is https. */
  hostname: string;
  tls: boolean;
  /** Trust for origins' certificates (default: Node's roots). */
  ca?: string | undefined;
  signal: AbortSignal;
}

/** A tunnel to `target`, with TLS to `hostname` inside it for https origins. */
export async function tunnelTo(route: ProxyRoute, target: CheckedTarget, o: TunnelOptions): Promise<Socket> {
  const sock = await openTunnel(route, target, o.signal);
  if (!o.tls) return sock;
  const name = bare(o.hostname);
  return new Promise((resolve, reject) => {
    const t = tlsConnect({ socket: sock, host: name, ...(isIP(name) ? {} : { servername: name }), ...(o.ca ? { ca: o.ca } : {}) });
    const onAbort = () => t.destroy(new CacheError(504, "timeout", `the TLS handshake with ${name} through ${named(route)} was abandoned`));
    let settled = false;
    o.signal.addEventListener("abort", onAbort, { once: true });
    t.once("secureConnect", () => {
      settled = true;
      o.signal.removeEventListener("abort", onAbort);
      resolve(t);
    });
    // Stays on: until the request takes the socket (next tick), an error must not go unheard.
    t.on("error", (err) => {
      if (settled) return;
      settled = true;
      o.signal.removeEventListener("abort", onAbort);
      sock.destroy();
      reject(err);
    });
  });
}
