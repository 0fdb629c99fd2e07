// `npx tsx test/nodes/cli.ts up [NODES]`: start the node tests' control plane and NODES
// real nodes (default 1) by hand, print the kubeconfig and how to use it, and keep them
// running until Ctrl-C (then tear everything down: pods, mounts, bridges, processes).
// `clean` removes what test nodes of a run that died (kill -9) left behind.
import { startControlPlane } from "./control-plane.js";
import { startNode, type TestNode } from "./node.js";
import { buildImages, k8sBinDir } from "./requirements.js";
import { sweepLeftovers } from "./sweep.js";

async function up(count: number): Promise<void> {
  const images = buildImages();
  const cp = await startControlPlane(k8sBinDir());
  const nodes: TestNode[] = [];
  const down = async () => {
    for (const n of nodes) await n.stop().catch((e: Error) => console.error(e.message));
    await cp.stop();
    process.exit(0);
  };
  process.once("SIGINT", () => void down());
  process.once("SIGTERM", () => void down());
  try {
    for (let i = 1; i <= count; i++) nodes.push(await startNode({ name: `node-${i}`, index: i, kube: cp.kube, ca: cp.ca, bin: k8sBinDir(), images: images.tars }));
  } catch (err) {
    console.error(`[nodes] failed to start: ${(err as Error).message}`);
    await down();
  }
  process.stdout.write([
    `kubeconfig: ${cp.kubeconfig}`,
    "",
    `  export KUBECONFIG=${cp.kubeconfig}`,
    `  ${k8sBinDir()}/kubectl get nodes -o wide`,
    "",
    ...nodes.map((n) => `${n.name}: IP ${n.ip} (bridge ${n.bridge}), containerd ${n.containerd.socket}, logs ${n.dir}/{kubelet,containerd}.log`),
    `images: ${images.refs.curl}, ${images.refs.busybox}, registry.k8s.io/pause:3.10 (imagePullPolicy: Never); nodes are tainted cache.io/real-test-node=true:NoSchedule`,
    "Ctrl-C stops everything.",
    "",
  ].join("\n"));
}

if (process.argv[2] === "up") {
  void up(Number(process.argv[3] ?? 1));
} else if (process.argv[2] === "clean") {
  void sweepLeftovers().then((r) => console.log(r.length ? r.join("\n") : "nothing left over"));
} else {
  console.error("usage: npx tsx test/nodes/cli.ts up [NODES]   (as root; Ctrl-C stops it)\n       npx tsx test/nodes/cli.ts clean       (remove what dead test nodes left behind)");
  process.exit(2);
}
