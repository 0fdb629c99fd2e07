// Node caches on per-node NICs: node i's cache (`node <cli> cache`, as its DaemonSet pod
// runs it) in node i's network namespace (netns.ts), on the node's own address with the
// DaemonSet's port numbers (8585, peer port 8586), its own root and --node-name, an API
// identity and a peer token bound to its node-cache pod, and membership from a real IPv4
// EndpointSlice of the headless peers Service listing the nodes' real addresses. The
// cluster objects (namespaces, ServiceAccount, RBAC, kwok Nodes, pods, Service) and the
// bound tokens come from test/cluster/peer-caches.ts; the Nodes' InternalIP is set to the
// namespaces' addresses. close() stops every cache and deletes every object.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TOKEN_AUDIENCE } from "../../src/shared/identity.js";
import type { ClusterInfo } from "../../test/cluster/harness.js";
import { adminApi, tokenKubeconfig, until } from "../../test/cluster/kube.js";
import { CACHE_SA, PEERS_SERVICE, PeerCaches } from "../../test/cluster/peer-caches.js";
import { killNow, startProc, tail, type Proc } from "../../test/cluster/processes.js";
import { cpuMs } from "./cpu.js";
import { inNetns, type NicNode, type Nics } from "./netns.js";
import { metricSum } from "../../test/support/metrics-text.js";

const SLICE = `${PEERS_SERVICE}-nics`;
export const PORT = 8585;
export const PEER_PORT = 8586;

export class NicCaches {
  readonly #procs = new Map<number, Proc>();
  readonly #exit = () => this.#procs.forEach(killNow);
  #policy = "";

  private constructor(readonly c: ClusterInfo, readonly nics: Nics, readonly objects: PeerCaches, readonly dir: string, readonly cli: string) {
    process.once("exit", this.#exit);
  }

  static async setup(c: ClusterInfo, nics: Nics, o: { prefix: string; cli: string; dir: string }): Promise<NicCaches> {
    const objects = await PeerCaches.setup(c, { nodes: nics.nodes.length, prefix: o.prefix, peers: "", cli: o.cli });
    mkdirSync(o.dir, { recursive: true });
    const h = new NicCaches(c, nics, objects, o.dir, o.cli);
    try {
      const names = objects.nodes.map((n) => n.name).join(",");
      if (names !== nics.nodes.map((n) => n.name).join(",")) throw new Error(`peer-caches.ts made Nodes ${names}, not ${nics.nodes.map((n) => n.name).join(",")}`);
      const api = adminApi(c);
      for (const n of nics.nodes) {
        const status = { addresses: [{ type: "InternalIP", address: n.ip }, { type: "Hostname", address: n.name }] };
        await api.must("PATCH", `/api/v1/nodes/${n.name}/status`, { status });
      }
      return h;
    } catch (err) {
      await h.close();
      throw err;
    }
  }

  get nodes(): NicNode[] {
    return this.nics.nodes;
  }

  /** The policy every cache watches: the origin on the host's bridge address, identity required, `peers` in cache.peers, `parts` in cache.parts. */
  setPolicy(peers: string, parts = ""): void {
    this.#policy ||= join(this.dir, "policy.yaml");
    const origin = this.nics.hostIp;
    writeFileSync(this.#policy, `origins: {allow: ["${origin}"], allowPrivate: ["${origin}"]}
identity: {mode: required}
cache: {port: ${PORT}, diskBudget: 8Gi, parts: {${parts}}, peers: {port: ${PEER_PORT}${peers ? `, ${peers}` : ""}}}
`);
  }

  root(i: number): string {
    return join(this.dir, this.nodes[i]!.name, "root");
  }

  url(i: number): string {
    return `http://${this.nodes[i]!.ip}:${PORT}`;
  }

  log(i: number): string {
    const p = this.#procs.get(i)?.log ?? join(this.dir, this.nodes[i]!.name, `cache-${this.nodes[i]!.name}.log`);
    try {
      return readFileSync(p, "utf8");
    } catch {
      return "";
    }
  }

  /** Start node i's cache (0-based) in its namespace on a fresh root; resolves when /readyz is 200. */
  async start(i: number): Promise<void> {
    if (this.#procs.has(i)) throw new Error(`node ${i + 1}'s cache is running`);
    const n = this.nodes[i]!;
    const d = join(this.dir, n.name);
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
    const pod = `node-cache-${i + 1}`;
    const sys = this.objects.sys;
    writeFileSync(join(d, "peer-token"), await this.objects.token(sys, CACHE_SA, pod, TOKEN_AUDIENCE), { mode: 0o600 });
    const kubeconfig = tokenKubeconfig(this.c, await this.objects.token(sys, CACHE_SA, pod), sys);
    const [cmd, args] = inNetns(n, process.execPath, [
      this.cli, "cache", "--policy", this.#policy, "--root", this.root(i), "--host", n.ip, "--port", String(PORT), "--node-name", n.name,
      "--peers-service", PEERS_SERVICE, "--namespace", sys, "--service-account", CACHE_SA,
      "--peer-token-file", join(d, "peer-token"), "--peer-host", n.ip, "--peer-port", String(PEER_PORT),
    ]);
    const proc = startProc(`cache-${n.name}`, cmd, args, d, { KUBECONFIG: kubeconfig, LOG_LEVEL: "info", CACHE_IO_POLICY_POLL_MS: "500" });
    this.#procs.set(i, proc);
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`node ${i + 1}'s cache exited (${proc.child.exitCode ?? proc.child.signalCode}); its log:\n${tail(proc.log)}`);
      if ((await fetch(`${this.url(i)}/readyz`).then((r) => r.status, () => 0)) === 200) return;
      if (Date.now() > deadline) throw new Error(`node ${i + 1}'s cache not ready after 90 s; its log:\n${tail(proc.log)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** SIGKILL node i's cache (its process group) and wait until it is gone. */
  async kill(i: number): Promise<void> {
    const p = this.#procs.get(i);
    if (!p) return;
    this.#procs.delete(i);
    killNow(p);
    await p.exited;
  }

  pid(i: number): number | undefined {
    return this.#procs.get(i)?.child.pid;
  }

  /** CPU ms node i's cache has used (0 once it is gone). */
  cpu(i: number): number {
    const pid = this.pid(i);
    try {
      return pid ? cpuMs(pid) : 0;
    } catch {
      return 0;
    }
  }

  running(): number[] {
    return [...this.#procs.keys()].sort((a, b) => a - b);
  }

  /** The IPv4 EndpointSlice of the peers Service lists exactly `members` (0-based), all ready. */
  async setMembers(members: number[]): Promise<void> {
    const api = adminApi(this.c);
    const sys = this.objects.sys;
    const endpoints = members.map((i) => ({
      addresses: [this.nodes[i]!.ip], conditions: { ready: true }, nodeName: this.nodes[i]!.name,
      targetRef: { kind: "Pod", namespace: sys, name: `node-cache-${i + 1}` },
    }));
    const path = `/apis/discovery.k8s.io/v1/namespaces/${sys}/endpointslices`;
    const r = await api.req("PATCH", `${path}/${SLICE}`, { endpoints });
    if (r.status === 404) {
      await api.must("POST", path, {
        apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
        metadata: { name: SLICE, labels: { "kubernetes.io/service-name": PEERS_SERVICE, "endpointslice.kubernetes.io/managed-by": "cache-io-bench" } },
        addressType: "IPv4", ports: [{ name: "peer", port: PEER_PORT, protocol: "TCP" }], endpoints,
      });
    } else if (r.status !== 200) throw new Error(`PATCH EndpointSlice ${SLICE}: ${r.status} ${r.text}`);
  }

  /** The sum of a metric's samples on node i whose labels include `labels`. */
  async metric(i: number, name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricSum(await (await fetch(`${this.url(i)}/metrics`)).text(), name, labels);
  }

  async total(name: string, labels: Record<string, string> = {}): Promise<number> {
    return (await Promise.all(this.running().map((i) => this.metric(i, name, labels)))).reduce((a, b) => a + b, 0);
  }

  /** Wait until every running cache counts `n` ready peers. */
  async waitPeers(n: number): Promise<void> {
    await until(`${n} peers seen by every running cache`, async () => {
      const seen = await Promise.all(this.running().map((i) => this.metric(i, "cache_io_cache_peers")));
      return seen.every((x) => x === n) ? true : undefined;
    }, 90_000);
  }

  /** A file holding the bound token of pod app-N on node-N (what the kubelet projects for the init container). */
  async clientTokenFile(i: number): Promise<string> {
    const file = join(this.dir, `app-${i + 1}.token`);
    writeFileSync(file, await this.objects.clientToken(i), { mode: 0o600 });
    return file;
  }

  async close(): Promise<void> {
    await Promise.all(this.running().map((i) => this.kill(i)));
    process.removeListener("exit", this.#exit);
    await adminApi(this.c).req("DELETE", `/apis/discovery.k8s.io/v1/namespaces/${this.objects.sys}/endpointslices/${SLICE}`);
    await this.objects.close();
  }
}
