// N real node cache processes for the cluster tier (`node dist/cli/main.js cache`), each
// as its DaemonSet pod would run on node-N: its own loopback address 127.0.0.(N+1) (main
// and peer port, the same numbers on every address, as a hostPort/pod port would be), its
// own root, --node-name node-N, the peer flags, an API identity and a peer token of the
// node cache's ServiceAccount bound (TokenRequest boundObjectRef) to a pod of it on
// node-N, and membership from a real EndpointSlice of the headless peers Service that the
// harness writes (addressType FQDN, the loopback addresses as the names: the API server
// refuses loopback addresses in IPv4 slices, "may not be in the loopback range"; the
// membership reads the address either way). Clients act as pods on each node with real
// pod-bound tokens. Nodes are kwok Nodes node-1..node-8 (or another prefix), tainted so no
// other test's pods land on them. close() stops every process and deletes every object, also when setup
// failed half way.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request, type IncomingMessage } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rank } from "../../src/cache/peers/rendezvous.js";
import { TOKEN_AUDIENCE } from "../../src/shared/identity.js";
import { cacheKey, ensurePath, objectPath } from "../../src/shared/protocol.js";
import type { Api } from "./api.js";
import type { ClusterInfo } from "./harness.js";
import { adminApi, createNamespace, deleteNamespaces, tokenKubeconfig, until } from "./kube.js";
import { nodesReady } from "./kwok.js";
import { freePort, killNow, startProc, stopProc, tail, type Proc } from "./processes.js";
import { metricSum } from "../support/metrics-text.js";

export const PEERS_SERVICE = "cache-io-node-cache-peers";
export const CACHE_SA = "cache-io-node-cache";
const ROOT = new URL("../..", import.meta.url).pathname;
const TAINT = { key: "cache-io.test/peers", value: "only", effect: "NoSchedule" };
const SLICE = `${PEERS_SERVICE}-test`;

export interface PeerNode {
  name: string;
  ip: string;
}

export interface Got {
  status: number;
  bytes: number;
  sha256: string;
  /** The body when the status is not 200 (what the cache said). */
  error: string;
}

export interface PeerCachesOptions {
  nodes: number;
  /** Prefix of the two namespaces (`<p>-sys` for the caches, `<p>-app` for the client pods). */
  prefix: string;
  /** cache.peers fields besides the port, as flow YAML ("enabled: false, idleTimeout: 5s"). */
  peers: string;
  /** The CLI to run (default dist/cli/main.js of this checkout). */
  cli?: string;
  /** Node names are `<nodePrefix>-1..N` (default "node"): test files running at once need their own. */
  nodePrefix?: string;
}

/** Node names ranked for the file at `url` (rank 0: its owner), as every node cache ranks them. */
export function owners(url: string, nodes: readonly PeerNode[]): string[] {
  return rank(cacheKey(url), nodes.map((n) => ({ node: n.name }))).map((p) => p.node);
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** A port free on every address (the OS picks it on the first). */
async function portOnAll(ips: string[], avoid: number[] = []): Promise<number> {
  for (let tries = 0; tries < 20; tries++) {
    const port = await freePort(ips[0]);
    if (avoid.includes(port)) continue;
    if ((await Promise.all(ips.map((ip) => canListen(ip, port)))).every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${ips.join(", ")}`);
}

export class PeerCaches {
  readonly nodes: PeerNode[];
  readonly sys: string;
  readonly app: string;
  readonly dir: string;
  port = 0;
  peerPort = 0;
  readonly #api: Api;
  readonly #procs = new Map<number, Proc>();
  readonly #uids = new Map<string, string>();
  readonly #clientTokens = new Map<number, string>();
  #policyFile = "";

  private constructor(private readonly c: ClusterInfo, private readonly o: PeerCachesOptions) {
    if (o.nodes < 1 || o.nodes > 8) throw new Error(`PeerCaches: 1..8 nodes (127.0.0.2..127.0.0.9), not ${o.nodes}`);
    this.nodes = Array.from({ length: o.nodes }, (_, i) => ({ name: `${o.nodePrefix ?? "node"}-${i + 1}`, ip: `127.0.0.${i + 2}` }));
    this.sys = `${o.prefix}-sys`;
    this.app = `${o.prefix}-app`;
    this.dir = mkdtempSync(join(tmpdir(), `cache-io-${o.prefix}-`));
    this.#api = adminApi(c);
  }

  /** Everything but the processes: namespaces, ServiceAccount, RBAC, Nodes, pods, Service, slice. */
  static async setup(c: ClusterInfo, o: PeerCachesOptions): Promise<PeerCaches> {
    const h = new PeerCaches(c, o);
    try {
      await h.#objects();
      h.port = await portOnAll(h.nodes.map((n) => n.ip));
      h.peerPort = await portOnAll(h.nodes.map((n) => n.ip), [h.port]);
      h.setPolicy(o.peers);
      return h;
    } catch (err) {
      await h.close();
      throw err;
    }
  }

  /** setup(), then every node a member and its cache running, each seeing all of them. */
  static async started(c: ClusterInfo, o: PeerCachesOptions): Promise<PeerCaches> {
    const h = await PeerCaches.setup(c, o);
    const all = h.nodes.map((_, i) => i);
    try {
      await h.setMembers(all);
      await Promise.all(all.map((i) => h.start(i)));
      await h.waitPeers(all.length);
      return h;
    } catch (err) {
      await h.close();
      throw err;
    }
  }

  async #objects(): Promise<void> {
    const api = this.#api;
    await createNamespace(api, this.sys);
    await createNamespace(api, this.app);
    await api.must("POST", `/api/v1/namespaces/${this.sys}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: CACHE_SA } });
    await this.#rbac();
    for (const n of this.nodes) await this.#node(n);
    await until("the peer test nodes Ready (kwok)", () => nodesReady(api, this.nodes), 120_000);
    for (const [i, n] of this.nodes.entries()) {
      await this.#pod(this.sys, `node-cache-${i + 1}`, n.name, CACHE_SA);
      await this.#pod(this.app, `app-${i + 1}`, n.name, "default");
    }
    await api.must("POST", `/api/v1/namespaces/${this.sys}/services`, {
      apiVersion: "v1", kind: "Service", metadata: { name: PEERS_SERVICE },
      spec: { clusterIP: "None", ports: [{ name: "peer", port: 8586, protocol: "TCP" }] },
    });
  }

  /** What the node cache's DaemonSet gets: pods list/watch (cluster), endpointslices get/list/watch (its namespace). */
  async #rbac(): Promise<void> {
    const name = `${this.o.prefix}-node-cache`;
    const subjects = [{ kind: "ServiceAccount", name: CACHE_SA, namespace: this.sys }];
    const rbac = "/apis/rbac.authorization.k8s.io/v1";
    await this.#api.must("POST", `${rbac}/clusterroles`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name }, rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] }] });
    await this.#api.must("POST", `${rbac}/clusterrolebindings`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name }, subjects });
    await this.#api.must("POST", `${rbac}/namespaces/${this.sys}/roles`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name }, rules: [{ apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["get", "list", "watch"] }] });
    await this.#api.must("POST", `${rbac}/namespaces/${this.sys}/rolebindings`, { apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", metadata: { name }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name }, subjects });
  }

  /**
   * A kwok Node, tainted (no other test's pods) and without kubernetes.io/os: the project's
   * DaemonSets tolerate every taint but select kubernetes.io/os=linux, so other test files
   * sharing the cluster still count only the harness's own nodes.
   */
  async #node(n: PeerNode): Promise<void> {
    const status = {
      addresses: [{ type: "InternalIP", address: n.ip }, { type: "Hostname", address: n.name }],
      allocatable: { cpu: "32", memory: "256Gi", pods: "110" },
      capacity: { cpu: "32", memory: "256Gi", pods: "110" },
    };
    await this.#api.must("POST", "/api/v1/nodes", {
      apiVersion: "v1", kind: "Node",
      metadata: { name: n.name, annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" }, labels: { "kubernetes.io/hostname": n.name, type: "kwok" } },
      spec: { taints: [TAINT] },
      status,
    });
    await this.#api.must("PATCH", `/api/v1/nodes/${n.name}/status`, { status });
  }

  async #pod(ns: string, name: string, nodeName: string, sa: string): Promise<void> {
    const p = await this.#api.must("POST", `/api/v1/namespaces/${ns}/pods`, {
      apiVersion: "v1", kind: "Pod", metadata: { name, labels: { app: name.replace(/-\d+$/, "") } },
      spec: { nodeName, serviceAccountName: sa, tolerations: [{ ...TAINT, operator: "Equal" }], containers: [{ name: "c", image: "registry.example.com/app:1" }], terminationGracePeriodSeconds: 0 },
    });
    this.#uids.set(`${ns}/${name}`, p.metadata.uid as string);
  }

  /** A token of `sa` bound to pod `ns/name` (what the kubelet projects into it). */
  async token(ns: string, sa: string, pod: string, audience?: string): Promise<string> {
    const r = await this.#api.must("POST", `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
      apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest",
      spec: { ...(audience ? { audiences: [audience] } : {}), expirationSeconds: 3600, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod, uid: this.#uids.get(`${ns}/${pod}`) } },
    });
    return r.status.token as string;
  }

  /** The token of the client pod app-N on node-N (i is 0-based). */
  async clientToken(i: number): Promise<string> {
    let t = this.#clientTokens.get(i);
    if (!t) this.#clientTokens.set(i, (t = await this.token(this.app, "default", `app-${i + 1}`, TOKEN_AUDIENCE)));
    return t;
  }

  /** Write the policy file every cache watches: the loopback origin, identity required, `peers` in cache.peers. */
  setPolicy(peers: string): void {
    this.#policyFile ||= join(this.dir, "policy.yaml");
    writeFileSync(this.#policyFile, `origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: required}
cache: {port: ${this.port}, diskBudget: 8Gi, peers: {port: ${this.peerPort}${peers ? `, ${peers}` : ""}}}
`);
  }

  /** Node i's cache root (0-based). */
  root(i: number): string {
    return join(this.dir, this.nodes[i]!.name, "root");
  }

  url(i: number): string {
    return `http://${this.nodes[i]!.ip}:${this.port}`;
  }

  /** Start node i's cache (0-based) on a fresh root unless `keepRoot`; resolves when /readyz is 200. */
  async start(i: number, opts: { keepRoot?: boolean } = {}): Promise<void> {
    if (this.#procs.has(i)) throw new Error(`node ${i + 1}'s cache is running`);
    const n = this.nodes[i]!;
    const d = join(this.dir, n.name);
    if (!opts.keepRoot) rmSync(this.root(i), { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
    const pod = `node-cache-${i + 1}`;
    writeFileSync(join(d, "peer-token"), await this.token(this.sys, CACHE_SA, pod, TOKEN_AUDIENCE), { mode: 0o600 });
    const kubeconfig = tokenKubeconfig(this.c, await this.token(this.sys, CACHE_SA, pod), this.sys);
    const proc = startProc(`cache-${n.name}`, process.execPath, [
      this.o.cli ?? join(ROOT, "dist/cli/main.js"), "cache", "--policy", this.#policyFile, "--root", this.root(i),
      "--host", n.ip, "--port", String(this.port), "--node-name", n.name,
      "--peers-service", PEERS_SERVICE, "--namespace", this.sys, "--service-account", CACHE_SA,
      "--peer-token-file", join(d, "peer-token"), "--peer-host", n.ip, "--peer-port", String(this.peerPort),
    ], d, { KUBECONFIG: kubeconfig, LOG_LEVEL: "info", CACHE_IO_POLICY_POLL_MS: "500" });
    this.#procs.set(i, proc);
    await this.#ready(i, proc);
  }

  async #ready(i: number, proc: Proc): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`node ${i + 1}'s cache exited (${proc.child.exitCode ?? proc.child.signalCode}); its log:\n${tail(proc.log)}`);
      const r = await fetch(`${this.url(i)}/readyz`).then((r) => r.status, () => 0);
      if (r === 200) return;
      if (Date.now() > deadline) throw new Error(`node ${i + 1}'s cache not ready after 60 s (/readyz ${r}); its log:\n${tail(proc.log)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** SIGKILL (or SIGTERM, gracefully) node i's cache and wait until it is gone. */
  async kill(i: number, signal: "SIGKILL" | "SIGTERM" = "SIGKILL"): Promise<void> {
    const p = this.#procs.get(i);
    if (!p) return;
    this.#procs.delete(i);
    if (signal === "SIGTERM") return stopProc(p);
    killNow(p);
    await p.exited;
  }

  log(i: number): string {
    const p = join(this.dir, this.nodes[i]!.name, `cache-${this.nodes[i]!.name}.log`);
    try {
      return readFileSync(p, "utf8");
    } catch {
      return "";
    }
  }

  /** The EndpointSlice of the peers Service lists exactly `members` (0-based), each ready unless in `notReady`. */
  async setMembers(members: number[], notReady: number[] = []): Promise<void> {
    const endpoints = members.map((i) => ({
      addresses: [this.nodes[i]!.ip],
      conditions: { ready: !notReady.includes(i) },
      nodeName: this.nodes[i]!.name,
      targetRef: { kind: "Pod", namespace: this.sys, name: `node-cache-${i + 1}`, uid: this.#uids.get(`${this.sys}/node-cache-${i + 1}`) },
    }));
    const path = `/apis/discovery.k8s.io/v1/namespaces/${this.sys}/endpointslices`;
    const slice = {
      apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
      metadata: { name: SLICE, labels: { "kubernetes.io/service-name": PEERS_SERVICE, "endpointslice.kubernetes.io/managed-by": "cache-io-test" } },
      addressType: "FQDN", ports: [{ name: "peer", port: this.peerPort, protocol: "TCP" }], endpoints,
    };
    const r = await this.#api.req("PATCH", `${path}/${SLICE}`, { endpoints });
    if (r.status === 404) await this.#api.must("POST", path, slice);
    else if (r.status !== 200) throw new Error(`PATCH EndpointSlice ${SLICE}: ${r.status} ${r.text}`);
  }

  /** The sum of a metric's samples on node i whose labels include `labels`. */
  async metric(i: number, name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricSum(await (await fetch(`${this.url(i)}/metrics`)).text(), name, labels);
  }

  /** Sum of a metric over the running caches. */
  async total(name: string, labels: Record<string, string> = {}): Promise<number> {
    const each = await Promise.all([...this.#procs.keys()].map((i) => this.metric(i, name, labels)));
    return each.reduce((a, b) => a + b, 0);
  }

  /** Wait until each of `nodes` (0-based, default: all running) counts `n` ready peers (cache_io_cache_peers). */
  async waitPeers(n: number, nodes = this.running()): Promise<void> {
    await until(`${n} peers seen by node(s) ${nodes.map((i) => i + 1).join(", ")}`, async () => {
      const seen = await Promise.all(nodes.map((i) => this.metric(i, "cache_io_cache_peers")));
      return seen.every((x) => x === n) ? true : undefined;
    }, 60_000);
  }

  /** Write a new policy (setPolicy) and wait until every running cache has loaded it. */
  async reloadPolicy(peers: string): Promise<void> {
    const name = "cache_io_policy_reloads_total";
    const before = await Promise.all(this.running().map((i) => this.metric(i, name, { result: "success" })));
    this.setPolicy(peers);
    await until("every cache loaded the new policy", async () => {
      const now = await Promise.all(this.running().map((i) => this.metric(i, name, { result: "success" })));
      return now.every((x, j) => x > before[j]!) ? true : undefined;
    }, 60_000);
  }

  running(): number[] {
    return [...this.#procs.keys()].sort();
  }

  /** The process id of node i's running cache. */
  pid(i: number): number | undefined {
    return this.#procs.get(i)?.child.pid;
  }

  /**
   * GET the file from node i's cache as the pod app-N on node-N would (its bound token; `as`:
   * the pod of another node), hashing the bytes as they come. `ensure`: first /v1/ensure (what
   * the init container runs: it returns when the file is complete and verified), then the bytes.
   */
  async get(i: number, url: string, sha256?: string, opts: { as?: number; timeoutMs?: number; ensure?: boolean } = {}): Promise<Got> {
    const token = await this.clientToken(opts.as ?? i);
    const key = cacheKey(url);
    if (opts.ensure) {
      const e = await this.#request(this.url(i) + ensurePath(key, url, sha256), token, opts.timeoutMs);
      if (e.status !== 200) return e;
    }
    return this.#request(this.url(i) + objectPath(key, url, sha256), token, opts.timeoutMs);
  }

  /** GET the file from node i's PEER port, as node j's cache would (its peer token) or with any `token`, plus `headers`. */
  async peerGet(i: number, url: string, auth: { asNode: number } | { token: string }, headers: Record<string, string> = {}): Promise<Got> {
    const token = "token" in auth ? auth.token : readFileSync(join(this.dir, this.nodes[auth.asNode]!.name, "peer-token"), "utf8");
    return this.#request(`http://${this.nodes[i]!.ip}:${this.peerPort}${objectPath(cacheKey(url), url)}`, token, 60_000, headers);
  }

  /** Like peerGet, but resolves with the response as it starts (paused: a peer still receiving); the caller destroys it. */
  peerOpen(i: number, url: string, asNode: number, headers: Record<string, string> = {}): Promise<IncomingMessage> {
    const token = readFileSync(join(this.dir, this.nodes[asNode]!.name, "peer-token"), "utf8");
    return new Promise((resolve, reject) => {
      const r = request(`http://${this.nodes[i]!.ip}:${this.peerPort}${objectPath(cacheKey(url), url)}`, { headers: { authorization: `Bearer ${token}`, ...headers }, agent: false }, (res) => {
        res.pause();
        resolve(res);
      });
      r.on("error", reject);
      r.end();
    });
  }

  #request(target: string, token: string, timeoutMs = 120_000, headers: Record<string, string> = {}): Promise<Got> {
    return new Promise((resolve, reject) => {
      const r = request(target, { headers: { authorization: `Bearer ${token}`, ...headers }, agent: false, timeout: timeoutMs }, (res) => {
        const h = createHash("sha256");
        let bytes = 0;
        let error = "";
        const cut = () => resolve({ status: -1, bytes, sha256: "", error: `the response was cut${error ? `: ${error}` : ""}` });
        res.on("data", (d: Buffer) => {
          bytes += d.length;
          h.update(d);
          if ((res.statusCode !== 200 || target.includes("/v1/ensure/")) && error.length < 4096) error += d.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, sha256: h.digest("hex"), error }));
        res.on("error", cut);
        res.on("aborted", cut);
      });
      r.on("timeout", () => r.destroy(new Error(`GET ${target}: nothing for ${timeoutMs} ms`)));
      r.on("error", reject);
      r.end();
    });
  }

  /** Stop every cache, delete the objects (nodes and cluster-scoped RBAC too) and the temp dir. */
  async close(): Promise<void> {
    await Promise.all([...this.#procs.keys()].map((i) => this.kill(i)));
    const api = this.#api;
    const name = `${this.o.prefix}-node-cache`;
    await api.req("DELETE", `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${name}`);
    await api.req("DELETE", `/apis/rbac.authorization.k8s.io/v1/clusterroles/${name}`);
    await deleteNamespaces(api, [this.sys, this.app]);
    for (const n of this.nodes) await api.req("DELETE", `/api/v1/nodes/${n.name}`);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
