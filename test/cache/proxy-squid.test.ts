// The same origin client through Debian's squid, the proxy sites run most, with its
// stock rules: CONNECT only to SSL_ports (443 and what the site adds), credentials
// through basic_ncsa_auth. Pins what docs/PROXIES.md says about squid: a tunnel to the
// checked address with TLS to the name, a clear 403 for a CONNECT port it does not
// allow, absolute-form requests whose Host squid rebuilds from the target, and 407.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { OriginSettings } from "../../src/cache/origin.js";
import type { ProxyEntry } from "../../src/policy/proxies.js";
import { startOrigin, type Origin } from "../support/origin.js";
import { failureOf as failure, fetchVia, proxiedSettings, startSquid, startTlsOrigin, type Proxy, type TlsOrigin } from "../support/proxy.js";
import { eventually } from "../support/tls-client.js";

let squid: Proxy;
let locked: Proxy;
let origin: Origin;
let tls: TlsOrigin;
let secretDir: string;

beforeAll(async () => {
  tls = await startTlsOrigin(["secure.squid.test"]);
  origin = await startOrigin();
  origin.put("/plain.bin", Buffer.from("plain bytes\n"));
  [squid, locked] = await Promise.all([
    startSquid({ connectPorts: [tls.port] }),
    startSquid({ connectPorts: [tls.port], basicAuth: { user: "site", password: "s3cret" } }),
  ]);
  secretDir = mkdtempSync(join(tmpdir(), "cache-squid-secret-"));
});

afterAll(async () => {
  await squid?.close();
  await locked?.close();
  await origin?.close();
  tls?.close();
  if (secretDir) rmSync(secretDir, { recursive: true, force: true });
});

const NAMES = { "secure.squid.test": "127.0.0.1", "files.squid.test": "127.0.0.1" };

function settings(entry: Omit<ProxyEntry, "host" | "http"> & Partial<ProxyEntry>): OriginSettings {
  return proxiedSettings({ names: NAMES, ca: tls.bundle.caCert }, [{ host: "*", http: "connect", ...entry }], { connectTimeout: 10_000 });
}

async function get(url: string, s: OriginSettings): Promise<{ status: number; text: string }> {
  const r = await fetchVia(url, s);
  return { status: r.status, text: r.body.toString() };
}

/** squid logs a request when it ends. */
const logged = (proxy: Proxy, line: string) => eventually(() => (proxy.requests().includes(line) ? true : undefined), `squid's log to show ${line}`);

it("tunnels https to the checked address, TLS to the name inside", async () => {
  const r = await get(`https://secure.squid.test:${tls.port}/model.bin`, settings({ url: squid.url }));
  expect(r.text).toBe("secret bytes\n");
  expect(tls.seen.at(-1)).toEqual({ host: `secure.squid.test:${tls.port}`, servername: "secure.squid.test" });
  await logged(squid, `CONNECT 127.0.0.1:${tls.port}`);
  expect(squid.requests().join("\n")).not.toContain("secure.squid.test");
});

it("refuses CONNECT to a port outside SSL_ports with 403: an error naming cache.proxies and squid's ACLs", async () => {
  const err = await failure(get(`http://files.squid.test:${origin.port}/plain.bin`, settings({ url: squid.url })));
  expect(err.message).toContain(`proxy ${squid.url} (cache.proxies entry "*") refused CONNECT 127.0.0.1:${origin.port} (403 Forbidden)`);
  expect(err.message).toContain("squid: http_access and the CONNECT port ACLs");
  expect(err.transient).toBe(false);
});

it("takes http: absolute for plain http, and rebuilds Host from the checked address", async () => {
  const r = await get(`http://files.squid.test:${origin.port}/plain.bin`, settings({ url: squid.url, http: "absolute" }));
  expect(r.text).toBe("plain bytes\n");
  const seen = origin.requests.at(-1)!.headers;
  expect(seen.via).toMatch(/cache-io-test \(squid/);
  expect(seen.host).toBe(`127.0.0.1:${origin.port}`);
  await logged(squid, `GET http://127.0.0.1:${origin.port}/plain.bin`);
});

it("answers 407 without credentials or with wrong ones, and tunnels with the right ones from secretDir", async () => {
  const url = `https://secure.squid.test:${tls.port}/model.bin`;
  const none = await failure(get(url, settings({ url: locked.url })));
  expect(none.message).toContain(`proxy ${locked.url} (cache.proxies entry "*") answered 407 Proxy Authentication Required to CONNECT 127.0.0.1:${tls.port}`);
  writeFileSync(join(secretDir, "username"), "site\n");
  writeFileSync(join(secretDir, "password"), "wrong\n");
  const wrong = await failure(get(url, settings({ url: locked.url, secretDir })));
  expect(wrong.message).toContain(`answered 407 Proxy Authentication Required to CONNECT 127.0.0.1:${tls.port}: it did not accept the username and password in ${secretDir}`);
  writeFileSync(join(secretDir, "password"), "s3cret\n");
  const r = await get(url, settings({ url: locked.url, secretDir })); // a new entry: the Secret is read again
  expect(r.text).toBe("secret bytes\n");
});
