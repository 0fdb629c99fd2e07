// Real test nodes: containerd + kubelet on this machine, registered with a real API
// server, run a real pod (pause sandbox, CNI bridge IP, a busybox container that reaches
// the node IP), and their teardown leaves nothing behind: no mount under their dirs, no
// bridge, no netns, no process, no CNI cache entry, no dir.
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "./control-plane.js";
import { containerIds, netnsPaths } from "./containerd.js";
import { cniCacheEntries, linkExists, mountsUnder, pidsMentioning } from "./host.js";
import { startNode, type TestNode } from "./node.js";
import { must, waitFor } from "./proc.js";
import { createPod, getPod, logs, onNode, waitPhase } from "./pods.js";
import { buildImages, k8sBinDir, nodeTestsGate, type TestImages } from "./requirements.js";

const gate = nodeTestsGate();

describe.skipIf(!gate.run)("real test nodes", () => {
  let cp: ControlPlane;
  let images: TestImages;
  const nodes: TestNode[] = [];

  beforeAll(async () => {
    images = buildImages();
    cp = await startControlPlane(k8sBinDir());
    const started = await Promise.allSettled([1, 2].map((i) => startNode({ name: `node-${i}`, index: 200 + i, kube: cp.kube, ca: cp.ca, bin: k8sBinDir(), images: images.tars })));
    for (const s of started) if (s.status === "fulfilled") nodes.push(s.value);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    console.log(`nodes Ready in ${nodes.map((n) => `${n.name} ${n.startSeconds.toFixed(1)} s`).join(", ")}`);
  }, 400_000);

  afterAll(async () => {
    for (const n of nodes) await n.stop().catch((e) => console.error(e));
    await cp?.stop();
  }, 200_000);

  it("each node runs a pod: its IP is on the node's bridge subnet and it reaches a server on the node IP", async () => {
    // One HTTP server per node, bound to that node's bridge address only.
    const servers: Server[] = [];
    const ports = new Map<string, number>();
    for (const n of nodes) {
      const s = createServer((_, res) => res.end(`hello from ${n.ip}\n`));
      await new Promise<void>((r) => s.listen(0, n.ip, r));
      servers.push(s);
      ports.set(n.name, (s.address() as AddressInfo).port);
    }
    try {
      await runHellos(ports);
    } finally {
      for (const s of servers) s.close();
    }
  }, 300_000);

  async function runHellos(ports: Map<string, number>): Promise<void> {
    for (const n of nodes) {
      await createPod(cp.kube, {
        apiVersion: "v1", kind: "Pod",
        metadata: { name: `hello-${n.name}`, namespace: "default" },
        spec: {
          ...onNode(n.name), restartPolicy: "Never", automountServiceAccountToken: false,
          containers: [{ name: "c", image: images.refs.busybox, imagePullPolicy: "Never", command: ["/bin/sh", "-c", `ip -4 -o addr show eth0; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 ${n.ip} ${ports.get(n.name)}`] }],
        },
      });
    }
    for (const n of nodes) {
      const pod = await waitPhase(cp.kube, "default", `hello-${n.name}`, ["Succeeded", "Failed"]);
      const out = await logs(cp.kube, "default", `hello-${n.name}`, "c");
      expect(pod.status?.phase, out).toBe("Succeeded");
      expect(pod.status?.hostIP).toBe(n.ip);
      expect(pod.status?.podIP).toMatch(new RegExp(`^${n.ip.replace(/\.1$/, "").replace(/\./g, "\\.")}\\.\\d+$`));
      expect(out).toContain(`hello from ${n.ip}`);
    }
  }

  it("the kubelet's API refuses callers without credentials (pods on the bridge can reach it)", async () => {
    const n = nodes[0]!;
    const status = await new Promise<number>((resolve, reject) => {
      https.get({ host: n.ip, port: n.kubeletPort, path: "/pods", rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on("error", reject);
    });
    expect(status).toBe(401);
  });

  it("an image that was not imported is never pulled from a registry: the pull fails on this host", async () => {
    const n = nodes[0]!;
    await createPod(cp.kube, {
      apiVersion: "v1", kind: "Pod", metadata: { name: "not-imported", namespace: "default" },
      spec: { ...onNode(n.name), automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.example.invalid/nothing:1", imagePullPolicy: "Always" }] },
    });
    const msg = await waitFor("the pull to fail", async () => {
      const w = (await getPod(cp.kube, "default", "not-imported")).status?.containerStatuses?.[0]?.state?.waiting;
      return w?.reason === "ErrImagePull" || w?.reason === "ImagePullBackOff" ? (w.message ?? "") : undefined;
    }, { timeoutMs: 120_000 });
    expect(msg).toContain("127.0.0.1:9");
    await cp.kube.req("DELETE", "/api/v1/namespaces/default/pods/not-imported", { gracePeriodSeconds: 0 });
  }, 200_000);

  it("stop() leaves nothing: no mounts, bridge, netns, processes, CNI cache or dir", async () => {
    const n = nodes.pop()!;
    await createPod(cp.kube, {
      apiVersion: "v1", kind: "Pod", metadata: { name: "running", namespace: "default" },
      spec: { ...onNode(n.name), automountServiceAccountToken: false, terminationGracePeriodSeconds: 1, containers: [{ name: "c", image: images.refs.busybox, imagePullPolicy: "Never", command: ["sleep", "3600"] }] },
    });
    await waitPhase(cp.kube, "default", "running", ["Running"]);
    const ids = await containerIds(n.containerd);
    const runtimeState = ids.flatMap((id) => [`/sys/fs/cgroup/memory/k8s.io/${id}`, `/sys/fs/cgroup/pids/k8s.io/${id}`, `/run/containerd/runc/k8s.io/${id}`]);
    expect(runtimeState.filter((p) => existsSync(p)).length).toBeGreaterThan(0);
    const netns = (await netnsPaths(n.containerd)).filter((p) => p.startsWith("/var/run/netns/") || p.startsWith("/run/netns/"));
    expect(netns.length).toBeGreaterThan(0);
    expect(mountsUnder(n.dir).length).toBeGreaterThan(0);
    expect(pidsMentioning(n.dir).length).toBeGreaterThan(0);
    await n.stop();
    expect(mountsUnder(n.dir)).toEqual([]);
    expect(await linkExists(n.bridge)).toBe(false);
    expect(netns.filter((p) => existsSync(p))).toEqual([]);
    expect(pidsMentioning(n.dir)).toEqual([]);
    expect(cniCacheEntries(n.network)).toEqual([]);
    expect((await must("iptables-save", [])).match(/^.*KUBE-.*$/gm) ?? []).toEqual([]);
    expect(existsSync(n.dir)).toBe(false);
    expect(runtimeState.filter((p) => existsSync(p))).toEqual([]);
    expect((await cp.kube.get(`/api/v1/nodes/${n.name}`)).status).toBe(404);
  }, 200_000);
});
