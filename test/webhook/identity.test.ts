// The init container's identity: with identity.mode optional/required the pod gets a
// projected ServiceAccount token for the node cache's audience, mounted read-only in the
// init container only, and curl sends it on every request without a shell; off adds none.
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/policy/load.js";
import { TOKEN_AUDIENCE, TOKEN_DIR, TOKEN_PATH } from "../../src/shared/identity.js";
import { MODEL, SHA, admit, app, fetcherOf, files, makePod, testPolicy } from "../support/pod-fixtures.js";

const annotated = (more: Record<string, string> = {}) => makePod(files(`${MODEL}#sha256=${SHA}`, more), { containers: [app("app"), app("side")] });

describe("identity.mode required", () => {
  const policy = testPolicy("identity: {mode: required, tokenExpirationSeconds: 900}");

  for (const mode of ["mount", "copy"] as const) {
    it(`${mode} mode: a projected token volume with the node cache's audience and the policy's expiry`, () => {
      const { after } = admit(annotated({ "cache.io/mode": mode }), policy);
      const token = after.spec!.volumes!.filter((v) => v.projected);
      expect(token).toEqual([{
        name: "cache-io-token",
        projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: 900, path: "token" } }] },
      }]);
      expect(fetcherOf(after)!.volumeMounts).toContainEqual({ name: "cache-io-token", mountPath: TOKEN_DIR, readOnly: true });
      for (const c of after.spec!.containers) expect((c.volumeMounts ?? []).map((m) => m.name)).not.toContain("cache-io-token");
    });
  }

  it("curl reads the token file into a variable and expands it into the Authorization header, before every URL", () => {
    const { after } = admit(annotated(), policy);
    const f = fetcherOf(after)!;
    expect(f.command).toEqual(["curl"]);
    const args = f.args!;
    const v = args.indexOf("--variable");
    expect(args.slice(v, v + 2)).toEqual(["--variable", `TOKEN@${TOKEN_PATH}`]);
    expect(args.filter((a) => a === "--variable")).toHaveLength(1); // global: read once
    expect(v).toBeLessThan(args.findIndex((a) => a.startsWith("http://")));
    expect(args[0]).toBe("-q");
    // The header is an option of each group of transfers: copy mode's --next group of copies has it too.
    const copy = fetcherOf(admit(annotated({ "cache.io/mode": "copy" }), policy).after)!.args!;
    const groups = copy.join("\n").split("\n--next\n").map((g) => g.split("\n"));
    expect(groups).toHaveLength(2);
    for (const g of groups) {
      const h = g.indexOf("--expand-header");
      expect(g[h + 1]).toBe("Authorization: Bearer {{TOKEN:trim}}");
      expect(h).toBeLessThan(g.findIndex((a) => a.startsWith("http://")));
    }
    expect(copy.filter((a) => a === "--variable")).toHaveLength(1);
    // nothing the kubelet would expand but NODE_IP
    expect(args.join(" ").match(/\$\(([^)]*)\)/g)?.every((m) => m === "$(NODE_IP)")).toBe(true);
  });
});

describe("identity.mode", () => {
  it("optional sends the token too (rollout: the cache checks tokens it gets)", () => {
    const { after } = admit(annotated(), testPolicy("identity: {mode: optional}"));
    expect(fetcherOf(after)!.args).toContain("--expand-header");
    expect(after.spec!.volumes!.some((v) => v.name === "cache-io-token")).toBe(true);
  });

  it("required is the default: the token volume, its mount and the curl variable are added", () => {
    const { after } = admit(annotated(), testPolicy());
    expect(after.spec!.volumes!.some((v) => v.name === "cache-io-token" && v.projected)).toBe(true);
    expect(fetcherOf(after)!.args).toContain("--expand-header");
  });

  it("off adds no token volume, mount or curl variable", () => {
    const { after } = admit(annotated(), testPolicy('identity: {mode: "off"}'));
    expect(after.spec!.volumes!.some((v) => v.projected)).toBe(false);
    expect(fetcherOf(after)!.args).not.toContain("--variable");
    expect(fetcherOf(after)!.volumeMounts ?? []).toEqual([]);
  });

  it("the default expiry is 600 s; shorter is refused naming the field and the API server's minimum", () => {
    const { after } = admit(annotated(), testPolicy("identity: {mode: required}"));
    expect(after.spec!.volumes!.find((v) => v.projected)!.projected!.sources![0]!.serviceAccountToken!.expirationSeconds).toBe(600);
    const r = parsePolicy("identity: {tokenExpirationSeconds: 599}");
    expect(r.ok ? [] : r.errors).toEqual([expect.stringMatching(/^identity\.tokenExpirationSeconds: must be at least 600 \(the API server/)]);
    const bad = parsePolicy("identity: {mode: on}");
    expect(bad.ok ? [] : bad.errors[0]).toMatch(/^identity\.mode: /);
  });

  it("a pod that already has a volume named cache-io-token is refused", () => {
    const pod = makePod(files(MODEL), { containers: [app()], volumes: [{ name: "cache-io-token", emptyDir: {} }] });
    const { decision } = admit(pod, testPolicy("identity: {mode: required}"));
    expect(decision.action).toBe("deny");
    expect(decision.action === "deny" && decision.message).toMatch(/cache-io-token.*reserved/);
  });
});
