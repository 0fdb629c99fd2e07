// Origin fetches through a real forward proxy (Debian's tinyproxy on loopback): the
// proxy is asked for the origin's *checked address*, never its name; https is TLS to
// the name inside the tunnel; a ranged fill's every part goes through it; forbidden
// addresses are refused before the proxy is contacted; each redirect hop uses its own
// host's entry. Failures of the proxy: proxy-failures.test.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionPool } from "../../src/cache/fills/connections.js";
import { attempt } from "../../src/cache/fills/download.js";
import type { OriginSettings } from "../../src/cache/origin.js";
import type { ProxyEntry } from "../../src/policy/proxies.js";
import { logger } from "../../src/shared/log.js";
import { pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { failureOf as failure, fetchVia as get, proxiedSettings, startProxy, startTlsOrigin, type Proxy, type TlsOrigin } from "../support/proxy.js";

const NAMES: Record<string, string> = {
  "files.proxied.test": "127.0.0.1",
  "other.proxied.test": "127.0.0.1",
  "secure.proxied.test": "127.0.0.1",
  "wrong.proxied.test": "127.0.0.1",
  "six.proxied.test": "::1",
  "metadata.proxied.test": "169.254.169.254",
  "private.proxied.test": "10.20.30.40",
};

let proxy: Proxy;
let origin: Origin;
let tls: TlsOrigin;

beforeAll(async () => {
  proxy = await startProxy();
  origin = await startOrigin();
  tls = await startTlsOrigin(["secure.proxied.test"]);
  origin.put("/plain.bin", pseudoRandom(300_000, 41));
});

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
  tls?.close();
});

const settings = (proxies: ProxyEntry[], more: Partial<OriginSettings> = {}) => proxiedSettings({ names: NAMES, ca: tls.bundle.caCert }, proxies, more);
const via = (host: string, url = proxy.url, http: ProxyEntry["http"] = "connect"): ProxyEntry => ({ host, url, http });
const newRequests = (before: number) => proxy.requests().slice(before);

describe("through the proxy", () => {
  it("asks for a CONNECT tunnel to the checked address of an http origin, and sends the name as Host inside it", async () => {
    const content = pseudoRandom(300_000, 41);
    const before = proxy.requests().length;
    const r = await get(`http://files.proxied.test:${origin.port}/plain.bin`, settings([via("*.proxied.test")]));
    expect(r.status).toBe(200);
    expect(r.body.equals(content)).toBe(true);
    expect(newRequests(before)).toEqual([`CONNECT 127.0.0.1:${origin.port}`]);
    expect(origin.requests.at(-1)!.headers.host).toBe(`files.proxied.test:${origin.port}`);
  });

  it("reaches a proxy on every node at http://$(NODE_IP):<port>", async () => {
    const before = proxy.requests().length;
    const r = await get(`http://files.proxied.test:${origin.port}/plain.bin`, settings([via("*", `http://$(NODE_IP):${proxy.port}`)], { nodeIp: "127.0.0.1" }));
    expect(r.status).toBe(200);
    expect(newRequests(before)).toEqual([`CONNECT 127.0.0.1:${origin.port}`]);
  });

  it("brackets an IPv6 address in CONNECT", async () => {
    const v6 = await startOrigin({ host: "::1" });
    try {
      v6.put("/v6.bin", Buffer.from("over six\n"));
      const before = proxy.requests().length;
      const s = settings([via("*")], { rules: { allow: ["*"], schemes: ["http"], allowPrivate: ["::1"] } });
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
