import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cacheOriginRules, defaultPolicy, parsePolicy, settingsFor } from "../../src/policy/load.js";
import { PolicyStore } from "../../src/policy/store.js";

describe("policy parsing", () => {
  it("fills every default from an empty document", () => {
    const r = parsePolicy("");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.policy.injection).toEqual({ maxFiles: 16, mountPath: "/cache", mode: "mount", onInvalid: "deny" });
    expect(r.policy.cache.diskBudget).toBe(50 * 2 ** 30);
    expect(r.policy.cache.revalidateAfter).toBe(3_600_000);
    expect(r.policy).toEqual(defaultPolicy());
  });

  it("converts quantities and durations", () => {
    const r = parsePolicy("cache: {diskBudget: 512Mi, maxFileSize: 2G, revalidateAfter: 90s, idleTimeout: 500ms}");
    expect(r.ok && r.policy.cache).toMatchObject({ diskBudget: 512 * 2 ** 20, maxFileSize: 2e9, revalidateAfter: 90_000, idleTimeout: 500 });
  });

  it("names every bad field", () => {
    const r = parsePolicy(`
injection: {maxFiles: 0, mode: hardlink}
cache: {diskBudget: lots}
origins: {allow: ["https://x.example.com"]}
namespaces: {Bad_NS: {}}
unknownTop: 1
`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const text = r.errors.join("\n");
    expect(text).toContain("injection.maxFiles");
    expect(text).toContain("injection.mode");
    expect(text).toContain('cache.diskBudget: "lots" is not a byte quantity');
    expect(text).toContain("origins.allow.0");
    expect(text).toContain("namespaces.Bad_NS");
    expect(text).toContain("unknown field(s) unknownTop");
  });

  it("refuses unknown keys inside injection, naming the field", () => {
    const r = parsePolicy("injection: {maxFiles: 3, mountpath: /data}");
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual(["injection: unknown field(s) mountpath"]);
  });

  it.each(["ftp", "file", "gopher"])("refuses the non-http scheme %s in origins.schemes, naming the field", (scheme) => {
    const r = parsePolicy(`origins: {schemes: [https, ${scheme}]}`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/^origins\.schemes\.1: /);
  });

  it("checks the limits for hostile callers: shares within 0..1, counts of at least 1, durations", () => {
    const ok = parsePolicy("cache: {recentUseShare: 0.25, maxDownloads: 10, maxDownloadsPerClient: 2, sendTimeout: 5s, maxFills: 4, maxFillsPerHost: 1, abandonGrace: 2s, maxStale: 1h, recentUseMaxKeys: 100}");
    expect(ok.ok && ok.policy.cache).toMatchObject({ recentUseShare: 0.25, maxDownloads: 10, sendTimeout: 5000, abandonGrace: 2000, maxStale: 3_600_000, recentUseMaxKeys: 100 });
    const bad = parsePolicy("cache: {recentUseShare: 1.5, maxDownloads: 0, maxFillsPerHost: -1, sendTimeout: soon}");
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    const text = bad.errors.join("\n");
    for (const field of ["cache.recentUseShare", "cache.maxDownloads", "cache.maxFillsPerHost", "cache.sendTimeout"]) expect(text).toContain(field);
  });

  it("reports YAML syntax errors and duplicate keys", () => {
    expect(parsePolicy("injection: {maxFiles: 3\n").ok).toBe(false);
    const dup = parsePolicy("injection: {}\ninjection: {}\n");
    expect(dup.ok).toBe(false);
  });

  it("applies namespace overrides and gives the cache the union of allow-lists", () => {
    const r = parsePolicy(`
origins: {allow: [models.example.com]}
namespaces:
  team-a: {mode: copy, maxFiles: 2, originsAllow: [data.example.org]}
`);
    if (!r.ok) throw new Error(r.errors.join());
    expect(settingsFor(r.policy, "team-a").injection).toMatchObject({ mode: "copy", maxFiles: 2, mountPath: "/cache" });
    expect(settingsFor(r.policy, "team-a").origins.allow).toEqual(["data.example.org"]);
    expect(settingsFor(r.policy, "other").origins.allow).toEqual(["models.example.com"]);
    expect(cacheOriginRules(r.policy).allow.sort()).toEqual(["data.example.org", "models.example.com"]);
  });
});

describe("policy store", () => {
  it("swaps on a ConfigMap-style symlink swap and keeps the last good policy on a bad edit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "policy-"));
    const write = (version: string, text: string) => {
      mkdirSync(join(dir, version));
      writeFileSync(join(dir, version, "policy.yaml"), text);
      symlinkSync(version, join(dir, "..data_tmp"));
      renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    };
    write("v1", "injection: {maxFiles: 3}");
    symlinkSync("..data/policy.yaml", join(dir, "policy.yaml"));
    const errors: string[][] = [];
    const store = PolicyStore.fromFile(join(dir, "policy.yaml"), { onError: (e) => errors.push(e) });
    expect(store.current().injection.maxFiles).toBe(3);

    write("v2", "injection: {maxFiles: 5}");
    expect(await store.reload()).toBe(true);
    expect(store.current().injection.maxFiles).toBe(5);

    write("v3", "injection: {maxFiles: -1}");
    expect(await store.reload()).toBe(false);
    expect(store.current().injection.maxFiles).toBe(5);
    expect(errors[0]?.join()).toContain("injection.maxFiles");
    expect(store.lastErrors).toHaveLength(1);
  });

  it("recovers when a transient read error is followed by the same good content", async () => {
    const dir = mkdtempSync(join(tmpdir(), "policy-"));
    const path = join(dir, "p.yaml");
    writeFileSync(path, "injection: {maxFiles: 3}");
    const store = PolicyStore.fromFile(path);
    writeFileSync(path, "injection: {maxFiles: -1}");
    expect(await store.reload()).toBe(false);
    rmSync(path);
    expect(await store.reload()).toBe(false);
    expect(store.lastErrors[0]).toContain("cannot read");
    writeFileSync(path, "injection: {maxFiles: -1}");
    expect(await store.reload()).toBe(false);
    expect(store.lastErrors.join()).toContain("injection.maxFiles");
    // Back to good text: a successful reload, so "policy valid" recovers at once.
    writeFileSync(path, "injection: {maxFiles: 3}");
    expect(await store.reload()).toBe(true);
    expect(store.lastErrors).toEqual([]);
    expect(store.current().injection.maxFiles).toBe(3);
  });

  it("joins concurrent reloads into one read, so an older read cannot land last", async () => {
    const dir = mkdtempSync(join(tmpdir(), "policy-"));
    const path = join(dir, "p.yaml");
    writeFileSync(path, "injection: {maxFiles: 3}");
    const reloads: number[] = [];
    const store = PolicyStore.fromFile(path, { onReload: (p) => reloads.push(p.injection.maxFiles) });
    writeFileSync(path, "injection: {maxFiles: 7}");
    const [a, b] = [store.reload(), store.reload()];
    expect(a).toBe(b);
    expect(await a).toBe(true);
    expect(reloads).toEqual([7]);
  });

  it("refuses to start on an invalid file, naming the field", () => {
    const dir = mkdtempSync(join(tmpdir(), "policy-"));
    writeFileSync(join(dir, "p.yaml"), "fetcher: {runAsUser: 0}");
    expect(() => PolicyStore.fromFile(join(dir, "p.yaml"))).toThrow(/fetcher.runAsUser/);
  });
});
