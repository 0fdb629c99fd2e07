// A real test node: a Linux bridge (10.88.<index>.1/24, the node IP), containerd with
// the CRI plugin and a CNI bridge network on it, the test images imported, and a kubelet
// registered with the API server. stop() removes all of it, also after a failed start:
// pods (through the kubelet first, then containerd directly), netns, mounts, the bridge,
// processes, the CNI cache and the temp dir.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importImages, removeAllContainers, startContainerd, type Containerd } from "./containerd.js";
import { createBridge, deleteLink, deleteNetns, pidsMentioning, removeCniCache, removeIdlePortmapChains, removeLogLinksInto, unmountUnder } from "./host.js";
import type { Kube, Pem } from "./kube.js";
import { startKubelet } from "./kubelet.js";
import { startServiceProxy, type ServiceProxy } from "./service-proxy.js";
import { freePort, killNow, stopProc, waitFor, type Proc } from "./proc.js";

export interface NodeOptions {
  name: string;
  /** 0..254: the node's subnet 10.88.<index>.0/24 and bridge name. */
  index: number;
  /** Admin access to the API server (waits, pod cleanup, Node deletion). */
  kube: Kube;
  /** The cluster CA: the kubelet's client cert is issued from it. */
  ca: Pem;
  /** Directory with kubelet (the k8s bin dir). */
  bin: string;
  /** docker-save archives to import. */
  images: string[];
  readyTimeoutMs?: number;
  /** Make the `kubernetes` Service (10.96.0.1:443) reach the API server from this node's pods. */
  kubernetesService?: boolean;
  /** Register with NODE_TAINT (default true): only pods that tolerate it land here. */
  taint?: boolean;
}

export interface TestNode {
  name: string;
  ip: string;
  bridge: string;
  network: string;
  dir: string;
  containerd: Containerd;
  kubelet: Proc;
  /** The kubelet's HTTPS API port (on the node IP). */
  kubeletPort: number;
  /** Seconds from start to Ready. */
  startSeconds: number;
  stop(): Promise<void>;
}

/** What stop() must leave behind: nothing (used by the teardown test and by stop itself). */
export interface Footprint {
  dir: string;
  bridge: string;
  network: string;
  socket: string;
  netns: string[];
}

export async function startNode(o: NodeOptions): Promise<TestNode> {
  const started = Date.now();
  if (!Number.isInteger(o.index) || o.index < 0 || o.index > 254) throw new Error(`node index ${o.index}: want an integer 0..254 (its subnet is 10.88.<index>.0/24)`);
  const ip = `10.88.${o.index}.1`;
  const bridge = `cio-n${o.index}`;
  const network = `cache-io-n${o.index}`;
  const dir = mkdtempSync(join(tmpdir(), `cache-io-node-${o.name}-`));
  const procs: Proc[] = [];
  let containerd: Containerd | undefined;
  let proxy: ServiceProxy | undefined;
  const emergency = () => procs.forEach(killNow);
  process.once("exit", emergency);
  const stop = async () => {
    process.removeListener("exit", emergency);
    try {
      await teardown({ o, dir, bridge, network, containerd, kubelet: procs.find((p) => p.name === "kubelet"), procs });
    } finally {
      await proxy?.remove();
    }
  };
  try {
    await createBridge(bridge, `${ip}/24`);
    if (o.kubernetesService) {
      const api = new URL(o.kube.server);
      proxy = await startServiceProxy(bridge, ip, { host: api.hostname, port: Number(api.port) });
    }
    containerd = await startContainerd({ dir, bridge, network, subnet: `10.88.${o.index}.0/24`, gateway: ip, streamPort: await freePort() });
    procs.push(containerd.proc);
    await importImages(containerd, o.images);
    const kubeletPort = await freePort();
    const kubelet = await startKubelet({
      bin: o.bin, dir, name: o.name, ip, server: o.kube.server, ca: o.ca, socket: containerd.socket,
      port: kubeletPort, healthzPort: await freePort(), taint: o.taint ?? true,
    });
    procs.push(kubelet);
    await waitFor(`node ${o.name} Ready`, () => nodeReady(o.kube, o.name), { timeoutMs: o.readyTimeoutMs ?? 180_000, proc: kubelet });
    return { name: o.name, ip, bridge, network, dir, containerd, kubelet, kubeletPort, startSeconds: (Date.now() - started) / 1000, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function nodeReady(kube: Kube, name: string): Promise<true | undefined> {
  const r = await kube.get(`/api/v1/nodes/${name}`);
  if (r.status !== 200) return undefined;
  const ready = r.body.status?.conditions?.find((c: { type: string }) => c.type === "Ready")?.status === "True";
  return ready ? true : undefined;
}

/** Delete every pod bound to the node and wait until the kubelet has stopped them (it confirms by removing the object). */
async function drain(kube: Kube, name: string, timeoutMs: number): Promise<void> {
  const list = async () => ((await kube.get(`/api/v1/pods?fieldSelector=spec.nodeName%3D${name}`)).body.items ?? []) as { metadata: { name: string; namespace: string } }[];
  for (const p of await list()) await kube.req("DELETE", `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`, { gracePeriodSeconds: 1 });
  await waitFor(`pods on ${name} stopped by its kubelet`, async () => ((await list()).length === 0 ? true : undefined), { timeoutMs });
}

interface TeardownState {
  o: NodeOptions;
  dir: string;
  bridge: string;
  network: string;
  containerd?: Containerd;
  kubelet?: Proc;
  procs: Proc[];
}

async function teardown(s: TeardownState): Promise<void> {
  const errors: string[] = [];
  const step = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (err) {
      errors.push(`${what}: ${(err as Error).message}`);
    }
  };
  if (s.kubelet) await step("draining pods through the kubelet", () => drain(s.o.kube, s.o.name, 60_000));
  if (s.kubelet) await stopProc(s.kubelet);
  let netns: string[] = [];
  if (s.containerd) await step("removing leftover containers", async () => (netns = await removeAllContainers(s.containerd!)));
  if (s.containerd) await stopProc(s.containerd.proc);
  // Shims outlive containerd (their own process groups); each names the node's socket.
  for (const pid of pidsMentioning(s.dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  await step("deleting network namespaces", () => deleteNetns(netns));
  await step("unmounting", () => unmountUnder(s.dir));
  await step("deleting the bridge", () => deleteLink(s.bridge));
  await step("deleting the Node object", async () => s.o.kube.req("DELETE", `/api/v1/nodes/${s.o.name}`));
  removeCniCache(s.network);
  await step("removing idle portmap chains", () => removeIdlePortmapChains());
  removeLogLinksInto(s.dir);
  await step("removing the node dir", async () => rmSync(s.dir, { recursive: true, force: true }));
  if (errors.length) throw new Error(`test node ${s.o.name} teardown: ${errors.join("; ")}`);
}
