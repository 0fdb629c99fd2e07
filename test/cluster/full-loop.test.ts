// The whole path with the real control plane: a pod created through kube-apiserver,
// mutated by the `cache-io webhook` process the rendered configuration points at,
// scheduled by the real kube-scheduler onto a kwok node, its status.hostIP set from that
// node's address; then its init container's exact command, with $(NODE_IP) expanded from
// that real status.hostIP, run with real curl against a node cache bound to that node's
// loopback address (127.0.0.2, 127.0.0.3), and the file read where the app container's
// mount says it is. Stand-in kept: no kubelet runs containers (no container runtime on
// this machine), so the test runs the init command itself as src/cache/kubelet.ts does,
// and each node's filesystem is a temp directory standing for the node's cache root.
// Identity as the default policy has it (identity.mode required): each node cache verifies
// tokens with its own ServiceAccount's token, and the init command sends the pod's bound
// token (TokenRequest with boundObjectRef, written where the kubelet would project it).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig, type V1Container, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { hostPathOf, runInitContainer } from "../../src/cache/kubelet.js";
import { parsePolicy } from "../../src/policy/load.js";
import { TOKEN_PATH } from "../../src/shared/identity.js";
import { pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { fetcherOf } from "../support/pod-fixtures.js";
import { makeCertDir } from "../support/tls-secret.js";
import type { Api } from "./api.js";
import { boundToken } from "./bound-tokens.js";
import { describeCluster } from "./context.js";
import { adminApi, createNamespace, deleteNamespaces, scopeLabel, serviceAccountToken, tokenKubeconfig, until } from "./kube.js";
import { freePort } from "./processes.js";
import { pointAtHost, registerWebhookConfig, renderedWebhookConfig, startHostWebhook, type HostWebhook } from "./webhook-host.js";

const SCOPE = "loop";
const NS = "loop-on";
const NS_SYS = "loop-sys";
const POLICY_ROOT = "/var/lib/cache-io"; // what the pods' hostPath volumes name (the policy default)
const MIB = 2 ** 20;

describeCluster("the full loop: API server, scheduler, kwok node, init command, node cache", (c) => {
  let api: Api;
  let origin: Origin;
  let hook: HostWebhook;
  let dir: string;
  const caches = new Map<string, RunningCache>();
  const content = pseudoRandom(3 * MIB, 81);
  let sha = "";

  beforeAll(async () => {
    api = adminApi(c);
    dir = mkdtempSync(join(tmpdir(), "cache-io-loop-"));
    origin = await startOrigin();
    sha = origin.put("/models/loop.bin", content).sha256;
    const port = await freePort(c.nodes[0]!.ip);
    const yaml = `origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {port: ${port}}\n`;
    const parsed = parsePolicy(yaml);
    if (!parsed.ok) throw new Error(parsed.errors.join("; "));
    expect(parsed.policy.identity.mode).toBe("required"); // the default this loop runs with
    await createNamespace(api, NS_SYS);
    await api.must("POST", `/api/v1/namespaces/${NS_SYS}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "node-cache" } });
    const own = new KubeConfig();
    own.loadFromFile(tokenKubeconfig(c, await serviceAccountToken(api, NS_SYS, "node-cache"), NS_SYS));
    for (const n of c.nodes) {
      caches.set(n.name, await startCache({ root: join(dir, n.name), host: n.ip, port, nodeName: n.name, identityKubeConfig: own, policy: () => parsed.policy }));
    }
    writeFileSync(join(dir, "policy.yaml"), yaml);
    const certs = await makeCertDir();
    hook = await startHostWebhook(certs.dir, ["--policy", join(dir, "policy.yaml")]);
    await registerWebhookConfig(api, pointAtHost(await renderedWebhookConfig(c), `cache-io-${SCOPE}`, [hook.port], certs.bundle.caCert, SCOPE));
    await createNamespace(api, NS, { "cache.io/inject": "enabled", ...scopeLabel(SCOPE) });
    await until("the webhook configuration in effect", async () => {
      const r = await api.req("POST", `/api/v1/namespaces/${NS}/pods?dryRun=All`, loopPod("probe", c.nodes[0]!.name));
      return r.status === 201 && fetcherOf(r.body) ? true : undefined;
    });
  }, 120_000);

  afterAll(async () => {
    await hook?.stop();
    for (const cache of caches.values()) await cache.close(100);
    await origin?.close();
    if (api) {
      await api.req("DELETE", `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/cache-io-${SCOPE}`);
      await deleteNamespaces(api, [NS, NS_SYS]);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function loopPod(name: string, node?: string): V1Pod {
    return {
      apiVersion: "v1", kind: "Pod",
      metadata: { name, namespace: NS, annotations: { "cache.io/files": `${origin.url("/models/loop.bin")}#sha256=${sha}`, "cache.io/mount-path": "/models" } },
      spec: { ...(node ? { nodeSelector: { "kubernetes.io/hostname": node } } : {}), containers: [{ name: "app", image: "registry.example.com/app:1", command: ["sleep", "inf"] }] },
    };
  }

  /** The init container as the kubelet runs it: the pod's bound token projected at TOKEN_PATH (here: a file in `dir`). */
  async function withToken(pod: V1Pod): Promise<V1Container> {
    const projected = join(dir, "projected", pod.metadata!.name!);
    mkdirSync(projected, { recursive: true });
    writeFileSync(join(projected, "token"), await boundToken(api, pod));
    const fetch = fetcherOf(pod)!;
    expect(fetch.args).toContain(`TOKEN@${TOKEN_PATH}`);
    return { ...fetch, args: fetch.args!.map((a) => a.replace(`@${TOKEN_PATH}`, `@${join(projected, "token")}`)) };
  }

  it("each node's pod gets its node's address as hostIP, and its init command fills that node's cache only", async () => {
    for (const [i, node] of c.nodes.entries()) {
      const created = await api.post(`/api/v1/namespaces/${NS}/pods`, loopPod(`loop-${i}`, node.name));
      expect(created.status, created.text).toBe(201);
      const pod: V1Pod = await until(`pod loop-${i} Running on ${node.name}`, async () => {
        const p = (await api.get(`/api/v1/namespaces/${NS}/pods/loop-${i}`)).body as V1Pod;
        return p.status?.phase === "Running" && p.status.hostIP ? p : undefined;
      }, 90_000);
      expect(pod.spec!.nodeName).toBe(node.name); // bound by the real scheduler
      expect(pod.status!.hostIP).toBe(node.ip); // from the node's status.addresses, via kwok

      const fetch = fetcherOf(pod)!;
      expect(fetch.env).toContainEqual({ name: "NODE_IP", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "status.hostIP" } } });
      const run = await runInitContainer(await withToken(pod), { fieldValues: { "status.hostIP": pod.status!.hostIP! }, timeoutMs: 120_000 });
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`done loop\\.bin ${content.length} bytes .*sha256=${sha}\\n$`));

      const inPod = hostPathOf(pod, "app", "/models/loop.bin");
      expect(inPod.startsWith(`${POLICY_ROOT}/objects/`)).toBe(true);
      const onNode = join(dir, node.name, inPod.slice(POLICY_ROOT.length));
      expect(readFileSync(onNode).equals(content)).toBe(true);
      expect(origin.gets("/models/loop.bin")).toBe(i + 1); // one origin GET per node
    }
  }, 240_000);

  it("a pod the scheduler places itself (no nodeSelector) is served by the cache of the node it landed on", async () => {
    await api.must("POST", `/api/v1/namespaces/${NS}/pods`, loopPod("free"));
    const pod: V1Pod = await until("pod free Running", async () => {
      const p = (await api.get(`/api/v1/namespaces/${NS}/pods/free`)).body as V1Pod;
      return p.status?.phase === "Running" && p.status.hostIP ? p : undefined;
    }, 90_000);
    const node = c.nodes.find((n) => n.name === pod.spec!.nodeName)!;
    expect(pod.status!.hostIP).toBe(node.ip);
    const gets = origin.gets("/models/loop.bin");
    const run = await runInitContainer(await withToken(pod), { fieldValues: { "status.hostIP": pod.status!.hostIP! } });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^cached loop\.bin/); // that node already has it
    expect(origin.gets("/models/loop.bin")).toBe(gets);
    expect(caches.get(node.name)!.url).toBe(`http://${node.ip}:${caches.get(node.name)!.port}`);
  }, 120_000);
});
