// One containerd per test node: its own root, state, socket, CNI config (a bridge
// network on the node's own bridge, host-local IPAM in its own dir, portmap for
// hostPort) and stream port, so two nodes on one host share nothing. Plus the last-
// resort cleanup of what the kubelet did not stop: tasks, containers, their netns.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { must, run, startProc, waitFor, type Proc } from "./proc.js";

export interface ContainerdSpec {
  dir: string;
  bridge: string;
  /** CNI network name (unique per node: libcni's cache is keyed by it). */
  network: string;
  subnet: string;
  gateway: string;
  streamPort: number;
}

export interface Containerd {
  proc: Proc;
  socket: string;
  ctr(args: string[], timeoutMs?: number): Promise<string>;
}

export const SANDBOX_IMAGE = "registry.k8s.io/pause:3.10";
const NO_REGISTRY = "http://127.0.0.1:9";

export function containerdConfig(s: ContainerdSpec): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${join(s.dir, "root")}"
state = "${join(s.dir, "state")}"
[grpc]
  address = "${join(s.dir, "containerd.sock")}"
[ttrpc]
  address = "${join(s.dir, "containerd.sock")}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(s.dir, "opt")}"
[${cri}]
  sandbox_image = "${SANDBOX_IMAGE}"
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this sandbox lacks: without
  # this every sandbox fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "${s.streamPort}"
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [${cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${join(s.dir, "cni")}"
`;
}

export function cniConfig(s: ContainerdSpec): string {
  return JSON.stringify({
    cniVersion: "0.4.0",
    name: s.network,
    plugins: [
      {
        type: "bridge", bridge: s.bridge, isGateway: true, ipMasq: false,
        ipam: { type: "host-local", dataDir: join(s.dir, "ipam"), ranges: [[{ subnet: s.subnet, gateway: s.gateway }]], routes: [{ dst: "0.0.0.0/0" }] },
      },
      // All test nodes share this host's nat table: without a destination match, one node's
      // hostPort rule would catch the calls pods of another node make to their own node IP.
      { type: "portmap", capabilities: { portMappings: true }, conditionsV4: ["-d", `${s.gateway}/32`] },
    ],
  });
}

export async function startContainerd(s: ContainerdSpec): Promise<Containerd> {
  mkdirSync(join(s.dir, "cni"), { recursive: true });
  writeFileSync(join(s.dir, "cni", "10-bridge.conflist"), cniConfig(s));
  writeFileSync(join(s.dir, "containerd.toml"), containerdConfig(s));
  const socket = join(s.dir, "containerd.sock");
  // No registry is reachable or allowed: every pull goes to a proxy on a closed loopback
  // port and fails at once, so a wrong image name can never send traffic off this host.
  const noPull = { HTTP_PROXY: NO_REGISTRY, HTTPS_PROXY: NO_REGISTRY, http_proxy: NO_REGISTRY, https_proxy: NO_REGISTRY, NO_PROXY: "", no_proxy: "" };
  const proc = startProc("containerd", "containerd", ["--config", join(s.dir, "containerd.toml")], s.dir, noPull);
  const ctr = (args: string[], timeoutMs = 120_000) => must("ctr", ["--address", socket, "-n", "k8s.io", ...args], { timeoutMs });
  await waitFor("containerd answering on its socket", async () => ((await run("ctr", ["--address", socket, "version"])).code === 0 ? true : undefined), { timeoutMs: 60_000, proc });
  return { proc, socket, ctr };
}

/** Import docker-save archives into the node's k8s.io namespace (what the kubelet sees). */
export async function importImages(c: Containerd, tars: string[]): Promise<void> {
  for (const t of tars) await c.ctr(["images", "import", t]);
}

/** Network namespace paths of every container's spec (sandboxes own them). */
export async function netnsPaths(c: Containerd, ids?: string[]): Promise<string[]> {
  const out = new Set<string>();
  for (const id of ids ?? (await containerIds(c))) {
    const info = await run("ctr", ["--address", c.socket, "-n", "k8s.io", "containers", "info", id]);
    if (info.code !== 0) continue;
    try {
      const spec = JSON.parse(info.stdout).Spec as { linux?: { namespaces?: { type: string; path?: string }[] } };
      for (const ns of spec.linux?.namespaces ?? []) if (ns.type === "network" && ns.path) out.add(ns.path);
    } catch {
      // not JSON: skip
    }
  }
  return [...out];
}

/** Kill and delete every task and container left in the node's containerd; returns the netns they used. */
export async function containerIds(c: Containerd): Promise<string[]> {
  return (await run("ctr", ["--address", c.socket, "-n", "k8s.io", "containers", "ls", "-q"])).stdout.split("\n").filter(Boolean);
}

export async function removeAllContainers(c: Containerd): Promise<string[]> {
  const ids = await containerIds(c);
  const netns = await netnsPaths(c, ids);
  for (const id of ids) {
    await run("ctr", ["--address", c.socket, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id]);
    await run("ctr", ["--address", c.socket, "-n", "k8s.io", "tasks", "delete", "-f", id]);
    await run("ctr", ["--address", c.socket, "-n", "k8s.io", "containers", "delete", id]);
  }
  return netns;
}
