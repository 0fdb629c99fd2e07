// Issue 9 test 1 (and 2 through it) on a real node: `deploy/default` applied with only the
// image (the project's own, built here from its Dockerfile), the policy and the cache root
// changed for the test: the cert Job completes, the node cache DaemonSet runs on its
// hostPort, the webhook Deployment runs with the generated certs, /readyz is green; a pod
// that asks for a file is mutated by the in-cluster webhook and reads the file from the
// in-cluster node cache. Uninstalling leaves no cache-io pod on the node.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { ANNOTATION, NAMESPACE_LABEL, RESERVED } from "../../src/shared/protocol.js";
import { pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { startControlPlane, type ControlPlane } from "./control-plane.js";
import { startNode, type TestNode } from "./node.js";
import { createNamespace, createPod, logs, waitPhase } from "./pods.js";
import { waitFor } from "./proc.js";
import { buildImages, buildProjectImage, k8sBinDir, nodeTestsGate } from "./requirements.js";

const gate = nodeTestsGate();
const ROOT = new URL("../../", import.meta.url).pathname;
const NS = "cache-io";
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

/** deploy/default as rendered, with the test's image, policy and cache root. */
export function testOverlay(image: string, policy: string, root: string): Obj[] {
  const rendered = execFileSync(join(k8sBinDir(), "kubectl"), ["kustomize", join(ROOT, "deploy/default")], { encoding: "utf8" });
  const objs = parseAllDocuments(rendered).map((d) => d.toJS() as Obj).filter(Boolean);
  for (const o of objs) {
    const spec = o.spec?.template?.spec ?? o.spec?.jobTemplate?.spec?.template?.spec;
    for (const c of [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])]) {
      if (String(c.image).startsWith("ghcr.io/cache-io/cache-io:")) c.image = image;
    }
    if (o.kind === "ConfigMap" && o.metadata.name === "cache-io-policy") o.data = { [Object.keys(o.data)[0]!]: policy };
    if (o.kind === "DaemonSet" && o.metadata.name === "cache-io-cache") {
      const vol = spec.volumes.find((v: Obj) => v.name === "cache-root");
      const mount = spec.containers[0].volumeMounts.find((m: Obj) => m.name === "cache-root");
      vol.hostPath.path = root;
      mount.mountPath = root;
    }
  }
  return objs;
}

describe.skipIf(!gate.run)("deploy/default on a real node", () => {
  let cp: ControlPlane;
  let node: TestNode;
  let origin: Origin;
  let dir: string;
  let manifest = "";
  const kubectl = (args: string[], input?: string) =>
    execFileSync(join(k8sBinDir(), "kubectl"), ["--kubeconfig", cp.kubeconfig, ...args], { encoding: "utf8", input, timeout: 120_000 });

  beforeAll(async () => {
    const images = buildImages();
    const project = buildProjectImage();
    dir = mkdtempSync(join(tmpdir(), "cache-io-nodes-deploy-"));
    cp = await startControlPlane(k8sBinDir());
    node = await startNode({ name: "deploy-node", index: 214, kube: cp.kube, ca: cp.ca, bin: k8sBinDir(), images: [...images.tars, project.tar], kubernetesService: true, taint: false });
    origin = await startOrigin({ host: node.ip });
    const policy = stringify({
      origins: { allow: [node.ip], allowPrivate: [node.ip] },
      fetcher: { image: images.refs.curl, imagePullPolicy: "Never", retries: 5 },
      cache: { root: join(dir, "cache-root") },
    });
    manifest = testOverlay(project.ref, policy, join(dir, "cache-root")).map((o) => stringify(o)).join("---\n");
  }, 1_800_000);

  afterAll(async () => {
    await node?.stop().catch((e) => console.error(e));
    await origin?.close();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 300_000);

  it("apply: the cert Job completes, the node cache runs on its hostPort, the webhook runs with its certs, /readyz green", async () => {
    const t0 = Date.now();
    kubectl(["apply", "--server-side", "-f", "-"], manifest);
    const get = (path: string) => cp.kube.get(path).then((r) => r.body);
    await waitFor("the cert Job to complete", async () => ((await get(`/apis/batch/v1/namespaces/${NS}/jobs/cache-io-certs`)).status?.succeeded >= 1 ? true : undefined), { timeoutMs: 300_000 });
    await waitFor("the node cache DaemonSet ready", async () => ((await get(`/apis/apps/v1/namespaces/${NS}/daemonsets/cache-io-cache`)).status?.numberReady === 1 ? true : undefined), { timeoutMs: 300_000 });
    await waitFor("the webhook Deployment available", async () => ((await get(`/apis/apps/v1/namespaces/${NS}/deployments/cache-io-webhook`)).status?.availableReplicas === 2 ? true : undefined), { timeoutMs: 300_000 });
    console.log(`deploy/default up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const ready = await fetch(`http://${node.ip}:8585/readyz`);
    expect(ready.status).toBe(200);
    const mwc = await get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/cache-io");
    expect(mwc.webhooks.every((w: Obj) => typeof w.clientConfig.caBundle === "string" && w.clientConfig.caBundle.length > 100)).toBe(true);
  }, 900_000);

  it("a pod asking for a file: mutated by the in-cluster webhook, filled by the in-cluster node cache", async () => {
    const content = pseudoRandom(3 * 2 ** 20, 7);
    const { sha256 } = origin.put("/f/model.bin", content);
    await createNamespace(cp.kube, "app", { [NAMESPACE_LABEL]: "enabled" });
    const created = await createPod(cp.kube, {
      apiVersion: "v1", kind: "Pod",
      metadata: { name: "reader", namespace: "app", annotations: { [ANNOTATION.files]: `${origin.url("/f/model.bin")}#sha256=${sha256}` } },
      spec: { nodeName: node.name, restartPolicy: "Never", containers: [{ name: "app", image: "cache-io.test/busybox:1", imagePullPolicy: "Never", command: ["sha256sum", "/cache/model.bin"] }] },
    });
    expect(created.metadata?.annotations?.[ANNOTATION.status]).toBe("injected");
    const done = await waitPhase(cp.kube, "app", "reader", ["Succeeded", "Failed"]);
    const fetchLog = await logs(cp.kube, "app", "reader", RESERVED.initContainer);
    expect(done.status?.phase, fetchLog).toBe("Succeeded");
    expect(await logs(cp.kube, "app", "reader", "app")).toContain(sha256);
    expect(fetchLog).toContain("done model.bin");
    expect(origin.gets("/f/model.bin")).toBe(1);
  }, 300_000);

  it("uninstall: deleting what was applied leaves no cache-io pod on the node", async () => {
    kubectl(["delete", "--wait=true", "--timeout=240s", "-f", "-"], manifest);
    const left = await waitFor("cache-io's pods gone", async () => {
      const pods = (await cp.kube.get(`/api/v1/pods?fieldSelector=spec.nodeName%3D${node.name}`)).body.items as Obj[];
      const ours = pods.filter((p) => p.metadata.namespace === NS);
      return ours.length === 0 ? pods : undefined;
    }, { timeoutMs: 240_000 });
    expect(left.map((p: Obj) => p.metadata.namespace)).not.toContain(NS);
  }, 300_000);

  it("the node's teardown leaves no iptables rule (hostPort's portmap chains, the kubernetes Service DNAT)", async () => {
    const n = node;
    node = undefined as unknown as TestNode;
    await n.stop();
    const nat = execFileSync("iptables-save", ["-t", "nat"], { encoding: "utf8" });
    expect(nat.match(/^.*(CNI-|KUBE-|10\.96\.0\.1).*$/gm) ?? []).toEqual([]);
  }, 300_000);
});
