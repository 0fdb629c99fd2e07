// `npm run cluster -- up`: start the test control plane by hand, print the kubeconfig
// path and how to use it, and keep it running until Ctrl-C (then tear it all down).
import { startCluster } from "./harness.js";
import { ENABLE_HINT, ensureTools } from "./tools.js";

async function up(): Promise<void> {
  const tools = ensureTools();
  if (!tools.ok) {
    console.error(`cannot start the test cluster: ${tools.reason}.\n${ENABLE_HINT}`);
    process.exit(1);
  }
  const cluster = await startCluster(tools.bin, { log: (s) => console.error(`[cluster] ${s}`) });
  let stopping = false;
  const down = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`[cluster] ${signal}: stopping every component and removing ${cluster.dir}`);
    void cluster.stop().then(() => process.exit(0));
  };
  process.on("SIGINT", () => down("SIGINT"));
  process.on("SIGTERM", () => down("SIGTERM"));
  process.stdout.write([
    `kubeconfig: ${cluster.kubeconfig}`,
    "",
    `  export KUBECONFIG=${cluster.kubeconfig}`,
    `  ${cluster.bin}/kubectl get nodes -o wide`,
    "",
    `API server ${cluster.server}; nodes ${cluster.nodes.map((n) => `${n.name}=${n.ip}`).join(", ")}; logs in ${cluster.dir}/*.log`,
    `Ready in ${cluster.startSeconds.toFixed(1)} s. Ctrl-C stops it and removes ${cluster.dir}.`,
    "",
  ].join("\n"));
}

const cmd = process.argv[2];
if (cmd === "up") {
  up().catch((err) => {
    console.error(`[cluster] failed to start: ${(err as Error).message}`);
    process.exit(1);
  });
} else {
  console.error("usage: npm run cluster -- up   (starts the test control plane; Ctrl-C stops it)");
  process.exit(2);
}
