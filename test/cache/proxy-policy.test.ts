// cache.proxies as platform teams write it: which entry a host gets (the most specific
// pattern wins, whatever the order), and load-time errors that name the bad field.
import { describe, expect, it } from "vitest";
import { chooseProxy, specificity } from "../../src/cache/proxy.js";
import { parsePolicy } from "../../src/policy/load.js";
import type { ProxyEntry } from "../../src/policy/proxies.js";

const entry = (host: string, url: string): ProxyEntry => ({ host, url, http: "connect" });

describe("which proxy a host gets", () => {
  const entries = [
    entry("*", "http://10.0.0.1:3128"),
    entry("*.example.com", "http://10.0.0.2:3128"),
    entry("*.eu.example.com", "http://10.0.0.3:3128"),
    entry("models.eu.example.com", "direct"),
    entry("10.9.8.7", "http://10.0.0.4:3128"),
    entry("[fd00::0:0:7]", "http://10.0.0.5:3128"),
  ];
  it.each([
    ["models.eu.example.com", undefined], // an exact name beats every wildcard; `direct` means no proxy
    ["data.eu.example.com", "http://10.0.0.3:3128"], // the longer suffix wins
    ["MODELS.Example.com.", "http://10.0.0.2:3128"], // case and a final dot do not matter
    ["example.com", "http://10.0.0.1:3128"], // *.example.com is for subdomains only
    ["elsewhere.org", "http://10.0.0.1:3128"],
    ["10.9.8.7", "http://10.0.0.4:3128"],
    ["[fd00::7]", "http://10.0.0.5:3128"], // one address however it is written
  ])("%s -> %s", (host, url) => {
    expect(chooseProxy(host, entries)?.entry.url).toBe(url);
    expect(chooseProxy(host, [...entries].reverse())?.entry.url).toBe(url); // order does not matter
  });

  it("goes direct with no entries, or no matching one", () => {
    expect(chooseProxy("a.example.com", undefined)).toBeUndefined();
    expect(chooseProxy("a.example.com", [])).toBeUndefined();
    expect(chooseProxy("a.example.org", [entry("*.example.com", "http://10.0.0.2:3128")])).toBeUndefined();
  });

  it("reaches the proxy at the host and port of its URL (IPv6 unbracketed)", () => {
    expect(chooseProxy("x", [entry("*", "http://[fd00::5]:8001")])).toMatchObject({ host: "fd00::5", port: 8001 });
    expect(chooseProxy("x", [entry("*", "http://proxy.site.internal:3128/")])).toMatchObject({ host: "proxy.site.internal", port: 3128 });
  });

  it("puts this node's IP where the URL says $(NODE_IP) (a proxy on every node)", () => {
    const perNode = [entry("*", "http://$(NODE_IP):65001")];
    expect(chooseProxy("x", perNode, "10.1.2.3")).toMatchObject({ host: "10.1.2.3", port: 65001 });
    expect(chooseProxy("x", perNode, "fd00::9")).toMatchObject({ host: "fd00::9", port: 65001 });
    expect(() => chooseProxy("x", perNode, "")).toThrow(/cache.proxies entry "\*" names \$\(NODE_IP\), but NODE_IP is not set: run the node cache with NODE_IP from the downward API \(fieldRef status.hostIP\)/);
    expect(() => chooseProxy("x", perNode, "node-1")).toThrow(/NODE_IP is "node-1", not an IP address/);
  });

  it("ranks exact > longer suffix > shorter suffix > *", () => {
    const h = "a.b.example.com";
    expect(specificity(h, h)).toBeGreaterThan(specificity(h, "*.b.example.com"));
    expect(specificity(h, "*.b.example.com")).toBeGreaterThan(specificity(h, "*.example.com"));
    expect(specificity(h, "*.example.com")).toBeGreaterThan(specificity(h, "*"));
    expect(specificity(h, "*.other.com")).toBe(-1);
  });
});

describe("cache.proxies validation", () => {
  const load = (proxies: string) => parsePolicy(`cache:\n  proxies: ${proxies}\n`);
  const errors = (proxies: string) => {
    const r = load(proxies);
    return r.ok ? [] : r.errors;
  };

  it("accepts host patterns as in origins.allow, http://host:port or direct, and an http mode", () => {
    const r = load(`[{host: "*", url: "http://10.0.0.1:3128"}, {host: "*.svc.cluster.local", url: direct}, {host: "dl.example.com", url: "http://127.0.0.1:65001/", http: absolute}, {host: "a.b", url: "http://$(NODE_IP):65001"}]`);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.policy.cache.proxies.map((p) => p.http)).toEqual(["connect", "connect", "absolute", "connect"]);
  });

  it.each([
    [`[{host: "https://a.com", url: "http://10.0.0.1:3128"}]`, "cache.proxies.0.host: must be a host name, `*.domain`, `*` or an IP address"],
    [`[{host: "a.com", url: "10.0.0.1:3128"}]`, "cache.proxies.0.url: \"10.0.0.1:3128\" is not a URL; write http://host:port"],
    [`[{host: "a.com", url: "proxy:3128"}]`, "cache.proxies.0.url: \"proxy:3128\" is not a URL; write http://host:port"],
    [`[{host: "a.com", url: "not a url"}]`, "cache.proxies.0.url: \"not a url\" is not a URL; write http://host:port"],
    [`[{host: "a.com", url: "https://10.0.0.1:3128"}]`, "cache.proxies.0.url: scheme \"https\" is not supported"],
    [`[{host: "a.com", url: "http://user:pw@10.0.0.1:3128"}]`, "cache.proxies.0.url: credentials in the proxy URL are not supported"],
    [`[{host: "a.com", url: "http://10.0.0.1"}]`, "cache.proxies.0.url: \"http://10.0.0.1\" must be exactly http://host:port: an explicit port"],
    [`[{host: "a.com", url: "http://10.0.0.1:3128/dfdaemon"}]`, "no path, query or fragment"],
    [`[{host: "a.com", url: "http://10.0.0.1:3128", http: tunnel}]`, "cache.proxies.0.http:"],
    [`[{host: "a.com", url: "http://$(NODE_IP)"}]`, "cache.proxies.0.url: \"http://$(NODE_IP)\" must be exactly http://host:port: an explicit port"],
    [`[{host: "a.com", url: "http://$(NODE_NAME):3128"}]`, "cache.proxies.0.url: \"http://$(NODE_NAME):3128\": the proxy's host must be a name, an IP address or $(NODE_IP)"],
    [`[{host: "a.com", url: "http://10.0.0.1:3128", port: 1}]`, "cache.proxies.0: unknown field(s) port"],
    [`[{host: "a.com", url: "http://10.0.0.1:3128", secretDir: "proxy-secret"}]`, "cache.proxies.0.secretDir: must be an absolute path"],
    [`[{host: "a.com", url: direct, secretDir: /var/run/p}]`, "cache.proxies.0.secretDir: is for a proxy's credentials; a direct entry has no proxy"],
    [`[{host: "A.com", url: direct}, {host: "a.com.", url: "http://10.0.0.1:3128"}]`, "cache.proxies.1.host: \"a.com.\" is also the host of entry 0"],
  ])("%s", (proxies, message) => {
    expect(errors(proxies).join("\n")).toContain(message);
  });
});
