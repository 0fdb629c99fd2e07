// Each component against the real API server with a token of its own ServiceAccount
// (TokenRequest), so the real RBAC authorizer decides with the Roles deploy/ renders:
// `certs install` (Secret + caBundle, reuse, renewal, two at once), `prepull reconcile`
// (server-side apply; the DaemonSet controller makes its pods on the kwok nodes), the node
// cache's pod watch (fieldSelector spec.nodeName) and its eviction guard, its peer
// membership (EndpointSlices of the peers Service). Each succeeds with its role and gets
// 403 for one thing outside it.
// Stand-in kept: the MutatingWebhookConfiguration `cache-io` is the rendered one with one
// namespaceSelector term added that no namespace matches, so its failurePolicy Fail and
// in-cluster Service (nothing serves it: no kubelet) cannot touch other test files' pods.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { EndpointSliceSource } from "../../src/cache/peers/membership.js";
import { NAMES } from "../../src/deploy/names.js";
import { logger } from "../../src/shared/log.js";
import { parsePolicy } from "../../src/policy/load.js";
import { cacheKey } from "../../src/shared/protocol.js";
import type { Api } from "./api.js";
import { applyDir, render } from "./apply.js";
import { describeCluster } from "./context.js";
import { adminApi, cacheIoCli, createNamespace, deleteNamespaces, serviceAccountToken, tokenKubeconfig, until } from "./kube.js";

const NS = "cache-io";
const MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/cache-io";
const SECRET = `/api/v1/namespaces/${NS}/secrets/cache-io-webhook-tls`;
const PODS_NS = "rbac-pods";
const b64 = (s: string) => Buffer.from(s, "base64").toString("utf8");

describeCluster("each component with its own ServiceAccount token: the real RBAC authorizer", (c) => {
  let api: Api;
  let dir: string;
  const token = (sa: string) => serviceAccountToken(api, NS, sa);

  beforeAll(async () => {
    api = adminApi(c);
    dir = mkdtempSync(join(tmpdir(), "cache-io-rbac-"));
    await applyDir(c, "deploy/default"); // namespace, ServiceAccounts, Roles, bindings (the MWC: dry run)
    const mwc = (await render(c, "deploy/default")).find((o) => o.kind === "MutatingWebhookConfiguration")!;
    for (const w of mwc.webhooks) w.namespaceSelector.matchExpressions.push({ key: "cache-io.test/nothing-has-this", operator: "In", values: ["in"] });
    await api.req("DELETE", MWC);
    await api.must("POST", MWC.replace(/\/cache-io$/, ""), mwc);
    await createNamespace(api, PODS_NS);
  }, 120_000);

  afterAll(async () => {
    if (api) {
      await api.req("DELETE", MWC);
      await deleteNamespaces(api, [PODS_NS]);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function caBundles(): Promise<string[]> {
    return ((await api.get(MWC)).body.webhooks as { clientConfig: { caBundle?: string } }[]).map((w) => b64(w.clientConfig.caBundle ?? ""));
  }

  it("certs install: creates the Secret and patches every caBundle, reuses it, renews it, and is safe twice at once", async () => {
    await api.req("DELETE", SECRET);
    const kc = tokenKubeconfig(c, await token("cache-io-certs"));
    const first = await cacheIoCli(["certs", "install", "--days", "40", "--renew-before", "30"], kc);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("Secret cache-io/cache-io-webhook-tls created; caBundle set on 3 webhook(s) of cache-io");
    const secret = (await api.get(SECRET)).body;
    expect(secret.type).toBe("kubernetes.io/tls");
    const ca = b64(secret.data["ca.crt"]);
    expect(await caBundles()).toEqual([ca, ca, ca]);
    const cert1 = new X509Certificate(b64(secret.data["tls.crt"]));
    expect(cert1.checkHost("cache-io-webhook.cache-io.svc")).toBe("cache-io-webhook.cache-io.svc");

    const again = await cacheIoCli(["certs", "install", "--days", "40", "--renew-before", "30"], kc);
    expect(again.stdout).toContain("reused");

    // 40 days left < 45: renewed with the same CA (it lives 80), so the caBundle stays valid
    const renewed = await cacheIoCli(["certs", "install", "--days", "60", "--renew-before", "45"], kc);
    expect(renewed.code, renewed.stderr).toBe(0);
    expect(renewed.stdout).toContain("renewed");
    const after = (await api.get(SECRET)).body;
    expect(b64(after.data["ca.crt"])).toBe(ca);
    expect(new X509Certificate(b64(after.data["tls.crt"])).serialNumber).not.toBe(cert1.serialNumber);
    expect(await caBundles()).toEqual([ca, ca, ca]);

    await api.must("DELETE", SECRET);
    const both = await Promise.all([cacheIoCli(["certs", "install"], kc), cacheIoCli(["certs", "install"], kc)]);
    for (const r of both) expect(r.code, r.stderr).toBe(0);
    expect(both.map((r) => /Secret \S+ (\w+);/.exec(r.stdout)?.[1]).sort()).toEqual(["created", "reused"]);
    const final = (await api.get(SECRET)).body;
    const finalCa = b64(final.data["ca.crt"]);
    expect(await caBundles()).toEqual([finalCa, finalCa, finalCa]);
    expect(new X509Certificate(b64(final.data["tls.crt"])).verify(new X509Certificate(finalCa).publicKey)).toBe(true);
  }, 120_000);

  it("certs install's token gets 403 for another Secret and for another webhook configuration", async () => {
    await api.req("POST", `/api/v1/namespaces/${NS}/secrets`, { apiVersion: "v1", kind: "Secret", metadata: { name: "not-for-certs" }, stringData: { a: "b" } });
    const certs = api.withAuth({ token: await token("cache-io-certs") });
    expect((await certs.get(`/api/v1/namespaces/${NS}/secrets/not-for-certs`)).status).toBe(403);
    expect((await certs.get(`/api/v1/namespaces/${NS}/secrets`)).status).toBe(403);
    const other = await certs.req("PATCH", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/someone-else", { metadata: { labels: { x: "y" } } });
    expect(other.status).toBe(403);
    expect(other.body.message).toContain('User "system:serviceaccount:cache-io:cache-io-certs" cannot patch resource "mutatingwebhookconfigurations"');
  });

  it("prepull reconcile: server-side applies its DaemonSet, whose pods the controller puts on every kwok node; 403 outside its namespace", async () => {
    const policy = join(dir, "prepull-policy.yaml");
    writeFileSync(policy, "prepull:\n  images: [registry.example.com/big/model-server:2.1]\n");
    const kc = tokenKubeconfig(c, await token("cache-io-prepull-controller"), NS);
    const r = await cacheIoCli(["prepull", "reconcile", "--once", "--policy", policy], kc);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const list = (await api.get(`/apis/apps/v1/namespaces/${NS}/daemonsets?labelSelector=app.kubernetes.io%2Fcomponent%3Dprepull`)).body.items;
    expect(list).toHaveLength(1);
    const ds = list[0];
    expect(ds.metadata.managedFields.map((m: { operation: string }) => m.operation)).toContain("Apply");
    const initImages = ds.spec.template.spec.initContainers.map((x: { image: string }) => x.image);
    expect(initImages).toContain("registry.example.com/big/model-server:2.1");
    const pods = await until("the pre-pull DaemonSet's pods on every node", async () => {
      const items = (await api.get(`/api/v1/namespaces/${NS}/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dprepull`)).body.items as { spec: { nodeName?: string } }[];
      return items.filter((p) => p.spec.nodeName).length === c.nodes.length ? items : undefined;
    }, 90_000);
    expect(pods.map((p) => p.spec.nodeName).sort()).toEqual(c.nodes.map((n) => n.name).sort());

    const prepull = api.withAuth({ token: await token("cache-io-prepull-controller") });
    expect((await prepull.get(`/apis/apps/v1/namespaces/${PODS_NS}/daemonsets`)).status).toBe(403);
    expect((await prepull.get(`/api/v1/namespaces/${NS}/secrets`)).status).toBe(403);
  }, 120_000);

  it("the node cache's pod watch sees exactly its node's pods with its token; without the role the eviction guard stays shut", async () => {
    const parsed = parsePolicy("");
    if (!parsed.ok) throw new Error(parsed.errors.join());
    const root = parsed.policy.cache.root;
    const node = c.nodes[0]!;
    const other = c.nodes[1]!;
    const kcFor = (file: string) => {
      const kc = new KubeConfig();
      kc.loadFromFile(file);
      return kc;
    };
    const caches: RunningCache[] = [];
    try {
      const start = async (kc: KubeConfig) => {
        const rc = await startCache({ root: mkdtempSync(join(dir, "cache-")), host: node.ip, port: 0, nodeName: node.name, kubeConfig: kc, policy: () => parsed.policy });
        caches.push(rc);
        return rc;
      };
      const cache = await start(kcFor(tokenKubeconfig(c, await token("cache-io-cache"))));
      await until("the pod watch synced", async () => (cache.cache.inUse.watchState === "synced" ? true : undefined));
      expect(cache.cache.inUse.blocked()).toBeNull();

      const mine = cacheKey("https://models.example.com/mine.bin");
      const theirs = cacheKey("https://models.example.com/theirs.bin");
      const podOn = (name: string, nodeName: string, key: string) => ({
        apiVersion: "v1", kind: "Pod", metadata: { name },
        spec: { nodeName, containers: [{ name: "app", image: "registry.example.com/app:1" }], volumes: [{ name: "f", hostPath: { path: `${root}/objects/${key}`, type: "DirectoryOrCreate" } }] },
      });
      await api.must("POST", `/api/v1/namespaces/${PODS_NS}/pods`, podOn("uses-mine", node.name, mine));
      await api.must("POST", `/api/v1/namespaces/${PODS_NS}/pods`, podOn("uses-theirs", other.name, theirs));
      await until("the pod on this node seen by the watch", async () => (cache.cache.inUse.mounted(mine) ? true : undefined));
      expect(cache.cache.inUse.mounted(theirs)).toBe(false); // fieldSelector spec.nodeName: another node's pod
      await api.must("DELETE", `/api/v1/namespaces/${PODS_NS}/pods/uses-mine`, { gracePeriodSeconds: 0 });
      await until("the deleted pod's file no longer in use", async () => (cache.cache.inUse.mounted(mine) ? undefined : true));

      const cacheApi = api.withAuth({ token: await token("cache-io-cache") });
      expect((await cacheApi.get(`/api/v1/namespaces/${NS}/secrets`)).status).toBe(403);
      expect((await cacheApi.post(`/api/v1/namespaces/${PODS_NS}/pods`, podOn("by-cache", node.name, mine))).status).toBe(403);

      // The certs ServiceAccount may not list pods: the watch never syncs and eviction stays blocked.
      const denied = await start(kcFor(tokenKubeconfig(c, await token("cache-io-certs"))));
      await new Promise((r) => setTimeout(r, 3000));
      expect(denied.cache.inUse.watchState).toBe("syncing");
      expect(denied.cache.inUse.blocked()).toMatch(/has not yet/);
    } finally {
      for (const rc of caches) await rc.close(100);
    }
  }, 120_000);

  it("the node cache's peer membership lists and watches the peers Service's EndpointSlices with its token; 403 elsewhere", async () => {
    const slices = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`;
    await api.must("POST", slices, {
      apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice",
      metadata: { name: "rbac-peers", labels: { "kubernetes.io/service-name": NAMES.peersService, "endpointslice.kubernetes.io/managed-by": "cache-io.test" } },
      addressType: "IPv4", ports: [{ name: "peer", port: 8586, protocol: "TCP" }],
      // a node name of its own: the DaemonSet's kwok pods are peers on the real nodes already (the controller's slice)
      endpoints: [{ addresses: ["10.244.7.7"], nodeName: "rbac-peer-node", conditions: { ready: true } }],
    });
    const kc = new KubeConfig();
    kc.loadFromFile(tokenKubeconfig(c, await token("cache-io-cache"), NS));
    const source = new EndpointSliceSource({ kubeConfig: kc, namespace: NS, service: NAMES.peersService, defaultPort: 8586, log: logger("rbac-test") });
    try {
      await source.start();
      await until("the peer of the slice", async () => (source.peers().some((p) => p.address === "10.244.7.7") ? true : undefined));
      expect(source.peers().find((p) => p.address === "10.244.7.7")).toEqual({ node: "rbac-peer-node", address: "10.244.7.7", port: 8586 });
      // The generated headless Service over the generated DaemonSet: the real EndpointSlice controller lists its pod on every kwok node, with the port named peer.
      const daemonPeers = await until("the DaemonSet's pods as peers", async () => {
        const ps = source.peers().filter((p) => p.node !== "rbac-peer-node");
        return ps.length === c.nodes.length ? ps : undefined;
      }, 90_000);
      expect(daemonPeers.map((p) => [p.node, p.port]).sort()).toEqual(c.nodes.map((n) => [n.name, 8586]).sort());
      const cacheApi = api.withAuth({ token: await token("cache-io-cache") });
      expect((await cacheApi.get(slices)).status).toBe(200);
      expect((await cacheApi.get(`${slices}/rbac-peers`)).status).toBe(403); // list and watch only
      expect((await cacheApi.get(`/apis/discovery.k8s.io/v1/namespaces/${PODS_NS}/endpointslices`)).status).toBe(403);
      expect((await cacheApi.get(`/api/v1/namespaces/${NS}/services`)).status).toBe(403);
    } finally {
      source.stop();
      await api.req("DELETE", `${slices}/rbac-peers`);
    }
  }, 120_000);
});
