// The node cache refuses every forbidden address range with `allow: ["*"]`: as a literal
// in the URL, as what an allowed name resolves to, and as a redirect target of an allowed
// origin. A guard in this process turns any connection to a non-loopback address into a
// refused loopback connection, so even a broken check sends no traffic off the machine
// (and the test then fails on the status).
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { parsePolicy } from "../../src/policy/load.js";
import { cacheKey, ensurePath } from "../../src/shared/protocol.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";

/** Literal (as in a URL), the address it denotes, and the range the refusal names. */
const LITERALS: Array<[string, string, string]> = [
  ["0.0.0.0", "0.0.0.0", "unspecified"],
  ["[::]", "::", "unspecified"],
  ["100.64.0.1", "100.64.0.1", "carrierGradeNat"],
  ["100.100.100.200", "100.100.100.200", "carrierGradeNat"],
  ["[fd00::1]", "fd00::1", "uniqueLocal"],
  ["[fd00:ec2::254]", "fd00:ec2::254", "uniqueLocal"],
  ["224.0.0.1", "224.0.0.1", "multicast"],
  ["[ff02::1]", "ff02::1", "multicast"],
  ["192.0.2.1", "192.0.2.1", "reserved"],
  ["[2001:db8::1]", "2001:db8::1", "reserved"],
  ["[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe", "rfc6052"],
  ["[2002:a9fe:a9fe::1]", "2002:a9fe:a9fe::1", "6to4"],
  ["[::7f00:1]", "::7f00:1", "ipv4Compatible"],
];

const blocked: string[] = [];
const realConnect = net.Socket.prototype.connect;
const isLoopback = (a: string) => a === "::1" || a.startsWith("127.") || a === "localhost";

/** Test safety net, not part of what is tested: nothing leaves loopback. */
function guardConnections(): void {
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    // net.createConnection passes its normalized [options, callback] array as the one argument.
    const holder = (Array.isArray(args[0]) ? args[0] : args) as unknown[];
    const opts = holder[0];
    if (typeof opts === "object" && opts !== null && !("path" in opts && (opts as { path?: string }).path)) {
      const o = opts as net.TcpSocketConnectOpts;
      const host = o.host ?? "localhost";
      if (net.isIP(host) && !isLoopback(host)) {
        blocked.push(host);
        holder[0] = { ...o, host: "127.0.0.1", port: 1 };
      } else if (o.lookup) {
        const lookup = o.lookup;
        holder[0] = {
          ...o,
          lookup: ((name: string, options: object, cb: (e: Error | null, a: unknown, f?: number) => void) =>
            lookup(name, options as never, ((err: Error | null, address: unknown, family?: number) => {
              const list = Array.isArray(address) ? (address as Array<{ address: string }>) : [{ address: address as string }];
              if (!err && list.some((a) => !isLoopback(a.address))) {
                blocked.push(list.map((a) => a.address).join(","));
                return cb(new Error("test guard: connection to a non-loopback address blocked"), "", 4);
              }
              cb(err, address, family);
            }) as never)) as never,
        };
      }
    }
    return (realConnect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof realConnect;
}

let origin: Origin;
let cache: RunningCache;
let root: string;
const names = new Map<string, string>(LITERALS.map(([, address], i) => [`r${i}.example.test`, address]));

beforeAll(async () => {
  guardConnections();
  origin = await startOrigin();
  root = mkdtempSync(join(tmpdir(), "cache-ssrf-"));
  const r = parsePolicy(`identity: {mode: "off"}\norigins: {allow: ["*"], allowPrivate: ["127.0.0.1"]}\ncache: {originRetries: 0, fillTimeout: 5s}`);
  if (!r.ok) throw new Error(r.errors.join());
  const resolve = async (host: string) => {
    const address = names.get(host) ?? "127.0.0.1";
    return [{ address, family: net.isIPv6(address) ? 6 : 4 }];
  };
  cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => r.policy, resolve });
  origin.put("/ok.bin", pseudoRandom(1000, 3));
});

afterAll(async () => {
  net.Socket.prototype.connect = realConnect;
  await cache?.close(100);
  await origin?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function ensure(url: string) {
  const r = await fetchRaw(cache.url + ensurePath(cacheKey(url), url));
  return { status: r.status, text: r.body.toString() };
}

describe("the cache refuses every forbidden range with allow: ['*']", () => {
  it("serves an allowed loopback origin (the control case)", async () => {
    const r = await ensure(origin.url("/ok.bin"));
    expect(r.status).toBe(200);
  });

  it.each(LITERALS)("as a literal: http://%s:1/x.bin (%s is %s)", async (literal, address, range) => {
    const r = await ensure(`http://${literal}:1/x.bin`);
    expect(r.status).toBe(403);
    expect(r.text).toContain(`address ${address} is ${range}`);
  });

  it.each(LITERALS.map(([, address, range], i) => [`r${i}.example.test`, address, range]))("as what %s resolves to (%s, %s)", async (name, address, range) => {
    const r = await ensure(`http://${name}:1/x.bin`);
    expect(r.status).toBe(403);
    expect(r.text).toContain(`origin host "${name}" resolves to ${address}: address ${address} is ${range}`);
  });

  it.each(LITERALS.map((l, i) => [...l, i] as const))("as a redirect target of an allowed origin: http://%s:1/", async (literal, address, range, i) => {
    const path = `/redirect-${i}.bin`;
    origin.redirect(path, `http://${literal}:1/x.bin`);
    const r = await ensure(origin.url(path));
    expect(r.status).toBe(403);
    expect(r.text).toContain(`redirect to http://${literal}:1/x.bin refused`);
    expect(r.text).toContain(`address ${address} is ${range}`);
  });

  it("never let a connection leave loopback", () => {
    expect(blocked).toEqual([]);
  });
});
