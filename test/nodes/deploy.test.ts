// Issue 9 tests 1, 4, 5 and 6 on two real nodes: `deploy/default` applied with only the
// image (the project's own, built here from its Dockerfile), the policy and the cache root
// changed for the test: the cert Job completes, the node cache DaemonSet runs on its
// hostPort on every node, the webhook Deployment runs with the generated certs, /readyz is
// green; a pod that asks for a file is mutated by the in-cluster webhook and reads the
// file from the in-cluster node cache, undisturbed while that cache pod is deleted and
// recreated; the pre-pull controller's DaemonSet runs each policy image's no-op and
// settles in pause on every node; the cluster tier: a file one node's cache owns is fetched
// from the origin once for pods on both nodes. Uninstalling leaves no cache-io pod and no rule.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { rank } from "../../src/cache/peers/rendezvous.js";
import { ANNOTATION, NAMESPACE_LABEL, RESERVED, cacheKey } from "../../src/shared/protocol.js";
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

/**
 * A test overlay of deploy/default written the way docs/INSTALL.md tells users to: one
 * `images:` entry for the local image, the policy ConfigMap replaced, the node cache's
 * cache-root hostPath (mounted at the same path) patched to the test's root. Rendered by
 * `kubectl kustomize`, so the overlay mechanics themselves are under test.
 */
export function testOverlay(dir: string, image: string, policy: string, root: string): string {
  const overlay = join(dir, "overlay");
  mkdirSync(overlay, { recursive: true });
  writeFileSync(join(overlay, "policy.yaml"), policy);
  const [name, tag] = image.split(":");
  writeFileSync(join(overlay, "kustomization.yaml"), stringify({
    apiVersion: "kustomize.config.k8s.io/v1beta1",
    kind: "Kustomization",
    resources: [relative(overlay, join(ROOT, "deploy/default"))],
    images: [{ name: "ghcr.io/cache-io/cache-io", newName: name, newTag: tag }],
    configMapGenerator: [{ name: "cache-io-policy", namespace: NS, behavior: "replace", files: ["policy.yaml"], options: { disableNameSuffixHash: true } }],
    patches: [{
      target: { kind: "DaemonSet", name: "cache-io-cache" },
      patch: stringify([
        { op: "replace", path: "/spec/template/spec/volumes/0/hostPath/path", value: root },
        { op: "replace", path: "/spec/template/spec/containers/0/volumeMounts/0/mountPath", value: root },
      ]),
    }],
  }));
  const rendered = execFileSync(join(k8sBinDir(), "kubectl"), ["kustomize", overlay], { encoding: "utf8" });
  const objs = parseAllDocuments(rendered).map((d) => d.toJS() as Obj).filter(Boolean);
  const ds = objs.find((o) => o.kind === "DaemonSet" && o.metadata.name === "cache-io-cache")!;
  // The patch's indexes are the ones INSTALL.md names: check they hit cache-root.
  if (ds.spec.template.spec.volumes[0].name !== "cache-root") throw new Error("deploy/default's node cache DaemonSet: volumes[0] is not cache-root (docs/INSTALL.md's patch example is stale)");
  return rendered;
}

describe.skipIf(!gate.run)("deploy/default on a real node", () => {
  let cp: ControlPlane;
  let nodes: TestNode[] = [];
  let node: TestNode; // the first: the file tests run there
  let origin: Origin;
  let dir: string;
  const kubectl = (args: string[], input?: string): string =>
    execFileSync(join(k8sBinDir(), "kubectl"), ["--kubeconfig", cp.kubeconfig, ...args], { encoding: "utf8", input, timeout: 120_000 });

  beforeAll(async () => {
    const images = buildImages();
    const project = buildProjectImage();
    dir = mkdtempSync(join(tmpdir(), "cache-io-nodes-deploy-"));
    cp = await startControlPlane(k8sBinDir());
    for (const i of [214, 215]) {
      nodes.push(await startNode({ name: `deploy-node-${i}`, index: i, kube: cp.kube, ca: cp.ca, bin: k8sBinDir(), images: [...images.tars, project.tar], kubernetesService: true, taint: false }));
    }
    node = nodes[0]!;
    origin = await startOrigin({ host: node.ip });
    const policy = stringify({
      origins: { allow: [node.ip], allowPrivate: [node.ip] },
      fetcher: { image: images.refs.curl, imagePullPolicy: "Never", retries: 5 },
      cache: { root: join(dir, "cache-root") },
      prepull: { images: [images.refs.curl, images.refs.busybox] },
    });
    testOverlay(dir, project.ref, policy, join(dir, "cache-root"));
  }, 1_800_000);

  afterAll(async () => {
    for (const n of nodes) await n.stop().catch((e) => console.error(e));
    await origin?.close();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 300_000);

  it("apply: the cert Job completes, the node cache runs on its hostPort, the webhook runs with its certs, /readyz green", async () => {
    const t0 = Date.now();
    kubectl(["apply", "-k", join(dir, "overlay")]); // as docs/INSTALL.md, with the test overlay
    const get = (path: string) => cp.kube.get(path).then((r) => r.body);
    await waitFor("the cert Job to complete", async () => ((await get(`/apis/batch/v1/namespaces/${NS}/jobs/cache-io-certs`)).status?.succeeded >= 1 ? true : undefined), { timeoutMs: 300_000 });
    await waitFor("the node cache DaemonSet ready", async () => ((await get(`/apis/apps/v1/namespaces/${NS}/daemonsets/cache-io-cache`)).status?.numberReady === nodes.length ? true : undefined), { timeoutMs: 300_000 });
    await waitFor("the webhook Deployment available", async () => ((await get(`/apis/apps/v1/namespaces/${NS}/deployments/cache-io-webhook`)).status?.availableReplicas === 2 ? true : undefined), { timeoutMs: 300_000 });
    console.log(`deploy/default up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    for (const n of nodes) {
      const ready = await fetch(`http://${n.ip}:8585/readyz`); // the hostPort on each node's IP
      expect(ready.status, n.name).toBe(200);
    }
    const mwc = await get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/cache-io");
    expect(mwc.webhooks.every((w: Obj) => typeof w.clientConfig.caBundle === "string" && w.clientConfig.caBundle.length > 100)).toBe(true);
    // INSTALL.md's last install step, from the host against the real cluster
    await createNamespace(cp.kube, "app", { [NAMESPACE_LABEL]: "enabled" });
    const check = spawnSync(process.execPath, [join(ROOT, "dist/cli/main.js"), "check", "--namespace", NS], { encoding: "utf8", env: { ...process.env, KUBECONFIG: cp.kubeconfig }, timeout: 120_000 });
    expect(check.status, `${check.stdout}\n${check.stderr}`).toBe(0);
  }, 900_000);

  it("a pod asking for a file: mutated by the in-cluster webhook, filled by the in-cluster node cache", async () => {
    const content = pseudoRandom(3 * 2 ** 20, 7);
    const { sha256 } = origin.put("/f/model.bin", content);
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

  it("the node cache pod deleted while an app reads its mounted file: every read is unaffected", async () => {
    const content = pseudoRandom(4 * 2 ** 20, 8);
    const { sha256 } = origin.put("/f/steady.bin", content);
    // ~40 s of reads, 5 a second; the cache pod is replaced in the middle.
    const loop = "i=0; while [ $i -lt 200 ]; do sha256sum /cache/steady.bin || echo READ-FAILED; i=$((i+1)); sleep 0.2; done";
    await createPod(cp.kube, {
      apiVersion: "v1", kind: "Pod",
      metadata: { name: "steady", namespace: "app", annotations: { [ANNOTATION.files]: `${origin.url("/f/steady.bin")}#sha256=${sha256}` } },
      spec: { nodeName: node.name, restartPolicy: "Never", terminationGracePeriodSeconds: 1, containers: [{ name: "app", image: "cache-io.test/busybox:1", imagePullPolicy: "Never", command: ["/bin/sh", "-c", loop] }] },
    });
    await waitPhase(cp.kube, "app", "steady", ["Running"]);
    const cachePod = async () => ((await cp.kube.get(`/api/v1/namespaces/${NS}/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dnode-cache&fieldSelector=spec.nodeName%3D${node.name}`)).body.items as Obj[])[0];
    const before = await cachePod();
    await cp.kube.must("DELETE", `/api/v1/namespaces/${NS}/pods/${before!.metadata.name}`);
    const after = await waitFor("a new node cache pod Ready", async () => {
      const p = await cachePod();
      const ready = p?.status?.conditions?.find((c: Obj) => c.type === "Ready")?.status === "True";
      return p && p.metadata.uid !== before!.metadata.uid && ready ? p : undefined;
    }, { timeoutMs: 180_000 });
    expect(after.metadata.uid).not.toBe(before!.metadata.uid);
    const running = await cp.kube.get("/api/v1/namespaces/app/pods/steady");
    expect(running.body.status.phase).toBe("Running"); // the cache came back while the reads went on
    const done = await waitPhase(cp.kube, "app", "steady", ["Succeeded", "Failed"]);
    const out = await logs(cp.kube, "app", "steady", "app");
    expect(done.status?.phase).toBe("Succeeded");
    const lines = out.trim().split("\n");
    expect(lines).toHaveLength(200);
    expect(lines.every((l) => l.startsWith(sha256))).toBe(true);
  }, 300_000);

  it("the cluster tier: pods on both nodes, a file the other node's cache owns: one origin GET, the bytes cross between the caches", async () => {
    const [here, owner] = [nodes[0]!, nodes[1]!];
    // The peers as the caches see them: the EndpointSlice controller's slice of the headless Service, both nodes ready.
    await waitFor("both node caches ready in the peers' EndpointSlice", async () => {
      const slices = (await cp.kube.get(`/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dcache-io-node-cache-peers`)).body.items as Obj[];
      const ready = slices.flatMap((sl) => (sl.endpoints ?? []) as Obj[]).filter((e) => e.conditions?.ready !== false).map((e) => e.nodeName);
      return nodes.every((n) => ready.includes(n.name)) ? true : undefined;
    }, { timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 3000)); // the caches' watches see the slice
    let path = "";
    for (let i = 0; !path; i++) if (rank(cacheKey(origin.url(`/f/shared-${i}.bin`)), nodes.map((n) => ({ node: n.name })))[0]!.node === owner.name) path = `/f/shared-${i}.bin`;
    const { sha256 } = origin.put(path, pseudoRandom(8 * 2 ** 20, 12));
    origin.rateFor.set(path, 4 * 2 ** 20); // a 2 s fill: the pods overlap it
    for (const n of [here, owner]) {
      await createPod(cp.kube, {
        apiVersion: "v1", kind: "Pod",
        metadata: { name: `tier-${n.name}`, namespace: "app", annotations: { [ANNOTATION.files]: `${origin.url(path)}#sha256=${sha256}` } },
        spec: { nodeName: n.name, restartPolicy: "Never", containers: [{ name: "app", image: "cache-io.test/busybox:1", imagePullPolicy: "Never", command: ["sha256sum", `/cache/${path.split("/").at(-1)}`] }] },
      });
    }
    for (const n of [here, owner]) {
      const done = await waitPhase(cp.kube, "app", `tier-${n.name}`, ["Succeeded", "Failed"]);
      expect(done.status?.phase, await logs(cp.kube, "app", `tier-${n.name}`, RESERVED.initContainer)).toBe("Succeeded");
      expect(await logs(cp.kube, "app", `tier-${n.name}`, "app")).toContain(sha256);
    }
    expect(origin.gets(path)).toBe(1);
    const metric = async (n: TestNode, line: RegExp) => Number(line.exec(await (await fetch(`http://${n.ip}:8585/metrics`)).text())?.[1] ?? 0);
    expect(await metric(here, /^cache_io_cache_fill_sources_total\{source="peer"\} (\d+)/m)).toBeGreaterThanOrEqual(1);
    expect(await metric(owner, /^cache_io_cache_peer_bytes_total\{direction="out"\} (\d+)/m)).toBeGreaterThanOrEqual(8 * 2 ** 20);
  }, 300_000);

  it("pre-pull: the controller's DaemonSet runs each policy image's no-op and settles in pause on every node", async () => {
    const pods = await waitFor("the pre-pull DaemonSet's pods running on every node", async () => {
      const ps = (await cp.kube.get(`/api/v1/namespaces/${NS}/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dprepull`)).body.items as Obj[];
      const running = ps.filter((p) => p.status?.phase === "Running");
      return running.length === nodes.length ? running : undefined;
    }, { timeoutMs: 240_000 });
    expect(new Set(pods.map((p) => p.spec.nodeName))).toEqual(new Set(nodes.map((n) => n.name)));
    for (const p of pods) {
      const images = p.spec.initContainers.map((c: Obj) => c.image);
      expect(images).toEqual(expect.arrayContaining(["cache-io.test/curl:8.14.1", "cache-io.test/busybox:1"]));
      for (const s of p.status.initContainerStatuses as Obj[]) expect(s.state.terminated?.exitCode, `${p.metadata.name} ${s.name}`).toBe(0);
      expect(p.status.containerStatuses.map((s: Obj) => [s.image, !!s.state.running])).toEqual([["registry.k8s.io/pause:3.10", true]]);
    }
  }, 300_000);

  it("uninstall as docs/INSTALL.md says: no cache-io pod or object left, the cached files stay, pods are no longer mutated", async () => {
    kubectl(["delete", "mutatingwebhookconfiguration", "cache-io"]);
    // --ignore-not-found: the configuration deleted first is part of the overlay too (as
    // INSTALL.md has it, without the flag, this step exits 1 on that NotFound).
    kubectl(["delete", "--ignore-not-found", "--wait=true", "--timeout=240s", "-k", join(dir, "overlay")]);
    kubectl(["delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=240s"]);
    kubectl(["label", "namespace", "app", `${NAMESPACE_LABEL}-`]);
    expect((await cp.kube.get(`/api/v1/namespaces/${NS}`)).status).toBe(404);
    expect((await cp.kube.get("/apis/apps/v1/daemonsets")).body.items).toEqual([]); // the pre-pull controller's too
    expect(readdirSync(join(dir, "cache-root", "objects")).length).toBeGreaterThan(0); // "What stays behind"
    const plain = await createPod(cp.kube, {
      apiVersion: "v1", kind: "Pod",
      metadata: { name: "after-uninstall", namespace: "app", annotations: { [ANNOTATION.files]: origin.url("/f/model.bin") } },
      spec: { nodeName: node.name, restartPolicy: "Never", containers: [{ name: "app", image: "cache-io.test/busybox:1", imagePullPolicy: "Never", command: ["true"] }] },
    });
    expect(plain.metadata?.annotations?.[ANNOTATION.status]).toBeUndefined();
    expect(plain.spec?.initContainers ?? []).toEqual([]);
    const left = await waitFor("cache-io's pods gone", async () => {
      const pods = (await cp.kube.get(`/api/v1/pods?fieldSelector=spec.nodeName%3D${node.name}`)).body.items as Obj[];
      const ours = pods.filter((p) => p.metadata.namespace === NS);
      return ours.length === 0 ? pods : undefined;
    }, { timeoutMs: 240_000 });
    expect(left.map((p: Obj) => p.metadata.namespace)).not.toContain(NS);
  }, 300_000);

  it("the node's teardown leaves no iptables rule (hostPort's portmap chains, the kubernetes Service DNAT)", async () => {
    const all = nodes;
    nodes = [];
    for (const n of all) await n.stop();
    const nat = execFileSync("iptables-save", ["-t", "nat"], { encoding: "utf8" });
    expect(nat.match(/^.*(CNI-|KUBE-|10\.96\.0\.1).*$/gm) ?? []).toEqual([]);
  }, 300_000);
});
