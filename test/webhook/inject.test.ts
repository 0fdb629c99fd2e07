// `cache-io inject`: every workload kind's pod template goes through the same
// decide() as the server; other objects pass through; denials exit 1 on stderr.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { injectText } from "../../src/cli/inject.js";
import { decide } from "../../src/webhook/decide.js";
import { podSites } from "../../src/webhook/workloads.js";
import { app, MODEL, testPolicy } from "../support/pod-fixtures.js";
import { podProblems } from "../support/pod-rules.js";

const policy = testPolicy('identity: {mode: "off"}');
const template = (files = MODEL) => ({ metadata: { labels: { app: "web" }, annotations: { "cache.io/files": files } }, spec: { containers: [app()] } });
const meta = (kind: string) => ({ name: kind.toLowerCase(), namespace: "ml" });

const WORKLOADS: Record<string, Record<string, unknown>> = {
  Pod: { apiVersion: "v1", kind: "Pod", ...template(), metadata: { ...meta("Pod"), annotations: { "cache.io/files": MODEL } } },
  Deployment: { apiVersion: "apps/v1", kind: "Deployment", metadata: meta("Deployment"), spec: { replicas: 2, selector: { matchLabels: { app: "web" } }, template: template() } },
  StatefulSet: { apiVersion: "apps/v1", kind: "StatefulSet", metadata: meta("StatefulSet"), spec: { serviceName: "s", selector: { matchLabels: { app: "web" } }, template: template() } },
  DaemonSet: { apiVersion: "apps/v1", kind: "DaemonSet", metadata: meta("DaemonSet"), spec: { selector: { matchLabels: { app: "web" } }, template: template() } },
  ReplicaSet: { apiVersion: "apps/v1", kind: "ReplicaSet", metadata: meta("ReplicaSet"), spec: { selector: { matchLabels: { app: "web" } }, template: template() } },
  Job: { apiVersion: "batch/v1", kind: "Job", metadata: meta("Job"), spec: { template: { ...template(), spec: { restartPolicy: "Never", containers: [app()] } } } },
  CronJob: { apiVersion: "batch/v1", kind: "CronJob", metadata: meta("CronJob"), spec: { schedule: "0 * * * *", jobTemplate: { spec: { template: template() } } } },
};
const CONFIGMAP = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "settings" }, data: { "cache.io/files": MODEL } };

/** The pod (template) inside each object of a document stream. */
const podsIn = (docs: unknown[]) => docs.flatMap(podSites).map((s) => s.pod);
const yamlDocs = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as unknown);
const toYaml = (docs: unknown[]) => docs.map((d) => stringify(d)).join("---\n");

describe("inject on each workload kind", () => {
  for (const [kind, obj] of Object.entries(WORKLOADS)) {
    it(`${kind}: its pod template is injected exactly as decide() injects it`, () => {
      const r = injectText(JSON.stringify(obj), policy, { namespace: "default" });
      expect(r).toMatchObject({ ok: true, stderr: [] });
      const [pod] = podsIn([JSON.parse(r.stdout)]);
      const [original] = podsIn([structuredClone(obj)]);
      const d = decide(original!, policy, { namespace: "ml", copyOnly: false });
      expect(d.action).toBe("mutate");
      if (d.action !== "mutate") return;
      expect(pod?.spec).toEqual(d.pod.spec);
      expect(pod?.metadata).toEqual(d.pod.metadata);
      expect(podProblems(pod!)).toEqual([]);
    });
  }

  it("injects every item of a v1 List", () => {
    const list = { apiVersion: "v1", kind: "List", items: [WORKLOADS.Deployment, CONFIGMAP, WORKLOADS.Job] };
    const out = JSON.parse(injectText(JSON.stringify(list), policy, {}).stdout) as { items: unknown[] };
    expect(podsIn(out.items).map((p) => p.metadata?.annotations?.["cache.io/status"])).toEqual(["injected", "injected"]);
    expect(out.items[1]).toEqual(CONFIGMAP);
  });
});

describe("inject on multi-document YAML", () => {
  const text = toYaml([WORKLOADS.Deployment, WORKLOADS.CronJob, CONFIGMAP]);

  it("accepts flow-style YAML documents (which start like JSON)", () => {
    const flow = [WORKLOADS.Deployment, CONFIGMAP].map((d) => JSON.stringify(d)).join("\n---\n");
    const r = injectText(flow, policy, {});
    expect(r.ok).toBe(true);
    expect(podsIn(yamlDocs(r.stdout))).toHaveLength(1);
  });

  it("mutates the Deployment and the CronJob, passes the ConfigMap through, prints YAML", () => {
    const r = injectText(text, policy, {});
    expect(r.ok).toBe(true);
    const docs = yamlDocs(r.stdout);
    expect(docs).toHaveLength(3);
    expect(docs[2]).toEqual(CONFIGMAP);
    for (const pod of podsIn(docs)) expect(pod.spec?.initContainers?.[0]?.name).toBe("cache-io-fetch");
  });

  it("resolves per-namespace policy from the object's namespace, else from --namespace", () => {
    const p = testPolicy('identity: {mode: "off"}\nnamespaces: {ml: {mode: copy}, team: {mountPath: /team}}');
    const withNs = podsIn(yamlDocs(injectText(text, p, { namespace: "team" }).stdout));
    expect(withNs[0]?.spec?.volumes).toEqual([{ name: "cache-io-files", emptyDir: {} }]); // metadata.namespace: ml
    const noNs = { ...WORKLOADS.Deployment, metadata: { name: "d" } };
    const [pod] = podsIn([JSON.parse(injectText(JSON.stringify(noNs), p, { namespace: "team" }).stdout)]);
    expect(pod?.spec?.containers[0]?.volumeMounts?.[0]?.mountPath).toBe("/team/llama-7b.bin");
  });

  it("refuses the whole input when any object is denied, naming that object", () => {
    const bad = { ...WORKLOADS.StatefulSet, spec: { ...(WORKLOADS.StatefulSet!.spec as object), template: template("ftp://x/y") } };
    const r = injectText(`${text}---\n${stringify(bad)}`, policy, {});
    expect(r.ok).toBe(false);
    expect(r.stdout).toBe("");
    expect(r.stderr).toEqual([expect.stringMatching(/^StatefulSet\/statefulset: denied: cache.io\/files entry 1 \("ftp:\/\/x\/y"\): scheme "ftp"/)]);
  });
});

describe("the real process: node dist/cli/main.js inject", () => {
  const dir = mkdtempSync(join(tmpdir(), "cache-io-inject-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const cli = (args: string[], input?: string) =>
    spawnSync(process.execPath, ["dist/cli/main.js", "inject", ...args], { input, encoding: "utf8", timeout: 20_000 });
  const multi = toYaml([WORKLOADS.Deployment, WORKLOADS.CronJob, CONFIGMAP]);

  it("reads a YAML file and prints the injected YAML, exit 0", () => {
    const r = cli(["-f", write("multi.yaml", multi)]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(podsIn(yamlDocs(r.stdout)).map((p: V1Pod) => p.metadata?.annotations?.["cache.io/status"])).toEqual(["injected", "injected"]);
  });

  it("reads standard input with -f - and prints JSON with -o json", () => {
    const r = cli(["-f", "-", "-o", "json"], JSON.stringify(WORKLOADS.Pod));
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as V1Pod).spec?.initContainers?.[0]?.name).toBe("cache-io-fetch");
  });

  it("uses --copy-only and a policy file, with warnings on stderr", () => {
    const policyFile = write("policy.yaml", 'identity: {mode: "off"}\ncache: {port: 9999}\n');
    const pod = { ...WORKLOADS.Pod, metadata: { name: "p", annotations: { "cache.io/files": MODEL, "cache.io/mode": "mount" } } };
    const r = cli(["-f", "-", "-o", "json", "--copy-only", "-p", policyFile], JSON.stringify(pod));
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^Pod\/p: warning: cache.io\/mode "mount" was replaced by "copy"/);
    const out = JSON.parse(r.stdout) as V1Pod;
    expect(out.spec?.volumes).toEqual([{ name: "cache-io-files", emptyDir: {} }]);
    expect(out.spec?.initContainers?.[0]?.args?.at(-1)).toMatch(/^http:\/\/\$\(NODE_IP\):9999\/v1\/objects\//);
  });

  it("prints the denial naming the object on stderr and exits 1", () => {
    const bad = { ...WORKLOADS.Deployment, spec: { ...(WORKLOADS.Deployment!.spec as object), template: template("https://a.example.com/x#name=../../etc/passwd") } };
    const r = cli(["-f", write("bad.yaml", `${multi}---\n${stringify(bad)}`)]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain('Deployment/deployment: denied: cache.io/files entry 1 ("https://a.example.com/x#name=../../etc/passwd"): file name "../../etc/passwd" is not allowed');
  });

  it("exits 1 with a message on input that is not YAML", () => {
    const r = cli(["-f", "-"], "a: [1, 2\n");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^cache-io: the input is not valid YAML or JSON/);
  });
});
