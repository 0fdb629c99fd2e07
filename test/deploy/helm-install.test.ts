// `helm install`, `upgrade` and `uninstall` of the chart against a real kube-apiserver
// (test/cluster/harness.ts: etcd, API server, controllers, scheduler, kwok nodes). This
// file starts a control plane of its own: the chart's cluster-scoped objects (webhook
// configuration, ClusterRoles, PriorityClass) have fixed names that the shared test
// cluster's deploy/ tests also use. What an upgrade must keep: the caBundle the cert Job
// set, and no "field is immutable" error from the cert Job.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { installCrds } from "../cluster/apply.js";
import { startCluster, type Cluster } from "../cluster/harness.js";
import { kubectl } from "../cluster/kube.js";
import { ensureTools } from "../cluster/tools.js";
import { findTool, IN_CI } from "./tools.js";
import type { Obj } from "./k8s.js";

const run = promisify(execFile);
const helmTool = findTool("helm", "Build it with `bash test/cluster/tools/build.sh helm` (Go module proxy).");
const tools = helmTool.path ? ensureTools() : ({ ok: false, reason: "no helm" } as const);
const enabled = tools.ok && !!helmTool.path && process.env.CACHE_IO_CLUSTER !== "off";
if (!enabled) process.stderr.write(`\n!!!!!!!! helm install tests SKIPPED (${tools.ok ? "no helm" : tools.reason}); they FAIL under CI=true !!!!!!!!\n`);
const describeHelm = enabled || IN_CI ? describe : describe.skip;
const CHART = "deploy/chart/cache-io";
const NS = "cache-io";

let cluster: Cluster | undefined;

async function helm(args: string[]): Promise<{ code: number; out: string; err: string }> {
  if (!cluster || !helmTool.path) throw new Error(`no cluster or helm: ${tools.ok ? "" : tools.reason}`);
  return run(helmTool.path, [...args, "--kubeconfig", cluster.kubeconfig], { maxBuffer: 16 * 2 ** 20, timeout: 180_000 }).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );
}

async function get(kind: string, name: string, namespace?: string): Promise<Obj | undefined> {
  const r = await kubectl(cluster!, ["get", kind, name, "-o", "json", ...(namespace ? ["-n", namespace] : [])]);
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(`kubectl get ${kind} ${name}: ${r.stderr}`);
  }
  return JSON.parse(r.stdout) as Obj;
}

/** Every object of the release's manifest, as `kind/name`. */
async function releaseObjects(release: string): Promise<{ kind: string; name: string; namespace?: string }[]> {
  const r = await helm(["get", "manifest", release, "-n", NS]);
  expect(r.code, r.err).toBe(0);
  return r.out.split(/^---$/m).map((d) => parse(d) as Obj).filter(Boolean).map((o) => ({ kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace }));
}

describeHelm("the Helm chart against a real API server", () => {
  beforeAll(async () => {
    if (!tools.ok) throw new Error(`the test control plane's binaries: ${tools.reason}`);
    cluster = await startCluster(tools.bin, { log: (s) => process.stderr.write(`[helm-cluster] ${s}\n`) });
    // As docs/INSTALL.md says: the namespace exists and allows hostPath/hostPort (the node cache).
    expect((await kubectl(cluster, ["create", "namespace", NS])).code).toBe(0);
    expect((await kubectl(cluster, ["label", "namespace", NS, "pod-security.kubernetes.io/enforce=privileged"])).code).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 120_000);

  it("helm install: every object is accepted and stored, with Helm's labels", async () => {
    const r = await helm(["install", "cache-io", CHART, "-n", NS]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("STATUS: deployed");
    expect(r.out).toContain("cache-io check --namespace cache-io");
    const objs = await releaseObjects("cache-io");
    expect(objs.length).toBeGreaterThan(15);
    for (const o of objs) {
      const live = await get(o.kind, o.name, o.namespace);
      expect(live, `${o.kind}/${o.name}`).toBeDefined();
      expect(live!.metadata.labels?.["app.kubernetes.io/managed-by"], `${o.kind}/${o.name}`).toBe("Helm");
      expect(live!.metadata.annotations?.["meta.helm.sh/release-name"], `${o.kind}/${o.name}`).toBe("cache-io");
    }
  }, 240_000);

  it("helm upgrade with new values: applied, the cert Job of the new revision replaces the old one, and the caBundle the cert Job set survives", async () => {
    // What the cert Job does in a real cluster (kwok runs no containers): set the caBundle.
    const caBundle = Buffer.from("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").toString("base64");
    const patch = JSON.stringify([0, 1, 2].map((i) => ({ op: "add", path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle })));
    const p = await kubectl(cluster!, ["patch", "mutatingwebhookconfiguration", "cache-io", "--type=json", "-p", patch]);
    expect(p.code, p.stderr).toBe(0);

    const r = await helm(["upgrade", "cache-io", CHART, "-n", NS, "--set", "webhook.replicas=3", "--set", "cache.port=9585", "--set", "image.tag=9.9.9"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/REVISION: 2/);

    expect((await get("deployment", "cache-io-webhook", NS))!.spec.replicas).toBe(3);
    const ds = (await get("daemonset", "cache-io-cache", NS))!;
    expect(ds.spec.template.spec.containers[0].ports[0]).toMatchObject({ containerPort: 9585, hostPort: 9585 });
    expect(ds.spec.template.spec.containers[0].image).toBe("ghcr.io/cache-io/cache-io:9.9.9");
    expect(parse((await get("configmap", "cache-io-policy", NS))!.data["policy.yaml"]).cache.port).toBe(9585);
    expect(await get("job", "cache-io-certs-2", NS)).toBeDefined();
    expect(await get("job", "cache-io-certs-1", NS)).toBeUndefined();
    const config = (await get("mutatingwebhookconfiguration", "cache-io"))!;
    for (const w of config.webhooks) expect(w.clientConfig.caBundle, w.name).toBe(caBundle);
  }, 240_000);

  it("helm uninstall removes every object of the release, cluster-scoped ones included", async () => {
    const objs = await releaseObjects("cache-io");
    const r = await helm(["uninstall", "cache-io", "-n", NS, "--wait", "--timeout", "120s"]);
    expect(r.code, r.err).toBe(0);
    for (const o of objs) expect(await get(o.kind, o.name, o.namespace), `${o.kind}/${o.name}`).toBeUndefined();
    expect((await helm(["list", "-n", NS, "-q"])).out.trim()).toBe("");
  }, 240_000);

  it("helm install with cert-manager and monitoring: the Certificates, Issuers, PodMonitors and PrometheusRule validate against the real CRDs", async () => {
    await installCrds(cluster!);
    const r = await helm(["install", "cache-io", CHART, "-n", NS, "--set", "certs.mode=cert-manager", "--set", "monitoring.enabled=true", "--set", "monitoring.labels.release=kube-prometheus-stack"]);
    expect(r.code, r.err).toBe(0);
    for (const [kind, name] of [["certificate", "cache-io-webhook"], ["issuer", "cache-io-ca"], ["podmonitor", "cache-io-webhook"], ["prometheusrule", "cache-io"]] as const) {
      expect(await get(kind, name, NS), `${kind}/${name}`).toBeDefined();
    }
    const rule = (await get("prometheusrule", "cache-io", NS))!;
    expect(rule.metadata.labels?.release).toBe("kube-prometheus-stack");
    expect(rule.spec.groups.flatMap((g: Obj) => g.rules).length).toBeGreaterThanOrEqual(10);
    expect(await get("job", "cache-io-certs-1", NS)).toBeUndefined();
    expect((await helm(["uninstall", "cache-io", "-n", NS, "--wait", "--timeout", "120s"])).code).toBe(0);
  }, 300_000);
});

