// The rendered MutatingWebhookConfiguration: which namespaces and pods kube-apiserver
// sends, on which path, with which failure and reinvocation behaviour. The CEL match
// conditions are evaluated with a CEL implementation on real pod shapes.
import { parse } from "@marcbachmann/cel-js";
import type { V1MutatingWebhook } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { find, kustomize, selects } from "./k8s.js";

let webhooks: V1MutatingWebhook[];
beforeAll(async () => {
  webhooks = find(await kustomize("deploy/default"), "MutatingWebhookConfiguration", "cache-io").webhooks;
});

const PSA = "pod-security.kubernetes.io/enforce";
function ns(name: string, labels: Record<string, string>): Record<string, string> {
  return { "kubernetes.io/metadata.name": name, ...labels };
}
const matching = (labels: Record<string, string>) => webhooks.filter((w) => selects(w.namespaceSelector!, labels));

describe("namespaceSelector", () => {
  it.each([
    ["no Pod Security label", {}, "/mutate"],
    ["privileged", { [PSA]: "privileged" }, "/mutate"],
    ["baseline", { [PSA]: "baseline" }, "/mutate/copy"],
    ["restricted", { [PSA]: "restricted" }, "/mutate/copy"],
    ["a value Pod Security would read as restricted", { [PSA]: "Restricted " }, "/mutate/copy"],
  ])("an opted-in namespace with %s matches exactly one entry, on %s", (_what, psa, path) => {
    const hits = matching(ns("team-a", { "cache.io/inject": "enabled", ...psa }));
    expect(hits).toHaveLength(1);
    expect(hits[0]!.clientConfig.service!.path).toBe(path);
  });

  it.each([
    ["not opted in", ns("team-a", {})],
    ["opted in with another value", ns("team-a", { "cache.io/inject": "true" })],
    ["kube-system, even if labelled", ns("kube-system", { "cache.io/inject": "enabled" })],
    ["cache-io's own namespace, even if labelled", ns("cache-io", { "cache.io/inject": "enabled", [PSA]: "privileged" })],
  ])("%s: no entry matches", (_what, labels) => {
    expect(matching(labels)).toEqual([]);
  });
});

describe("matchConditions (CEL)", () => {
  const pod = (annotations?: Record<string, string>) => ({ object: { apiVersion: "v1", kind: "Pod", metadata: { name: "p", ...(annotations ? { annotations } : {}) }, spec: { containers: [{ name: "app" }] } } });
  const sent = (w: V1MutatingWebhook, input: ReturnType<typeof pod>) => w.matchConditions!.every((c) => parse(c.expression)(input) === true);

  it.each([
    ["carries cache.io/files", pod({ "cache.io/files": "https://models.example.com/m.bin" }), true],
    ["carries cache.io/files and cache.io/inject: \"true\"", pod({ "cache.io/files": "x", "cache.io/inject": "true" }), true],
    ["has other annotations only", pod({ "example.com/x": "y" }), false],
    ["has no annotations at all", pod(), false],
    ["has an empty annotations map", pod({}), false],
    ["opted out with cache.io/inject: \"false\"", pod({ "cache.io/files": "x", "cache.io/inject": "false" }), false],
  ])("a pod that %s is sent: %s", (_what, input, expected) => {
    for (const w of webhooks) expect(sent(w, input), w.name).toBe(expected);
  });

  it("every expression evaluates to a bool (the API server rejects other types)", () => {
    for (const w of webhooks) for (const c of w.matchConditions!) expect(typeof parse(c.expression)(pod())).toBe("boolean");
  });
});

describe("each entry", () => {
  it("is v1, side-effect free, short, fails closed, reinvokes, and sees only pod CREATE", () => {
    expect(webhooks.length).toBe(3);
    for (const w of webhooks) {
      expect(w).toMatchObject({ admissionReviewVersions: ["v1"], sideEffects: "None", failurePolicy: "Fail", reinvocationPolicy: "IfNeeded" });
      expect(w.timeoutSeconds).toBeLessThanOrEqual(5);
      expect(w.rules).toEqual([{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"], scope: "Namespaced" }]);
      expect(w.clientConfig.service).toMatchObject({ name: "cache-io-webhook", namespace: "cache-io", port: 443 });
      expect(w.clientConfig.caBundle).toBeUndefined(); // set in the cluster by the cert Job or cainjector
    }
    expect(new Set(webhooks.map((w) => w.name)).size).toBe(3);
  });
});
