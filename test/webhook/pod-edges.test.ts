// Pods the webhook used to get wrong: Windows pods (left alone with a warning), mistakes
// that passed silently (annotation typos, a "False" opt-out, a comma inside a URL), an
// existing NODE_IP anywhere in env, and fetcher resources that must pass LimitRanges.
import { describe, expect, it } from "vitest";
import { DEFAULT_FETCHER_RESOURCES } from "../../src/policy/schema.js";
import { closestKey, editDistance } from "../../src/webhook/annotation-keys.js";
import { admit, app, fetcherOf, files, makePod, MODEL, patchOf, responseOf, testPolicy } from "../support/pod-fixtures.js";
import { limitRangeProblems, parseQuantity, podProblems } from "../support/pod-rules.js";

const policy = testPolicy();

describe("Windows pods", () => {
  const windowsPods = {
    "spec.os.name: windows": makePod(files(MODEL), { os: { name: "windows" }, containers: [app()] }),
    "nodeSelector kubernetes.io/os: windows": makePod(files(MODEL), { nodeSelector: { "kubernetes.io/os": "windows" }, containers: [app()] }),
  };
  for (const [name, pod] of Object.entries(windowsPods)) {
    it(`${name}: admitted unchanged with a warning (windows-pod)`, () => {
      const { result, decision } = admit(pod, policy);
      expect(decision).toMatchObject({ action: "skip", reason: "windows-pod" });
      expect(result.outcome).toBe("warned");
      expect(patchOf(result)).toBeUndefined();
      const warnings = responseOf(result).warnings as string[];
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^cache.io did not inject this pod: .*windows.*Linux only/);
    });
  }

  it("is skipped, not denied, also when its annotations are invalid", () => {
    const pod = makePod(files("ftp://x/y"), { os: { name: "windows" }, containers: [app()] });
    expect(admit(pod, policy).decision).toMatchObject({ action: "skip", reason: "windows-pod" });
  });

  it("a Linux pod (spec.os.name: linux, nodeSelector linux) is injected", () => {
    const pod = makePod(files(MODEL), { os: { name: "linux" }, nodeSelector: { "kubernetes.io/os": "linux" }, containers: [app()] });
    expect(admit(pod, policy).decision.action).toBe("mutate");
  });
});

describe("annotation mistakes are answered with warnings", () => {
  it("cache.io/mountpath: warns naming the key and cache.io/mount-path; the files land at the default", () => {
    const { result, after } = admit(makePod(files(MODEL, { "cache.io/mountpath": "/models" })), policy);
    expect(result.outcome).toBe("patched");
    expect(responseOf(result).warnings).toEqual(['annotation "cache.io/mountpath" is not a cache.io annotation and is ignored; did you mean "cache.io/mount-path"?']);
    expect(after.spec?.containers[0]?.volumeMounts?.[0]?.mountPath).toBe("/cache/llama-7b.bin");
  });

  it("an unknown key far from every known one: warns listing the known keys", () => {
    const { result } = admit(makePod(files(MODEL, { "cache.io/priority": "high" })), policy);
    const [w] = responseOf(result).warnings as string[];
    expect(w).toContain('"cache.io/priority" is not a cache.io annotation');
    expect(w).toContain('"cache.io/files", "cache.io/mount-path", "cache.io/mode", "cache.io/containers", "cache.io/inject"');
  });

  it("warns once: not again when the injected pod is reviewed again (reinvocation)", () => {
    const first = admit(makePod(files(MODEL, { "cache.io/mountpath": "/models" })), policy);
    expect(responseOf(first.result).warnings).toHaveLength(1);
    expect(responseOf(admit(first.after, policy).result)).not.toHaveProperty("warnings");
  });

  it("warns on a pod that is opted out or has no cache.io/files (as `cache-io inject` sees it)", () => {
    expect(admit(makePod({ "cache.io/file": MODEL }), policy).decision).toMatchObject({ reason: "not-annotated", warnings: [expect.stringContaining('did you mean "cache.io/files"?')] });
  });

  it("warns on a denial too, beside the denial's message", () => {
    const { result } = admit(makePod(files("ftp://x/y", { "cache.io/contianers": "app" })), policy);
    expect(responseOf(result)).toMatchObject({ allowed: false, warnings: [expect.stringContaining('did you mean "cache.io/containers"?')] });
  });

  it("suggests by edit distance and bounds the work on huge keys", () => {
    expect(editDistance("mountpath", "mount-path")).toBe(1);
    expect(closestKey("cache.io/file")).toBe("cache.io/files");
    expect(closestKey("cache.io/modes")).toBe("cache.io/mode");
    expect(closestKey("cache.io/" + "x".repeat(100_000))).toBeUndefined();
  });

  it.each(["False", "FALSE", " false ", "false\n"])("cache.io/inject: %j opts out", (value) => {
    const { result, decision } = admit(makePod(files(MODEL, { "cache.io/inject": value })), policy);
    expect(decision).toEqual({ action: "skip", reason: "opted-out", warnings: [] });
    expect(patchOf(result)).toBeUndefined();
  });

  it.each(["no", "0", "disabled"])("cache.io/inject: %j is no opt-out: injected, with a warning saying so", (value) => {
    const { result } = admit(makePod(files(MODEL, { "cache.io/inject": value })), policy);
    expect(result.outcome).toBe("patched");
    expect(responseOf(result).warnings).toEqual([`cache.io/inject ${JSON.stringify(value)} is not an opt-out, so the pod was injected; set it to "false" to opt out.`]);
  });

  it("cache.io/inject: true injects without a warning", () => {
    expect(responseOf(admit(makePod(files(MODEL, { "cache.io/inject": "true" })), policy).result)).not.toHaveProperty("warnings");
  });

  it("a URL with a comma is split; the denial points to the JSON-array form", () => {
    const { decision } = admit(makePod(files("https://data.example.com/export?cols=a,b")), policy);
    expect(decision.action).toBe("deny");
    if (decision.action !== "deny") return;
    expect(decision.message).toContain('cache.io/files entry 2 ("b"): is not a URL');
    expect(decision.message).toContain("cut from a line at a comma");
    expect(decision.message).toContain('[{"url": "https://example.com/a,b.bin"}]');
  });

  it("the JSON-array form keeps the comma in the URL", () => {
    const { decision } = admit(makePod(files('[{"url": "https://data.example.com/export?cols=a,b", "name": "export.csv"}]')), policy);
    expect(decision.action).toBe("mutate");
  });

  it("a plain entry that is not a URL gets no comma hint", () => {
    const { decision } = admit(makePod(files("models/llama.bin")), policy);
    expect(decision.action === "deny" && decision.message).not.toContain("comma");
  });
});

describe("NODE_IP", () => {
  it("an existing NODE_IP that is not the first env entry is left alone, and no second one is added", () => {
    const env = [{ name: "A", value: "1" }, { name: "NODE_IP", value: "10.0.0.9" }, { name: "B", value: "$(NODE_IP)" }];
    const { after } = admit(makePod(files(MODEL), { containers: [app("app", { env })] }), policy);
    expect(after.spec?.containers[0]?.env).toEqual(env);
    expect(podProblems(after)).toEqual([]);
  });
});

describe("fetcher resources", () => {
  it("parses quantities the way Kubernetes does", () => {
    expect(parseQuantity("250m")).toBe(0.25);
    expect(parseQuantity("1")).toBe(1);
    expect(parseQuantity("64Mi")).toBe(64 * 2 ** 20);
    expect(parseQuantity("1.5Gi")).toBe(1.5 * 2 ** 30);
    expect(parseQuantity("1e3")).toBe(1000);
    expect(parseQuantity("32M")).toBe(32e6);
    expect(() => parseQuantity("1 Gi")).toThrow();
  });

  it("the default passes a LimitRange with maxLimitRequestRatio 4 for cpu and memory (and would fail one of 3 for cpu)", () => {
    const fetcher = fetcherOf(admit(makePod(files(MODEL)), policy).after)!;
    expect(fetcher.resources).toEqual(DEFAULT_FETCHER_RESOURCES);
    expect(limitRangeProblems(fetcher, { maxLimitRequestRatio: { cpu: "4", memory: "4" } })).toEqual([]);
    // The check can fail: the default cpu ratio is exactly 4.
    expect(limitRangeProblems(fetcher, { maxLimitRequestRatio: { cpu: "3" } })).toHaveLength(1);
  });

  it("a namespace's fetcher.resources override lands in its pods' init container, other namespaces keep the default", () => {
    const p = testPolicy("namespaces: {tight: {fetcher: {resources: {requests: {cpu: 100m, memory: 16Mi}, limits: {cpu: 200m, memory: 32Mi}}}}}");
    const pod = makePod(files(MODEL));
    const tight = fetcherOf(admit(pod, p, { namespace: "tight" }).after)!;
    expect(tight.resources).toEqual({ requests: { cpu: "100m", memory: "16Mi" }, limits: { cpu: "200m", memory: "32Mi" } });
    expect(limitRangeProblems(tight, { maxLimitRequestRatio: { cpu: "2", memory: "2" }, max: { cpu: "250m", memory: "32Mi" } })).toEqual([]);
    expect(fetcherOf(admit(pod, p, { namespace: "other" }).after)!.resources).toEqual(DEFAULT_FETCHER_RESOURCES);
  });
});
