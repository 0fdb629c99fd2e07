// `cache-io prepull render`: the real CLI turns a policy's image list into valid
// DaemonSets in the single-use pattern, one per architecture group.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { V1DaemonSet } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/policy/load.js";
import { renderPrepull } from "../../src/prepull/render.js";
import { parseYamlDocs, selects, validate, type Obj } from "../deploy/k8s.js";
import { limitRangeProblems } from "../support/pod-rules.js";

const run = promisify(execFile);
const POLICY = `
prepull:
  images:
    - nvcr.io/nvidia/pytorch:24.05-py3
    - gcr.io/distroless/static-debian12@sha256:${"a".repeat(64)}
    - {image: registry.example.com/arm/only:1.0, architectures: [arm64]}
    - {image: registry.example.com/x86/only:2.0, architectures: [amd64]}
    - {image: registry.example.com/two/archs:3.0, architectures: [arm64, amd64]}
  pauseImage: registry.k8s.io/pause:3.10
  imagePullSecrets: [regcred]
`;

function policyFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "prepull-")), "policy.yaml");
  writeFileSync(file, text);
  return file;
}

async function render(text: string, format: "json" | "yaml"): Promise<{ items: V1DaemonSet[]; stderr: string }> {
  const { stdout, stderr } = await run(process.execPath, ["dist/cli/main.js", "prepull", "render", "--policy", policyFile(text), "--namespace", "ops", "--image", "example.com/cache-io:1.2.3", "-o", format]);
  const items = format === "json" ? (JSON.parse(stdout) as { items: V1DaemonSet[] }).items : (parseYamlDocs(stdout) as V1DaemonSet[]);
  return { items, stderr };
}

let full: Promise<{ items: V1DaemonSet[]; stderr: string }> | undefined;
const renderFull = () => (full ??= render(POLICY, "json"));
const byName = (items: V1DaemonSet[]) => new Map(items.map((d) => [d.metadata!.name!, d]));

describe("prepull render", () => {
  it("one valid DaemonSet per architecture group, YAML and JSON alike", async () => {
    const { items } = await renderFull();
    expect(items.map((d) => d.metadata!.name).sort()).toEqual(["cache-io-prepull", "cache-io-prepull-amd64", "cache-io-prepull-amd64-arm64", "cache-io-prepull-arm64"]);
    for (const d of items) expect(validate(d as Obj)).toEqual([]);
    expect((await render(POLICY, "yaml")).items).toEqual(items);
  });

  it("copies the no-op first, runs it in each image with tiny requests, then pause", async () => {
    const ds = byName((await renderFull()).items).get("cache-io-prepull")!;
    const s = ds.spec!.template.spec!;
    const [noop, ...pulls] = s.initContainers!;
    expect(noop).toMatchObject({ image: "example.com/cache-io:1.2.3", args: ["prepull", "copy-noop", "--to", "/cache-io-prepull/noop"] });
    expect(pulls.map((c) => c.image)).toEqual(["nvcr.io/nvidia/pytorch:24.05-py3", `gcr.io/distroless/static-debian12@sha256:${"a".repeat(64)}`]);
    for (const c of pulls) {
      expect(c.command).toEqual(["/cache-io-prepull/noop"]);
      expect(c.args).toBeUndefined();
      expect(c.imagePullPolicy).toBe("IfNotPresent");
      expect(c.resources).toEqual({ requests: { cpu: "5m", memory: "4Mi" }, limits: { cpu: "20m", memory: "16Mi" } });
      expect(c.volumeMounts).toEqual([{ name: "noop", mountPath: "/cache-io-prepull", readOnly: true }]);
    }
    expect(s.containers.map((c) => c.image)).toEqual(["registry.k8s.io/pause:3.10"]);
    expect(s.volumes).toEqual([{ name: "noop", emptyDir: { sizeLimit: "16Mi" } }]);
    expect(new Set([...s.initContainers!, ...s.containers].map((c) => c.name)).size).toBe(s.initContainers!.length + 1);
    for (const c of [...s.initContainers!, ...s.containers]) {
      expect(c.securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    }
    expect(s.securityContext!.seccompProfile).toEqual({ type: "RuntimeDefault" });
    expect(s.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(s.automountServiceAccountToken).toBe(false);
    expect(s.tolerations).toEqual([{ operator: "Exists" }]);
    expect(ds.metadata!.namespace).toBe("ops");
    expect(selects(ds.spec!.selector, ds.spec!.template.metadata!.labels!)).toBe(true);
  });

  it("every container passes a LimitRange with maxLimitRequestRatio 4 for cpu and memory (a common setting)", async () => {
    const containers = (await renderFull()).items.flatMap((d) => [...d.spec!.template.spec!.initContainers!, ...d.spec!.template.spec!.containers]);
    expect(containers.length).toBeGreaterThan(8);
    expect(containers.flatMap((c) => limitRangeProblems(c, { maxLimitRequestRatio: { cpu: "4", memory: "4" } }))).toEqual([]);
  });

  it("single-arch images get a kubernetes.io/arch node selector; multi-subset ones a node affinity", async () => {
    const all = byName((await renderFull()).items);
    const arch = (name: string) => all.get(name)!.spec!.template.spec!;
    expect(arch("cache-io-prepull").nodeSelector).toEqual({ "kubernetes.io/os": "linux" });
    expect(arch("cache-io-prepull-arm64").nodeSelector).toEqual({ "kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64" });
    expect(arch("cache-io-prepull-arm64").initContainers!.map((c) => c.image).slice(1)).toEqual(["registry.example.com/arm/only:1.0"]);
    expect(arch("cache-io-prepull-amd64").nodeSelector!["kubernetes.io/arch"]).toBe("amd64");
    const terms = arch("cache-io-prepull-amd64-arm64").affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms;
    expect(terms).toEqual([{ matchExpressions: [{ key: "kubernetes.io/arch", operator: "In", values: ["amd64", "arm64"] }] }]);
  });

  it("the hash annotation changes when the image list changes, and only then", () => {
    const policy = (text: string) => {
      const r = parsePolicy(text);
      if (!r.ok) throw new Error(r.errors.join());
      return r.policy;
    };
    const hash = (text: string) => renderPrepull(policy(text))[0]!.spec!.template.metadata!.annotations!["cache.io/prepull-hash"];
    const a = hash("prepull: {images: [a.example.com/x:1]}");
    expect(hash("prepull: {images: [a.example.com/x:1]}")).toBe(a);
    expect(hash("prepull: {images: [a.example.com/x:2]}")).not.toBe(a);
    expect(hash("prepull: {images: [a.example.com/x:1], imagePullSecrets: [s]}")).not.toBe(a);
    expect(renderPrepull(policy("prepull: {images: [a.example.com/x:1]}"))[0]!.metadata!.annotations!["cache.io/prepull-hash"]).toBe(a);
  });

  it("a policy without images renders nothing and says so", async () => {
    const { items, stderr } = await render("prepull: {images: []}", "json");
    expect(items).toEqual([]);
    expect(stderr).toContain("lists no prepull.images");
  });

  it("an invalid policy fails, naming the field", async () => {
    await expect(render("prepull: {images: [{image: x.example.com/y, architectures: [sparc]}]}", "json")).rejects.toMatchObject({ stderr: expect.stringContaining("prepull.images.0") });
  });
});
