// Real forward proxies for tests, on loopback, each with its own config and log in a
// temp dir, started by the test and stopped in afterAll: Debian's tinyproxy (its log's
// "Request (file descriptor N): CONNECT 127.0.0.1:4443 HTTP/1.1" lines) and squid (its
// access log's "TCP_TUNNEL/200 ... CONNECT 127.0.0.1:4443" lines). What a proxy logged
// it was asked for proves a fetch went through it. Also what tests put around them: an
// https origin, a "proxy" that never answers, and the origin client's settings and calls.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { createServer, connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { TLSSocket } from "node:tls";
import { generateBundle, type CertBundle } from "../../src/certs/generate.js";
import { CacheError } from "../../src/cache/errors.js";
import { originGet, type OriginSettings, type ResolvedAddress } from "../../src/cache/origin.js";
import type { ProxyEntry } from "../../src/policy/proxies.js";

export interface Proxy {
  /** http://127.0.0.1:port */
  url: string;
  port: number;
  /** What the proxy logged it was asked for, in order ("CONNECT 127.0.0.1:4443", "GET http://..."). */
  requests(): string[];
  /** Client connections the proxy accepted so far (tinyproxy only; squid logs requests, not connections). */
  connections(): number;
  close(): Promise<void>;
}

export interface ProxyOptions {
  /** Ports CONNECT may reach (tinyproxy: ConnectPort, default any; squid: SSL_ports, default 443 only). */
  connectPorts?: number[];
  /** Require these credentials (tinyproxy: BasicAuth; squid: basic_ncsa_auth): everyone else gets 407. */
  basicAuth?: { user: string; password: string };
}

interface Flavour {
  pkg: string;
  binary: string;
  args(conf: string): string[];
  config(o: ProxyOptions & { port: number; dir: string }): string[];
  /** Request lines from the log's text. */
  requests(log: string): string[];
  connections(log: string): number;
}

const TINYPROXY: Flavour = {
  pkg: "tinyproxy",
  binary: "tinyproxy",
  args: (conf) => ["-d", "-c", conf],
  config: (o) => [
    `Port ${o.port}`,
    "Listen 127.0.0.1",
    "Timeout 30",
    `LogFile "${join(o.dir, "proxy.log")}"`,
    "LogLevel Connect",
    "MaxClients 50",
    "Allow 127.0.0.1",
    ...(o.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
    ...(o.basicAuth ? [`BasicAuth ${o.basicAuth.user} ${o.basicAuth.password}`] : []),
  ],
  requests: (log) => matches(log, /Request \(file descriptor \d+\): (.*?)(?: HTTP\/1\.[01])?$/),
  // Our readiness probe is a connection too; count it out.
  connections: (log) => matches(log, /Connect \(file descriptor \d+\): (.*)$/).length - 1,
};

const SQUID: Flavour = {
  pkg: "squid",
  binary: "/usr/sbin/squid",
  args: (conf) => ["-N", "-f", conf],
  config: (o) => [
    `http_port 127.0.0.1:${o.port}`,
    `pid_filename ${join(o.dir, "squid.pid")}`,
    `access_log stdio:${join(o.dir, "proxy.log")}`,
    `cache_log ${join(o.dir, "cache.log")}`,
    "cache_store_log none",
    `coredump_dir ${o.dir}`,
    "pinger_enable off",
    "visible_hostname cache-io-test",
    "shutdown_lifetime 0 seconds",
    "cache deny all",
    // squid's own default: CONNECT only to 443 (SSL_ports)
    `acl SSL_ports port ${[443, ...(o.connectPorts ?? [])].join(" ")}`,
    "acl CONNECT method CONNECT",
    "http_access deny CONNECT !SSL_ports",
    "acl loopback src 127.0.0.0/8",
    ...(o.basicAuth
      ? [`auth_param basic program /usr/lib/squid/basic_ncsa_auth ${join(o.dir, "passwd")}`, "acl users proxy_auth REQUIRED", "http_access deny !users"]
      : []),
    "http_access allow loopback",
    "http_access deny all",
  ],
  // "<time> <elapsed> <client> TCP_TUNNEL/200 <bytes> CONNECT 127.0.0.1:4443 - HIER_DIRECT/... -"
  requests: (log) => matches(log, /^\S+\s+\d+ \S+ \S+ \d+ ([A-Z]+ \S+)/),
  connections: () => {
    throw new Error("squid logs requests, not connections: use requests()");
  },
};

function matches(text: string, re: RegExp): string[] {
  return text.split("\n").flatMap((l) => re.exec(l)?.slice(1, 2) ?? []);
}

class NotInstalled extends Error {}

/** Start tinyproxy on 127.0.0.1. */
export function startProxy(opts: ProxyOptions = {}): Promise<Proxy> {
  return start(TINYPROXY, opts);
}

/** Start squid on 127.0.0.1 (its log lines come when a request ends: poll them). */
export function startSquid(opts: ProxyOptions = {}): Promise<Proxy> {
  return start(SQUID, opts);
}

/** A few ports are tried if one is taken between our probe and the proxy's bind. */
async function start(f: Flavour, opts: ProxyOptions): Promise<Proxy> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOnce(f, opts);
    } catch (err) {
      if (attempt >= 3 || err instanceof NotInstalled) throw err;
    }
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

async function startOnce(f: Flavour, opts: ProxyOptions): Promise<Proxy> {
  const dir = mkdtempSync(join(tmpdir(), `cache-io-${f.pkg}-`));
  chmodSync(dir, 0o777); // squid started as root writes its logs as user proxy
  const port = await freePort();
  const conf = join(dir, "proxy.conf");
  writeFileSync(conf, f.config({ ...opts, port, dir }).join("\n") + "\n");
  if (opts.basicAuth) writeFileSync(join(dir, "passwd"), `${opts.basicAuth.user}:${await apr1(opts.basicAuth.password)}\n`, { mode: 0o644 });
  const child = spawn(f.binary, f.args(conf), { stdio: "ignore" });
  let missing = false;
  const exited = new Promise<void>((r) => {
    child.once("exit", () => r());
    child.once("error", (err: NodeJS.ErrnoException) => {
      missing = err.code === "ENOENT";
      r();
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && !missing) {
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(5_000).then(() => child.kill("SIGKILL"))]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const log = () => {
    try {
      return readFileSync(join(dir, "proxy.log"), "utf8");
    } catch {
      return "";
    }
  };
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null || missing) break;
    if (await accepts(port)) {
      return { url: `http://127.0.0.1:${port}`, port, requests: () => f.requests(log()), connections: () => f.connections(log()), close: stop };
    }
    await sleep(50);
  }
  await stop();
  if (missing) throw new NotInstalled(`${f.binary} is not installed: these tests need the Debian package ${f.pkg} (apt-get install ${f.pkg})`);
  throw new Error(`${f.pkg} did not start on 127.0.0.1:${port}`);
}

/** An htpasswd line's hash for squid's basic_ncsa_auth (openssl passwd -apr1). */
async function apr1(password: string): Promise<string> {
  const child = spawn("openssl", ["passwd", "-apr1", "-stdin"], { stdio: ["pipe", "pipe", "ignore"] });
  child.stdin.end(password);
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  await once(child, "close");
  return out.trim();
}

export interface TlsOrigin {
  port: number;
  bundle: CertBundle;
  /** Host header and SNI of each request, in order. */
  seen: { host: string; servername: string }[];
  close(): void;
}

/** An https origin on 127.0.0.1 with a certificate for `names`, answering every GET with `body`. */
export async function startTlsOrigin(names: string[], body = "secret bytes\n"): Promise<TlsOrigin> {
  const bundle = await generateBundle({ dnsNames: names });
  const seen: TlsOrigin["seen"] = [];
  const server: HttpsServer = createHttpsServer({ key: bundle.key, cert: bundle.cert }, (req, res) => {
    seen.push({ host: req.headers.host ?? "", servername: String((req.socket as TLSSocket).servername) });
    res.writeHead(200, { "content-type": "text/plain" }).end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as { port: number }).port,
    bundle,
    seen,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** A "proxy" on loopback that accepts connections, reads what it is sent and never answers. */
export async function startSilentProxy(): Promise<{ url: string; sockets: Socket[]; close(): void }> {
  const sockets: Socket[] = [];
  const server = createServer((sock) => {
    sockets.push(sock);
    sock.resume(); // reading, it sees when the client goes
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    sockets,
    close: () => {
      for (const sock of sockets) sock.destroy();
      server.close();
    },
  };
}

/** A loopback port nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  return freePort();
}

/** Origin settings for names that resolve as `names` says, loopback allowed, `ca` trusted. */
export function proxiedSettings(base: { names: Record<string, string>; ca: string }, proxies: ProxyEntry[], more: Partial<OriginSettings> = {}): OriginSettings {
  const resolve = async (host: string): Promise<ResolvedAddress[]> => {
    const address = base.names[host];
    if (!address) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return [{ address, family: address.includes(":") ? 6 : 4 }];
  };
  return { rules: { allow: ["*"], schemes: ["https", "http"], allowPrivate: ["127.0.0.1"] }, connectTimeout: 5_000, idleTimeout: 10_000, resolve, ca: base.ca, proxies, ...more };
}

/** GET through the origin client, the whole body read. */
export async function fetchVia(url: string, s: OriginSettings): Promise<{ status: number; body: Buffer; url: string }> {
  const r = await originGet(url, s, {}, AbortSignal.timeout(20_000));
  const chunks: Buffer[] = [];
  for await (const c of r.res) chunks.push(c as Buffer);
  return { status: r.res.statusCode ?? 0, body: Buffer.concat(chunks), url: r.url };
}

/** The CacheError `p` fails with; throws when it succeeds or fails with anything else. */
export async function failureOf(p: Promise<unknown>): Promise<CacheError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof CacheError)) throw new Error(`expected a CacheError, got ${err === undefined ? "success" : String(err)}`);
  return err;
}
