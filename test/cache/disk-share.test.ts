// Per-namespace disk shares of the budget (identity.diskSharePerNamespace,
// namespaces.<ns>.diskShare): the Budget itself, with its protection inputs given as
// plain sets (what the pod watch and the recent-use list would say). A fill that would
// take its namespace past its share evicts that namespace's own least recently used
// files first, else is refused with 507 naming the namespace, its use, its share and the
// field. The same through a real node cache: disk-share-cache.test.ts.
import { describe, expect, it } from "vitest";
import { CacheError } from "../../src/cache/errors.js";
import { Budget } from "../../src/cache/eviction.js";
import { diskShareOf, parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";
import { policyOf } from "./policy-of.js";

const MIB = 2 ** 20;

interface Harness {
  budget: Budget;
  evicted: string[];
  mounted: Set<string>;
  policy: { current: Policy };
}

function harness(yaml: string): Harness {
  const policy = { current: policyOf(yaml) };
  const evicted: string[] = [];
  const mounted = new Set<string>();
  const budget = new Budget({
    limit: () => policy.current.cache.diskBudget,
    mounted: (k) => mounted.has(k),
    recent: () => false,
    recentShare: () => policy.current.cache.recentUseShare,
    recentWindow: () => "600s (cache.recentUseWindow)",
    blocked: () => null,
    evict: (k) => evicted.push(k),
    share: (ns) => diskShareOf(policy.current, ns),
  });
  return { budget, evicted, mounted, policy };
}

/** A fill of `size` bytes by `ns`'s caller, grown as its bytes arrive, then committed. */
function fill(b: Budget, key: string, size: number, ns?: string): void {
  b.checkFits(key, size, ns);
  const r = b.reserve(key, 0, ns);
  for (let got = 0; got < size; got += MIB) r.grow(Math.min(size, got + MIB));
  r.commit(key, size);
}

function refusal(f: () => void): CacheError {
  try {
    f();
  } catch (err) {
    if (err instanceof CacheError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("a namespace's share of the disk budget", () => {
  it("a fill past the share evicts the namespace's own oldest file, not another namespace's older one", () => {
    const h = harness("identity: {mode: required, diskSharePerNamespace: 0.5}\ncache: {diskBudget: 8Mi}");
    fill(h.budget, "b-old", 2 * MIB, "team-b"); // the oldest file of all
    fill(h.budget, "a-1", 2 * MIB, "team-a");
    fill(h.budget, "a-2", 2 * MIB, "team-a"); // team-a now holds its whole share (4 MiB of 8)
    expect(h.budget.usedBy("team-a")).toBe(4 * MIB);
    fill(h.budget, "a-3", 2 * MIB, "team-a"); // the budget has 2 MiB free, but team-a's share has none
    expect(h.evicted).toEqual(["a-1"]);
    expect(h.budget.usedBy("team-a")).toBe(4 * MIB);
    expect(h.budget.usedBy("team-b")).toBe(2 * MIB);
    expect(h.budget.used()).toBe(6 * MIB);
  });

  it("refuses with 507 naming the namespace, its use, its share and the field when its own files are all mounted; nothing is evicted", () => {
    const h = harness("identity: {mode: required, diskSharePerNamespace: 0.25}\ncache: {diskBudget: 8Mi}");
    fill(h.budget, "b-old", 1 * MIB, "team-b");
    fill(h.budget, "a-1", 2 * MIB, "team-a");
    h.mounted.add("a-1");
    const err = refusal(() => fill(h.budget, "a-2", 1 * MIB, "team-a"));
    expect(err.status).toBe(507);
    expect(err.message).toMatch(/^disk share of namespace "team-a" exceeded: this file needs \d+ more bytes, the namespace's files and fills on this node hold 2097152 bytes of its share 0\.25 of cache\.diskBudget \(2097152 bytes, identity\.diskSharePerNamespace\)/);
    expect(err.message).toContain("1 of its file(s) (2097152 bytes) are mounted by running pods");
    expect(err.message).toContain("raise identity.diskSharePerNamespace");
    expect(h.evicted).toEqual([]);
    expect(h.budget.usedBy("team-a")).toBe(2 * MIB); // the refused fill holds nothing
  });

  it("a file larger than the share is refused before any byte arrives (checkFits), naming the per-namespace override", () => {
    const h = harness("identity: {mode: required}\nnamespaces: {team-a: {diskShare: 0.125}}\ncache: {diskBudget: 8Mi}");
    const err = refusal(() => h.budget.checkFits("big", 2 * MIB, "team-a"));
    expect(err.message).toMatch(/share 0\.125 of cache\.diskBudget \(1048576 bytes, namespaces\.team-a\.diskShare\).*raise namespaces\.team-a\.diskShare/);
    expect(() => h.budget.checkFits("big", 2 * MIB, "team-b")).not.toThrow(); // the default share, 1
  });

  it("read-ahead never reserves past the share, and reservations count against it until released", () => {
    const h = harness("identity: {mode: required, diskSharePerNamespace: 0.5}\ncache: {diskBudget: 8Mi}");
    const r = h.budget.reserve("a", 0, "team-a");
    r.grow(MIB, 16 * MIB);
    expect(r.bytes).toBe(4 * MIB);
    expect(h.budget.usedBy("team-a")).toBe(4 * MIB);
    expect(refusal(() => h.budget.reserve("a2", MIB, "team-a")).status).toBe(507);
    r.release();
    expect(h.budget.usedBy("team-a")).toBe(0);
    expect(h.budget.reserve("a2", MIB, "team-a").bytes).toBe(MIB);
  });

  it("no cap for anonymous and pre-warm fills, nor with the default share of 1", () => {
    const h = harness("identity: {mode: optional}\ncache: {diskBudget: 8Mi}");
    fill(h.budget, "a-1", 7 * MIB, "team-a");
    fill(h.budget, "anon", 1 * MIB);
    expect(h.evicted).toEqual([]);
    expect(h.budget.usedBy("team-a")).toBe(7 * MIB);
  });

  it("trim evicts a namespace down to a share the reloaded policy shrank, oldest first, and leaves other namespaces alone", () => {
    const h = harness("identity: {mode: required}\ncache: {diskBudget: 8Mi}");
    for (const k of ["a-1", "b-1", "a-2", "a-3"]) fill(h.budget, k, 2 * MIB, k.startsWith("a") ? "team-a" : "team-b");
    h.policy.current = policyOf("identity: {mode: required, diskSharePerNamespace: 0.25}\ncache: {diskBudget: 8Mi}");
    expect(h.budget.trim()).toEqual(["a-1", "a-2"]); // team-b holds exactly its new share
    expect(h.budget.usedBy("team-a")).toBe(2 * MIB);
  });

  it("the policy refuses shares outside (0, 1], naming the field", () => {
    for (const [yaml, field] of [["identity: {diskSharePerNamespace: 0}", "identity.diskSharePerNamespace"], ["namespaces: {ml: {diskShare: 1.5}}", "namespaces.ml.diskShare"]] as const) {
      const r = parsePolicy(yaml);
      expect(r.ok ? [] : r.errors).toEqual([expect.stringMatching(new RegExp(`^${field.replace(/\./g, "\\.")}: must be`))]);
    }
    expect(diskShareOf(policyOf("identity: {diskSharePerNamespace: 0.3}\nnamespaces: {ml: {diskShare: 0.6}}"), "other")).toEqual({ share: 0.3, field: "identity.diskSharePerNamespace" });
  });
});
