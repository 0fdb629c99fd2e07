// A platform engineer's path against a real kube-apiserver (test/cluster/harness.ts:
// etcd, API server, controllers, scheduler, kwok nodes): `cache-io check --pre`,
// `helm install`, `cache-io check` (failing until the certs exist, then green), `helm
// upgrade`, `helm uninstall`. This file starts a control plane of its own: the chart's
// cluster-scoped objects (webhook configuration, ClusterRoles, PriorityClass) have
// fixed names that the shared test cluster's deploy/ tests also use. What an upgrade
// must keep: the caBundle the cert bootstrap set, and no "field is immutable" error
// from the cert Job.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { installCrds } from "../cluster/apply.js";
import { startCluster, type Cluster } from "../cluster/harness.js";
import { cacheIoCli, kubectl, serviceAccountToken, tokenKubeconfig, adminApi } from "../cluster/kube.js";
import { startHostWebhook, type HostWebhook } from "../cluster/webhook-host.js";
import { generateBundle, serviceDnsNames, writeBundle } from "../../src/certs/generate.js";
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
let hostWebhook: HostWebhook | undefined;

interface CheckRun {
  code: number;
  ok: boolean;
  checks: { id: string; status: "ok" | "warn" | "fail"; detail: string; hint?: string }[];
  text: string;
}

/**
 * `cache-io check ARGS` (the real CLI), once as JSON and once as text. The two runs may
 * differ while kwok marks pods ready; `textCode` is the text run's exit code.
 */
async function check(args: string[], kubeconfigFile = cluster!.kubeconfig): Promise<CheckRun & { textCode: number }> {
  const json = await cacheIoCli(["check", "-n", NS, "-o", "json", ...args], kubeconfigFile);
  const text = await cacheIoCli(["check", "-n", NS, ...args], kubeconfigFile);
  const parsed = JSON.parse(json.stdout) as Omit<CheckRun, "code" | "text">;
  return { code: json.code, ...parsed, text: text.stdout, textCode: text.code };
}

const statusOf = (r: CheckRun) => Object.fromEntries(r.checks.map((c) => [c.id, c.status]));

async function helm(args: string[]): Promise<{ code: number; out: string; err: string }> {
  if (!cluster || !helmTool.path) throw new Error(`no cluster or helm: ${tools.ok ? "" : tools.reason}`);
  return run(helmTool.path, [...args, "--kubeconfig", cluster.kubeconfig], { maxBuffer: 16 * 2 ** 20, timeout: 180_000 }).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );
}

/** Polls until `f` gives a value (the controllers and kwok take a moment); the last state in the error. */
async function until<T>(f: () => Promise<T | undefined>, last: () => Promise<string>, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`not reached in ${ms / 1000} s; last:\n${await last()}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
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
  }, 300_000);

  afterAll(async () => {
    await hostWebhook?.stop();
    await cluster?.stop();
  }, 120_000);

  it("cache-io check --pre on a fresh cluster: version, matchConditions, native sidecars, RBAC, namespace all pass (exit 0)", async () => {
    const r = await check(["--pre"]);
    expect(r.textCode).toBe(0);
    expect(r.checks.map((c) => [c.id, c.status])).toEqual([
      ["kubernetes-version", "ok"], ["match-conditions", "ok"], ["native-sidecars", "ok"], ["installer-rbac", "ok"], ["namespace-pod-security", "ok"],
    ]);
    expect(r.code).toBe(0);
    expect(r.text).toMatch(/^✔ Kubernetes version: v1\.36\.\d+ \(1\.30 or later needed\)$/m);
    expect(r.text).toMatch(/does not exist yet: .*kubectl create namespace cache-io/);
    expect(r.text).toContain("Status: OK");
  }, 120_000);

  it("cache-io check --pre fails (exit 1, with the fix) for a baseline namespace and for an installer without RBAC", async () => {
    expect((await kubectl(cluster!, ["create", "namespace", NS])).code).toBe(0);
    expect((await kubectl(cluster!, ["label", "namespace", NS, "pod-security.kubernetes.io/enforce=baseline"])).code).toBe(0);
    const baseline = await check(["--pre"]);
    expect([baseline.code, baseline.textCode]).toEqual([1, 1]);
    expect(statusOf(baseline)["namespace-pod-security"]).toBe("fail");
    expect(baseline.text).toMatch(/✖ Pod Security of namespace cache-io: pod-security\.kubernetes\.io\/enforce=baseline forbids the node cache's hostPath and hostPort\n {4}fix: kubectl label namespace cache-io pod-security\.kubernetes\.io\/enforce=privileged --overwrite/);

    const api = adminApi(cluster!);
    await api.must("POST", "/api/v1/namespaces/default/serviceaccounts", { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "nobody" } });
    const nobody = tokenKubeconfig(cluster!, await serviceAccountToken(api, "default", "nobody"));
    const limited = await check(["--pre"], nobody);
    expect(limited.code).toBe(1);
    const rbac = limited.checks.find((c) => c.id === "installer-rbac")!;
    expect(rbac.status).toBe("fail");
    expect(rbac.detail).toMatch(/not allowed to create mutatingwebhookconfigurations\.admissionregistration\.k8s\.io, .* and \d+ more/);

    // As docs/INSTALL.md says for Helm: the namespace allows hostPath/hostPort (the node cache).
    expect((await kubectl(cluster!, ["label", "namespace", NS, "pod-security.kubernetes.io/enforce=privileged", "--overwrite"])).code).toBe(0);
    expect(statusOf(await check(["--pre"]))["namespace-pod-security"]).toBe("ok");
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

  it("cache-io check right after install: fails (exit 1) on the missing caBundle and TLS Secret, each with a fix", async () => {
    const r = await check([]);
    expect(r.code).toBe(1);
    expect(statusOf(r)).toMatchObject({ "webhook-configuration": "fail", "ca-bundle": "fail", "cert-expiry": "fail", "dry-run": "warn" });
    expect(r.text).toMatch(/✖ webhook configuration: no caBundle on mount\.files\.cache\.io, mount-privileged\.files\.cache\.io, copy\.files\.cache\.io\n {4}fix: /);
    expect(r.text).toMatch(/‼ annotated pod is mutated \(server-side dry run\): no namespace is labelled cache\.io\/inject=enabled yet/);
    expect(r.text).toContain("Status: FAILED");
  }, 120_000);

  it("after the real cert bootstrap (cache-io certs install): the caBundle verifies the Secret's cert for the Service, and the cert is far from expiry", async () => {
    const boot = await cacheIoCli(["certs", "install", "--namespace", NS], cluster!.kubeconfig);
    expect(boot.code, boot.stderr).toBe(0);
    const r = await check([]);
    expect(statusOf(r)).toMatchObject({ "webhook-configuration": "ok", "ca-bundle": "ok", "cert-expiry": "ok" });
    expect(r.checks.find((c) => c.id === "ca-bundle")!.detail).toBe("every entry's caBundle verifies the certificate for cache-io-webhook.cache-io.svc");

    // A caBundle from another CA is caught.
    const other = await generateBundle({ dnsNames: serviceDnsNames("cache-io-webhook", NS) });
    const patch = JSON.stringify([{ op: "replace", path: "/webhooks/1/clientConfig/caBundle", value: Buffer.from(other.caCert).toString("base64") }]);
    expect((await kubectl(cluster!, ["patch", "mutatingwebhookconfiguration", "cache-io", "--type=json", "-p", patch])).code).toBe(0);
    const wrong = await check([]);
    expect(wrong.checks.find((c) => c.id === "ca-bundle")).toMatchObject({ status: "fail", detail: expect.stringContaining("the caBundle of mount-privileged.files.cache.io does not verify the certificate") });
    expect((await cacheIoCli(["certs", "install", "--namespace", NS], cluster!.kubeconfig)).code).toBe(0);
  }, 120_000);

  it("with an opted-in namespace and the webhook reachable by the API server, every post-install check passes (exit 0)", async () => {
    // kwok runs no containers: the webhook runs on the host, with a cert that also names
    // 127.0.0.1, and the configuration's entries point at it by URL.
    const bundle = await generateBundle({ dnsNames: serviceDnsNames("cache-io-webhook", NS), ips: ["127.0.0.1"] });
    const certs = mkdtempSync(join(cluster!.dir, "host-webhook-"));
    writeBundle(certs, bundle);
    const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "cache-io-webhook-tls", namespace: NS }, type: "kubernetes.io/tls", data: { "tls.crt": Buffer.from(bundle.cert).toString("base64"), "tls.key": Buffer.from(bundle.key).toString("base64"), "ca.crt": Buffer.from(bundle.caCert).toString("base64") } };
    writeFileSync(join(certs, "secret.json"), JSON.stringify(secret));
    expect((await kubectl(cluster!, ["apply", "-f", join(certs, "secret.json")])).code).toBe(0);
    hostWebhook = await startHostWebhook(certs);
    const ca = Buffer.from(bundle.caCert).toString("base64");
    const config = (await get("mutatingwebhookconfiguration", "cache-io"))!;
    const ops = config.webhooks.map((w: Obj, i: number) => ({ op: "replace", path: `/webhooks/${i}/clientConfig`, value: { url: `https://127.0.0.1:${hostWebhook!.port}${w.clientConfig.service.path}`, caBundle: ca } }));
    expect((await kubectl(cluster!, ["patch", "mutatingwebhookconfiguration", "cache-io", "--type=json", "-p", JSON.stringify(ops)])).code).toBe(0);
    expect((await kubectl(cluster!, ["create", "namespace", "team-a"])).code).toBe(0);
    expect((await kubectl(cluster!, ["label", "namespace", "team-a", "cache.io/inject=enabled"])).code).toBe(0);

    const r = await until(async () => {
      const x = await check([]);
      return x.code === 0 ? x : undefined;
    }, () => check([]).then((x) => x.text));
    expect(r.checks.every((c) => c.status === "ok"), r.text).toBe(true);
    expect(r.textCode).toBe(0);
    expect(r.text).toMatch(/✔ annotated pod is mutated \(server-side dry run\): in team-a: injected \(init containers: cache-io-fetch\)/);
    expect(r.text).toMatch(/✔ node cache on every schedulable node: ready on all \d+ nodes/);
    expect(r.text).toMatch(/✔ webhook endpoints: \d+ ready behind Service cache-io-webhook/);

    // The dry run really goes through the webhook: stopped, the check fails with the API server's error.
    await hostWebhook.stop();
    const down = await check([]);
    expect(down.code).toBe(1);
    expect(down.checks.find((c) => c.id === "dry-run")).toMatchObject({ status: "fail", detail: expect.stringMatching(/in team-a: .*failed calling webhook/) });
    hostWebhook = undefined;

    // Back to the Service the chart configured (a URL and a service at once is invalid), keeping this caBundle.
    const back = config.webhooks.map((w: Obj, i: number) => ({ op: "replace", path: `/webhooks/${i}/clientConfig`, value: { service: w.clientConfig.service, caBundle: ca } }));
    expect((await kubectl(cluster!, ["patch", "mutatingwebhookconfiguration", "cache-io", "--type=json", "-p", JSON.stringify(back)])).code).toBe(0);
  }, 240_000);

  it("helm upgrade with new values: applied, the cert Job of the new revision replaces the old one, and the caBundle the cert Job set survives", async () => {
    // The caBundle the cert bootstrap set (and the test pointed at the host) before the upgrade.
    const caBundle = (await get("mutatingwebhookconfiguration", "cache-io"))!.webhooks[0].clientConfig.caBundle as string;
    expect(caBundle).toBeTruthy();

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

