// Every kustomization deploy/ ships, applied with `kubectl apply --server-side` to the real
// kube-apiserver (v1.36), with the real cert-manager and Prometheus Operator CRDs from their
// pinned Go modules; then the real controllers turn the workloads into pods that the
// real admission chain (PodSecurity on the cache-io namespace included) accepts and the
// scheduler places on the kwok nodes. Stand-in kept: the MutatingWebhookConfiguration is
// applied with --dry-run=server only (see apply.ts for why).
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Api } from "./api.js";
import { applyDir, FIELD_MANAGER, installCrds, type Obj } from "./apply.js";
import { describeCluster } from "./context.js";
import { adminApi, kubectl, until } from "./kube.js";

const NODE_CACHE_WARNING = /^Warning: would violate PodSecurity "baseline:latest": (host namespaces \(hostNetwork=true\), )?hostPath volumes \(volume "cache-root"\), hostPort \(container "cache" uses hostPort 8585\)$/;
const DIRS = ["deploy/default", "deploy/overlays/cert-manager", "deploy/overlays/host-network", "deploy/monitoring", "deploy/base"];

describeCluster("deploy/ applied to the real API server", (c) => {
  let api: Api;
  const applied = new Map<string, Obj[]>();

  beforeAll(async () => {
    api = adminApi(c);
    await installCrds(c);
  }, 180_000);

  afterAll(async () => {
    if (api) await applyDir(c, "deploy/default"); // leave the default install for the other files
  }, 120_000);

  for (const dir of DIRS) {
    it(`${dir}: every object is accepted by kubectl apply --server-side and stored`, async () => {
      const { objs, out, warnings } = await applyDir(c, dir);
      // The namespace warns at baseline: only the node cache (hostPath, hostPort by design) may trip it.
      for (const w of warnings) expect(w).toMatch(NODE_CACHE_WARNING);
      applied.set(dir, objs);
      expect(objs.length).toBeGreaterThan(0);
      const stored = objs.filter((o) => o.kind !== "MutatingWebhookConfiguration");
      const g = await kubectl(c, ["get", "--show-managed-fields", "-o", "json", "-f", "-"], { input: JSON.stringify({ apiVersion: "v1", kind: "List", items: stored }) });
      expect(g.code, g.stderr).toBe(0);
      const items = JSON.parse(g.stdout).items as Obj[];
      expect(items.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(stored.map((o) => `${o.kind}/${o.metadata.name}`));
      for (const o of items) {
        expect(o.metadata.managedFields.some((m: { manager: string; operation: string }) => m.manager === FIELD_MANAGER && m.operation === "Apply"), `${o.kind}/${o.metadata.name}`).toBe(true);
      }
      if (objs.some((o) => o.kind === "MutatingWebhookConfiguration")) expect(out).toMatch(/mutatingwebhookconfiguration.* serverside-applied \(server dry run\)/);
    }, 120_000);
  }

  it("the real controllers create the workloads' pods, PodSecurity admits them, and the scheduler places them on the kwok nodes", async () => {
    await applyDir(c, "deploy/default");
    const ns = "/apis/apps/v1/namespaces/cache-io";
    const ds = await until("the node cache DaemonSet ready on every node", async () => {
      const d = (await api.get(`${ns}/daemonsets/cache-io-cache`)).body;
      return d.status?.numberReady === c.nodes.length && d.status?.updatedNumberScheduled === c.nodes.length ? d : undefined;
    }, 120_000);
    expect(ds.status.desiredNumberScheduled).toBe(c.nodes.length);
    for (const name of ["cache-io-webhook", "cache-io-prepull-controller"]) {
      const d = await until(`Deployment ${name} available`, async () => {
        const x = (await api.get(`${ns}/deployments/${name}`)).body;
        return x.status?.availableReplicas === x.spec.replicas ? x : undefined;
      }, 120_000);
      expect(d.status.conditions.find((k: { type: string }) => k.type === "ReplicaFailure"), name).toBeUndefined();
    }
    const pods = (await api.get("/api/v1/namespaces/cache-io/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dnode-cache")).body.items as Obj[];
    expect(pods.map((p) => p.spec.nodeName).sort()).toEqual(c.nodes.map((n) => n.name).sort());
    for (const p of pods) expect(p.status.hostIP).toBe(c.nodes.find((n) => n.name === p.spec.nodeName)!.ip);
    const job = await until("the certs Job's pod", async () => {
      const items = (await api.get("/api/v1/namespaces/cache-io/pods?labelSelector=batch.kubernetes.io%2Fjob-name%3Dcache-io-certs")).body.items as Obj[];
      return items.length ? items : undefined;
    }, 120_000);
    expect(job[0]!.spec.serviceAccountName).toBe("cache-io-certs");
  }, 300_000);
});
