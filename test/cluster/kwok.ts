// Fake nodes for the test cluster: Node objects kwok manages (annotation
// kwok.x-k8s.io/node=fake), each with its own InternalIP in 127.0.0.0/8 so a node cache
// on the host can bind exactly that node's address. kwok keeps them Ready and marks the
// pods the real scheduler binds to them Running, with status.hostIP = the node's address.
import type { Api } from "./api.js";

export interface FakeNode {
  name: string;
  ip: string;
}

export const FAKE_NODES: FakeNode[] = [
  { name: "kwok-node-1", ip: "127.0.0.2" },
  { name: "kwok-node-2", ip: "127.0.0.3" },
];

/** kwok's flags; `stages` is the kwok-stages.yaml build.sh writes beside the binary. */
export function kwokArgs(kubeconfig: string, stages: string): string[] {
  return [
    `--config=${stages}`,
    "--kubeconfig", kubeconfig,
    "--manage-all-nodes=false",
    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
    "--node-ip=127.0.0.1",
    "--cidr=10.244.0.0/16",
    "--node-lease-duration-seconds=40",
  ];
}

function nodeObject(n: FakeNode) {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: n.name,
      annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: { "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", type: "kwok" },
    },
    status: {
      addresses: [{ type: "InternalIP", address: n.ip }, { type: "Hostname", address: n.name }],
      allocatable: { cpu: "32", memory: "256Gi", pods: "110" },
      capacity: { cpu: "32", memory: "256Gi", pods: "110" },
    },
  };
}

/** Create the nodes (and their status: a create may drop it) and keep their addresses. */
export async function createFakeNodes(api: Api, nodes: FakeNode[]): Promise<void> {
  for (const n of nodes) {
    const obj = nodeObject(n);
    await api.must("POST", "/api/v1/nodes", obj);
    await api.must("PATCH", `/api/v1/nodes/${n.name}/status`, { status: obj.status });
  }
}

/** Ready (kwok's heartbeat) and still carrying the address we gave it. */
export async function nodesReady(api: Api, nodes: FakeNode[]): Promise<true | undefined> {
  for (const n of nodes) {
    const r = await api.get(`/api/v1/nodes/${n.name}`);
    if (r.status !== 200) return undefined;
    const ready = r.body.status?.conditions?.find((c: { type: string }) => c.type === "Ready")?.status === "True";
    const ip = r.body.status?.addresses?.find((a: { type: string }) => a.type === "InternalIP")?.address;
    if (!ready) return undefined;
    if (ip !== n.ip) throw new Error(`node ${n.name} has InternalIP ${ip}, want ${n.ip}`);
    const taints = (r.body.spec?.taints ?? []).filter((t: { key: string }) => t.key.startsWith("node.kubernetes.io/"));
    if (taints.length) return undefined; // the node lifecycle controller has not lifted not-ready yet
  }
  return true;
}
