// A forward proxy that fails, through real ones (tinyproxy, and a loopback listener that
// never answers): down, unable to reach the origin, silent (the connect timeout covers
// the proxy leg; an abandoned fill closes it), refusing CONNECT (403), wanting
// credentials (407, or from a secretDir); each gives an error naming cache.proxies.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheError } from "../../src/cache/errors.js";
import { originGet, type OriginSettings } from "../../src/cache/origin.js";
import type { ProxyEntry } from "../../src/policy/proxies.js";
import { pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import {
  closedPort,
  failureOf as failure,
  fetchVia as get,
  proxiedSettings,
  startProxy,
  startSilentProxy,
  startTlsOrigin,
  type Proxy,
  type TlsOrigin,
} from "../support/proxy.js";
import { eventually } from "../support/tls-client.js";

const NAMES = { "files.proxied.test": "127.0.0.1", "secure.proxied.test": "127.0.0.1" };

let proxy: Proxy;
let origin: Origin;
let tls: TlsOrigin;
let silent: Awaited<ReturnType<typeof startSilentProxy>>;

beforeAll(async () => {
  proxy = await startProxy();
  origin = await startOrigin();
  tls = await startTlsOrigin(["secure.proxied.test"]);
  silent = await startSilentProxy();
  origin.put("/plain.bin", pseudoRandom(1000, 44));
});

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
  tls?.close();
  silent?.close();
});

const settings = (proxies: ProxyEntry[], more: Partial<OriginSettings> = {}) => proxiedSettings({ names: NAMES, ca: tls.bundle.caCert }, proxies, more);
const via = (host: string, url = proxy.url, http: ProxyEntry["http"] = "connect"): ProxyEntry => ({ host, url, http });

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
    const quiet = silent.url;
    const started = Date.now();
    const err = await failure(get(`https://secure.proxied.test:${tls.port}/x`, settings([via("*", quiet)], { connectTimeout: 400 })));
    expect(err.reason).toBe("timeout");
    expect(err.message).toContain(`through proxy ${quiet} (cache.proxies)`);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("that never answers, when the fill is abandoned: the tunnel being set up is closed too", async () => {
    const quiet = silent.url;
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
