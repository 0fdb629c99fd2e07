// One kubelet per test node, with what this sandbox needs: cgroupfs, no QoS cgroups,
// no allocatable enforcement, cgroup v1 allowed, no swap check, no eviction, its own
// root dir, pod log dir, plugin dir and ports; node IP = the node's bridge address.
// It authenticates as system:node:<name> (group system:nodes) with a client cert from
// the cluster CA, so the Node authorizer and NodeRestriction apply to it for real.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { issue, kubeconfig, type Pem } from "./kube.js";
import { startProc, type Proc } from "./proc.js";

export const NODE_TAINT = { key: "cache.io/real-test-node", value: "true", effect: "NoSchedule" } as const;
export const TOLERATE_NODE = [{ key: NODE_TAINT.key, operator: "Exists", effect: NODE_TAINT.effect }];

export interface KubeletSpec {
  bin: string;
  dir: string;
  name: string;
  ip: string;
  server: string;
  ca: Pem;
  socket: string;
  port: number;
  healthzPort: number;
  taint: boolean;
}

export function kubeletConfig(s: KubeletSpec): string {
  return JSON.stringify({
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    address: s.ip,
    port: s.port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: s.healthzPort,
    cgroupDriver: "cgroupfs",
    cgroupsPerQOS: false,
    enforceNodeAllocatable: [],
    failSwapOn: false,
    failCgroupV1: false, // this machine has cgroup v1
    containerRuntimeEndpoint: `unix://${s.socket}`,
    podLogsDir: join(s.dir, "pod-logs"),
    // Only the API server's client cert (or a token the API server vouches for) gets in;
    // what a caller may do is asked of the API server (SubjectAccessReview).
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: join(s.dir, "cluster-ca.crt") } },
    authorization: { mode: "Webhook" },
    evictionHard: {},
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    localStorageCapacityIsolation: false,
    resolvConf: "",
    serializeImagePulls: false,
    registerNode: true,
    // No KUBE-FIREWALL / canary chains: they would outlive the node on the host.
    makeIPTablesUtilChains: false,
    nodeStatusUpdateFrequency: "4s",
    syncFrequency: "5s",
    fileCheckFrequency: "5s",
    shutdownGracePeriod: "0s",
  }, null, 2);
}

export async function startKubelet(s: KubeletSpec): Promise<Proc> {
  const root = join(s.dir, "kubelet");
  mkdirSync(join(root, "pki"), { recursive: true });
  mkdirSync(join(s.dir, "pod-logs"), { recursive: true });
  const cert = await issue(s.ca, `system:node:${s.name}`, { groups: ["system:nodes"] });
  writeFileSync(join(s.dir, "kubelet.kubeconfig"), kubeconfig(s.server, s.ca.cert, `system:node:${s.name}`, cert), { mode: 0o600 });
  writeFileSync(join(s.dir, "cluster-ca.crt"), s.ca.cert);
  writeFileSync(join(s.dir, "kubelet.json"), kubeletConfig(s));
  return startProc("kubelet", join(s.bin, "kubelet"), [
    `--config=${join(s.dir, "kubelet.json")}`,
    `--kubeconfig=${join(s.dir, "kubelet.kubeconfig")}`,
    `--root-dir=${root}`,
    `--cert-dir=${join(root, "pki")}`,
    `--volume-plugin-dir=${join(s.dir, "volume-plugins")}`,
    `--hostname-override=${s.name}`,
    `--node-ip=${s.ip}`,
    // Only pods that tolerate it land here (not DaemonSets other tests create for fake nodes).
    ...(s.taint ? [`--register-with-taints=${NODE_TAINT.key}=${NODE_TAINT.value}:${NODE_TAINT.effect}`] : []),
    "--v=1",
  ], s.dir);
}
