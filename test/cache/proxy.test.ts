// Origin fetches through a real forward proxy (Debian's tinyproxy on loopback): the
// proxy is asked for the origin's *checked address*, never its name; https is TLS to
// the name inside the tunnel; forbidden addresses are refused before the proxy is
// contacted; each redirect hop uses its own host's entry; a proxy that is down, refuses
// CONNECT (403) or wants credentials (407) gives an error naming cache.proxies.
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheError } from "../../src/cache/errors.js";
import { ConnectionPool } from "../../src/cache/fills/connections.js";
import { attempt } from "../../src/cache/fills/download.js";
import { originGet, type OriginSettings, type ResolvedAddress } from "../../src/cache/origin.js";
import type { ProxyEntry } from "../../src/policy/proxies.js";
import { logger } from "../../src/shared/log.js";
import { pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { startProxy, startTlsOrigin, type Proxy, type TlsOrigin } from "../support/proxy.js";
import { eventually } from "../support/tls-client.js";

const NAMES: Record<string, string> = {
  "files.proxied.test": "127.0.0.1",
  "other.proxied.test": "127.0.0.1",
  "secure.proxied.test": "127.0.0.1",
  "wrong.proxied.test": "127.0.0.1",
  "metadata.proxied.test": "169.254.169.254",
  "private.proxied.test": "10.20.30.40",
};
const resolve = async (host: string): Promise<ResolvedAddress[]> => {
  const address = NAMES[host];
  if (!address) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
  return [{ address, family: 4 }];
};

let proxy: Proxy;
let origin: Origin;
let tls: TlsOrigin;
let silent: { server: NetServer; port: number; sockets: Socket[] };

beforeAll(async () => {
  proxy = await startProxy();
  origin = await startOrigin();
  tls = await startTlsOrigin(["secure.proxied.test"]);
  // A "proxy" that accepts connections and never answers.
  const sockets: Socket[] = [];
  const quiet = createNetServer((s) => {
    sockets.push(s);
    s.resume(); // reads (and drops) the CONNECT, so it sees when the client goes
  });
  quiet.listen(0, "127.0.0.1");
  await once(quiet, "listening");
  silent = { server: quiet, port: (quiet.address() as { port: number }).port, sockets };
});

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
  tls?.close();
  for (const s of silent?.sockets ?? []) s.destroy();
  silent?.server.close();
});

function settings(proxies: ProxyEntry[], more: Partial<OriginSettings> = {}): OriginSettings {
  return {
    rules: { allow: ["*"], schemes: ["https", "http"], allowPrivate: ["127.0.0.1"] },
    connectTimeout: 5_000,
    idleTimeout: 10_000,
    resolve,
    ca: tls.bundle.caCert,
    proxies,
    ...more,
  };
}

const via = (host: string, url = proxy.url, http: ProxyEntry["http"] = "connect"): ProxyEntry => ({ host, url, http });

async function get(url: string, s: OriginSettings): Promise<{ status: number; body: Buffer; url: string }> {
  const r = await originGet(url, s, {}, AbortSignal.timeout(20_000));
  const chunks: Buffer[] = [];
  for await (const c of r.res) chunks.push(c as Buffer);
  return { status: r.res.statusCode ?? 0, body: Buffer.concat(chunks), url: r.url };
}

async function failure(p: Promise<unknown>): Promise<CacheError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(CacheError);
  return err as CacheError;
}

const newRequests = (before: number) => proxy.requests().slice(before);

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const s = createNetServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe("through the proxy", () => {
  it("asks for a CONNECT tunnel to the checked address of an http origin, and sends the name as Host inside it", async () => {
    const content = pseudoRandom(300_000, 41);
    origin.put("/plain.bin", content);
    const before = proxy.requests().length;
    const r = await get(`http://files.proxied.test:${origin.port}/plain.bin`, settings([via("*.proxied.test")]));
    expect(r.status).toBe(200);
    expect(r.body.equals(content)).toBe(true);
    expect(newRequests(before)).toEqual([`CONNECT 127.0.0.1:${origin.port}`]);
    expect(origin.requests.at(-1)!.headers.host).toBe(`files.proxied.test:${origin.port}`);
  });

  it("brackets an IPv6 address in CONNECT", async () => {
    const v6 = await startOrigin({ host: "::1" });
    try {
      v6.put("/v6.bin", Buffer.from("over six\n"));
      const before = proxy.requests().length;
      const s = settings([via("*")], { rules: { allow: ["*"], schemes: ["http"], allowPrivate: ["::1"] }, resolve: async () => [{ address: "::1", family: 6 }] });
      const r = await get(`http://six.proxied.test:${v6.port}/v6.bin`, s);
      expect(r.body.toString()).toBe("over six\n");
      expect(newRequests(before)).toEqual([`CONNECT [::1]:${v6.port}`]);
    } finally {
      await v6.close();
    }
  });

  it("speaks TLS to the origin's name inside the tunnel, and verifies its certificate", async () => {
    const before = proxy.requests().length;
    const r = await get(`https://secure.proxied.test:${tls.port}/model.bin`, settings([via("secure.proxied.test")]));
    expect(r.body.toString()).toBe("secret bytes\n");
    expect(newRequests(before)).toEqual([`CONNECT 127.0.0.1:${tls.port}`]);
    expect(tls.seen.at(-1)).toEqual({ host: `secure.proxied.test:${tls.port}`, servername: "secure.proxied.test" });
    // The same server under a name its certificate does not cover: the tunnel opens, TLS refuses.
    const err = await failure(get(`https://wrong.proxied.test:${tls.port}/model.bin`, settings([via("*.proxied.test")])));
    expect(err.message).toMatch(/altnames|does not match|ERR_TLS_CERT_ALTNAME_INVALID/i);
    expect(err.transient).toBe(false);
  });

  it("with http: absolute, sends GET http://<checked address>:<port>/path to the proxy (never the name)", async () => {
    origin.put("/absolute.bin", Buffer.from("absolute form\n"));
    const before = proxy.requests().length;
    const r = await get(`http://files.proxied.test:${origin.port}/absolute.bin?sig=abc`, settings([via("files.proxied.test", proxy.url, "absolute")]));
    expect(r.body.toString()).toBe("absolute form\n");
    expect(newRequests(before)).toEqual([`GET http://127.0.0.1:${origin.port}/absolute.bin?sig=abc`]);
    const seen = origin.requests.at(-1)!.headers;
    expect(seen.via).toMatch(/tinyproxy/); // it came through the proxy, which set Host from the request target:
    expect(seen.host).toBe(`127.0.0.1:${origin.port}`);
  });

  it("fetches a ranged fill's parts each through the proxy", async () => {
    const ranged = await startOrigin({ ranges: true });
    const tmp = mkdtempSync(join(tmpdir(), "cache-proxy-parts-"));
    try {
      const MiB = 2 ** 20;
      const content = pseudoRandom(5 * MiB, 42);
      const { sha256 } = ranged.put("/parts.bin", content);
      const before = proxy.requests().length;
      const r = await attempt({
        key: "k".repeat(64),
        url: `http://files.proxied.test:${ranged.port}/parts.bin`,
        tmpDir: tmp,
        tempPath: () => join(tmp, "parts.part"),
        origin: settings([via("*.proxied.test")]),
        connections: new ConnectionPool(() => 4),
        parts: { size: MiB, concurrency: 3, minFileSize: 2 * MiB },
        retries: 1,
        retryBaseMs: 10,
        conditional: {},
        signal: AbortSignal.timeout(30_000),
        log: logger("test"),
        onLength: () => undefined,
        onBytes: () => undefined,
        onBody: () => undefined,
      });
      expect(r.kind).toBe("body");
      if (r.kind !== "body") return;
      await r.body.release();
      expect(r.sha256).toBe(sha256);
      const asked = ranged.requests.filter((q) => q.path === "/parts.bin");
      expect(asked.length).toBeGreaterThanOrEqual(4); // the first request and the parts after it
      for (const q of asked) expect(q.headers.range).toMatch(/^bytes=\d+-\d+$/);
      expect(newRequests(before)).toEqual(asked.map(() => `CONNECT 127.0.0.1:${ranged.port}`));
    } finally {
      await ranged.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("the origin rules still apply to the origin", () => {
  it.each(["connect", "absolute"] as const)("refuses a name that resolves to a forbidden address before the proxy is contacted (http: %s)", async (mode) => {
    const before = proxy.connections();
    for (const name of ["metadata.proxied.test", "private.proxied.test"]) {
      const err = await failure(get(`http://${name}:${origin.port}/plain.bin`, settings([via("*.proxied.test", proxy.url, mode)])));
      expect(err.status).toBe(403);
      expect(err.message).toContain(`origin host "${name}" resolves to ${NAMES[name]}`);
    }
    const httpsErr = await failure(get(`https://metadata.proxied.test:${tls.port}/x`, settings([via("*.proxied.test", proxy.url, mode)])));
    expect(httpsErr.status).toBe(403);
    await new Promise((r) => setTimeout(r, 200)); // a connection would be in the log by now
    expect(proxy.connections()).toBe(before);
  });

  it("routes each redirect hop by its own host: a hop with no entry goes direct, and credentials sign per hop", async () => {
    origin.put("/target.bin", Buffer.from("landed\n"));
    origin.redirect("/hop.bin", `http://other.proxied.test:${origin.port}/target.bin`);
    const signed: string[] = [];
    const before = proxy.requests().length;
    const r = await get(
      `http://files.proxied.test:${origin.port}/hop.bin`,
      settings([via("files.proxied.test")], {
        authorize: async (req) => {
          signed.push(req.url.host);
          return { ...req, headers: { ...req.headers, authorization: `for ${req.url.hostname}` } };
        },
      }),
    );
    expect(r.body.toString()).toBe("landed\n");
    expect(r.url).toBe(`http://other.proxied.test:${origin.port}/target.bin`);
    expect(newRequests(before)).toEqual([`CONNECT 127.0.0.1:${origin.port}`]); // only the first hop
    expect(signed).toEqual([`files.proxied.test:${origin.port}`, `other.proxied.test:${origin.port}`]);
    const [hop, target] = origin.requests.slice(-2);
    expect([hop!.path, hop!.headers.authorization]).toEqual(["/hop.bin", "for files.proxied.test"]);
    expect([target!.path, target!.headers.authorization, target!.headers.host]).toEqual(["/target.bin", "for other.proxied.test", `other.proxied.test:${origin.port}`]);
  });

  it("lets a `direct` entry exempt names from a wider pattern", async () => {
    const before = proxy.requests().length;
    const r = await get(`http://files.proxied.test:${origin.port}/plain.bin`, settings([via("*"), { host: "files.proxied.test", url: "direct", http: "connect" }]));
    expect(r.status).toBe(200);
    expect(newRequests(before)).toEqual([]);
    await get(`http://other.proxied.test:${origin.port}/plain.bin`, settings([via("*"), { host: "files.proxied.test", url: "direct", http: "connect" }]));
    expect(newRequests(before)).toEqual([`CONNECT 127.0.0.1:${origin.port}`]);
  });
});

describe("a proxy that fails", () => {
  it("that is down: a transient error naming cache.proxies and the proxy", async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const err = await failure(get(`http://files.proxied.test:${origin.port}/plain.bin`, settings([via("*.proxied.test", down)])));
    expect(err.transient).toBe(true);
    expect(err.message).toContain(`proxy ${down} (cache.proxies entry "*.proxied.test")`);
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it("that cannot reach the origin: the proxy's 5xx is a transient error (the fill retries)", async () => {
    const port = await closedPort();
    const err = await failure(get(`http://files.proxied.test:${port}/gone.bin`, settings([via("*")])));
    expect(err.message).toMatch(new RegExp(`proxy ${proxy.url} \\(cache.proxies entry "\\*"\\) answered 5\\d\\d to CONNECT 127.0.0.1:${port} \\(it could not reach the origin; retried\\)`));
    expect(err.transient).toBe(true);
  });

  it("that never answers CONNECT: the connect timeout covers the proxy leg", async () => {
    const quiet = `http://127.0.0.1:${silent.port}`;
    const started = Date.now();
    const err = await failure(get(`https://secure.proxied.test:${tls.port}/x`, settings([via("*", quiet)], { connectTimeout: 400 })));
    expect(err.reason).toBe("timeout");
    expect(err.message).toContain(`through proxy ${quiet} (cache.proxies)`);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("that never answers, when the fill is abandoned: the tunnel being set up is closed too", async () => {
    const quiet = `http://127.0.0.1:${silent.port}`;
    const known = silent.sockets.length;
    const stop = new AbortController();
    const pending = originGet(`http://files.proxied.test:${origin.port}/plain.bin`, settings([via("*", quiet)], { connectTimeout: 60_000 }), {}, stop.signal);
    const outcome = pending.then(() => undefined, (e: unknown) => e);
    await eventually(() => (silent.sockets.length > known ? true : undefined), "the proxy leg to be connected");
    stop.abort();
    const err = (await outcome) as CacheError;
    expect(err).toBeInstanceOf(CacheError);
    expect(err.transient).toBe(false);
    const leg = silent.sockets[known]!;
    await eventually(() => (leg.closed || leg.readableEnded ? true : undefined), "the proxy leg to be closed");
  });

  it("ends its connect timeout when the tunnel is up: an origin that thinks longer than cache.connectTimeout is waited for", async () => {
    const content = pseudoRandom(100_000, 43);
    origin.put("/slow.bin", content);
    origin.cue("/slow.bin", { stallMs: 3_000 }); // before the headers; the idle timeout (10 s) is what applies
    const slow = await get(`http://files.proxied.test:${origin.port}/slow.bin`, settings([via("*")], { connectTimeout: 1_000 }));
    expect(slow.body.equals(content)).toBe(true);
  });

  it("behind which the origin stalls: the idle timeout covers the tunnelled request", async () => {
    origin.put("/stall.bin", Buffer.from("late\n"));
    origin.cue("/stall.bin", { stallMs: 5_000 });
    const err = await failure(get(`http://files.proxied.test:${origin.port}/stall.bin`, settings([via("*")], { idleTimeout: 400 })));
    expect(err.reason).toBe("timeout");
    expect(err.message).toContain("sent nothing for 400 ms (cache.idleTimeout)");
  });

  it("that refuses CONNECT (403) or wants credentials (407): an error naming cache.proxies and the proxy, not retried", async () => {
    const strict = await startProxy({ connectPorts: [443] });
    const locked = await startProxy({ basicAuth: { user: "site", password: "secret" } });
    try {
      const forbidden = await failure(get(`http://files.proxied.test:${origin.port}/plain.bin`, settings([via("*", strict.url)])));
      expect(forbidden.message).toContain(`proxy ${strict.url} (cache.proxies entry "*") refused CONNECT 127.0.0.1:${origin.port} (403 Forbidden)`);
      expect(forbidden.transient).toBe(false);
      for (const mode of ["connect", "absolute"] as const) {
        const auth = await failure(get(`http://files.proxied.test:${origin.port}/plain.bin`, settings([via("*", locked.url, mode)])));
        expect(auth.message).toContain(`proxy ${locked.url} (cache.proxies entry "*") answered 407 Proxy Authentication Required`);
        expect(auth.message).toContain("give the entry a secretDir");
        expect(auth.transient).toBe(false);
      }
    } finally {
      await strict.close();
      await locked.close();
    }
  });
});

describe("a proxy that wants credentials", () => {
  let locked: Proxy;
  let dir: string;
  beforeAll(async () => {
    locked = await startProxy({ basicAuth: { user: "site", password: "s3cret" } });
    dir = mkdtempSync(join(tmpdir(), "cache-proxy-secret-"));
  });
  afterAll(async () => {
    await locked?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const secret = (username: string, password: string) => {
    writeFileSync(join(dir, "username"), `${username}\n`);
    writeFileSync(join(dir, "password"), `${password}\n`);
  };

  it.each(["connect", "absolute"] as const)("gets them from the entry's secretDir (http: %s)", async (mode) => {
    secret("site", "s3cret");
    const r = await get(`http://files.proxied.test:${origin.port}/plain.bin`, settings([{ ...via("*", locked.url, mode), secretDir: dir }]));
    expect(r.status).toBe(200);
    expect(locked.requests().at(-1)).toMatch(mode === "connect" ? /^CONNECT 127\.0\.0\.1:/ : /^GET http:\/\/127\.0\.0\.1:/);
    expect(origin.requests.at(-1)!.headers["proxy-authorization"]).toBeUndefined(); // for the proxy only
  });

  it("names the Secret when the proxy does not accept what it holds (tinyproxy answers CONNECT with 401, squid with 407)", async () => {
    secret("site", "wrong");
    const err = await failure(get(`https://secure.proxied.test:${tls.port}/x`, settings([{ ...via("*", locked.url), secretDir: dir }])));
    expect(err.message).toContain(`proxy ${locked.url} (cache.proxies entry "*") answered 401 Unauthorized to CONNECT 127.0.0.1:${tls.port}`);
    expect(err.message).toContain(`did not accept the username and password in ${dir}`);
    expect(err.message).not.toContain("wrong");
    expect(err.transient).toBe(false);
  });

  it("says which file is missing", async () => {
    const err = await failure(get(`http://files.proxied.test:${origin.port}/plain.bin`, settings([{ ...via("*", locked.url), secretDir: join(dir, "absent") }])));
    expect(err.message).toContain(`cannot read ${join(dir, "absent", "username")} (ENOENT)`);
    expect(err.message).toContain(`cache.proxies entry "*"`);
  });
});
