// RBAC is exactly what the code calls: run each component's real code against the API
// stand-in, turn the recorded requests into (resource, verb, name), and compare with
// the rendered Roles/ClusterRoles bound to that component's ServiceAccount, both ways.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1PolicyRule } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateBundle, renewServing, serviceDnsNames } from "../../src/certs/generate.js";
import { bundleToSecretData, installCerts } from "../../src/certs/install.js";
import { webhookConfiguration } from "../../src/deploy/webhook-config.js";
import { parsePolicy } from "../../src/policy/load.js";
import { reconcileOnce } from "../../src/prepull/reconcile.js";
import { KubeApiStandIn, type RecordedRequest } from "../support/kube-api.js";
import { kustomize, type Obj } from "./k8s.js";

interface Use { resource: string; verb: string; name?: string }

/** The rules bound to a ServiceAccount by the rendered (Cluster)RoleBindings (`kinds`: only those binding kinds). */
function rulesFor(objs: Obj[], sa: string, kinds = ["RoleBinding", "ClusterRoleBinding"]): V1PolicyRule[] {
  const bindings = objs.filter((o) => kinds.includes(o.kind) && o.subjects?.some((s: Obj) => s.kind === "ServiceAccount" && s.name === sa && s.namespace === "cache-io"));
  return bindings.flatMap((b) => objs.find((o) => o.kind === b.roleRef.kind && o.metadata.name === b.roleRef.name)!.rules as V1PolicyRule[]);
}

function uses(requests: RecordedRequest[]): Use[] {
  // RBAC cannot see the name of an object being created, so create is checked without one.
  return requests.flatMap((r) => r.verbs.map((verb) => ({ resource: r.resource, verb, ...(r.name && verb !== "create" ? { name: r.name } : {}) })));
}

const allows = (rule: V1PolicyRule, u: Use) =>
  rule.resources!.includes(u.resource) && rule.verbs.includes(u.verb) && (!rule.resourceNames?.length || (u.name !== undefined && rule.resourceNames.includes(u.name)));

/** `dynamic`: resources whose object names come from data (the pre-pull DaemonSets), which no resourceNames can list. */
function expectExactly(rules: V1PolicyRule[], used: Use[], dynamic: string[] = []): void {
  for (const u of used) expect(rules.some((r) => allows(r, u)), `${u.verb} ${u.resource}/${u.name ?? ""} is not granted`).toBe(true);
  for (const r of rules) for (const verb of r.verbs) for (const resource of r.resources!) {
    const calls = used.filter((u) => u.resource === resource && u.verb === verb);
    expect(calls.length > 0, `${verb} ${resource} is granted but never called`).toBe(true);
    if (r.resourceNames?.length) {
      // Named objects: exactly the names the code uses, no more.
      for (const name of r.resourceNames) expect(calls.some((u) => u.name === name), `${verb} ${resource}/${name} is granted but never called`).toBe(true);
    } else if (!dynamic.includes(resource)) {
      const names = [...new Set(calls.map((u) => u.name))];
      expect(names.includes(undefined), `${verb} ${resource} is granted on every object, but the code only uses ${names.join(", ")}: add resourceNames`).toBe(true);
    }
  }
}

let objs: Obj[];
beforeAll(async () => {
  objs = await kustomize("deploy/default");
});

describe("RBAC matches the calls each component makes", () => {
  it("cert bootstrap: create, reuse, renew", async () => {
    const api = await new KubeApiStandIn().start();
    api.seed("mutatingwebhookconfigurations", webhookConfiguration() as never);
    const opts = { namespace: "cache-io", service: "cache-io-webhook", secret: "cache-io-webhook-tls", webhookConfig: "cache-io", days: 365, renewBeforeDays: 30 };
    await installCerts(api.kubeConfig(), opts); // create + patch
    await installCerts(api.kubeConfig(), opts); // reuse
    const names = serviceDnsNames(opts.service, opts.namespace);
    const { caCert, caKey } = await generateBundle({ dnsNames: names });
    const s = api.get("secrets", "cache-io", opts.secret)!;
    api.seed("secrets", { ...s, data: bundleToSecretData(await renewServing({ caCert, caKey }, { dnsNames: names, days: 3 })) });
    await installCerts(api.kubeConfig(), opts); // renew (update) + patch the new CA
    expect(api.violations).toEqual([]);
    expectExactly(rulesFor(objs, "cache-io-certs"), uses(api.requests));
    await api.close();
  });

  it("pre-pull controller: apply new, apply existing, delete stale", async () => {
    const api = await new KubeApiStandIn().start();
    const policy = (t: string) => (parsePolicy(t) as { ok: true; policy: never }).policy;
    const opts = { namespace: "cache-io", image: "example.com/cache-io:1" };
    await reconcileOnce(api.kubeConfig(), policy("prepull: {images: [a.example.com/x:1, {image: b.example.com/y:1, architectures: [arm64]}]}"), opts);
    await reconcileOnce(api.kubeConfig(), policy("prepull: {images: [a.example.com/x:2]}"), opts);
    expect(api.violations).toEqual([]);
    // DaemonSet names derive from the policy's image groups and architectures.
    expectExactly(rulesFor(objs, "cache-io-prepull-controller"), uses(api.requests), ["daemonsets"]);
    await api.close();
  });

  describe("node cache", () => {
    let api: KubeApiStandIn;
    let cache: ChildProcess;
    beforeAll(async () => {
      api = await new KubeApiStandIn().start();
      const dir = mkdtempSync(join(tmpdir(), "cache-rbac-"));
      api.writeKubeconfig(join(dir, "kubeconfig"));
      cache = spawn(process.execPath, ["dist/cli/main.js", "cache", "--host", "127.0.0.1", "--port", "0", "--root", join(dir, "root"), "--node-name", "node-1"], {
        env: { PATH: process.env.PATH, KUBECONFIG: join(dir, "kubeconfig"), HOME: dir, LOG_LEVEL: "warn" },
        stdio: "ignore",
      });
      for (let i = 0; i < 300 && !api.requests.some((r) => r.verbs.includes("watch")); i++) await new Promise((r) => setTimeout(r, 50));
    });
    afterAll(async () => {
      cache.kill("SIGKILL");
      await api.close();
    });

    it("lists and watches only its own node's pods, which is all its ClusterRole grants", () => {
      const podCalls = api.requests.filter((r) => r.resource === "pods");
      expect(podCalls.map((r) => r.verbs[0])).toEqual(expect.arrayContaining(["list", "watch"]));
      for (const r of podCalls) expect(r.query.fieldSelector).toBe("spec.nodeName=node-1");
      expect(api.violations).toEqual([]);
      // Without --peers-service (the tier off) it makes no other call; the peers Role's use,
      // under the real authorizer: test/cluster/rbac.test.ts.
      expectExactly(rulesFor(objs, "cache-io-cache", ["ClusterRoleBinding"]), uses(api.requests));
    });
  });

  it("the node cache's peers Role: list and watch EndpointSlices in its own namespace, nothing else", () => {
    const roles = objs.filter((o) => o.kind === "Role" && o.metadata.name === "cache-io-cache-peers");
    expect(roles.map((r) => r.metadata.namespace)).toEqual(["cache-io"]);
    expect(rulesFor(objs, "cache-io-cache", ["RoleBinding"])).toEqual([{ apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] }]);
  });

  it("the webhook has no RBAC and no token", () => {
    expect(rulesFor(objs, "cache-io-webhook")).toEqual([]);
    expect(objs.find((o) => o.kind === "ServiceAccount" && o.metadata.name === "cache-io-webhook")!.automountServiceAccountToken).toBe(false);
  });

  it("the comparison itself fails on a missing or an extra verb", () => {
    const rules: V1PolicyRule[] = [{ apiGroups: [""], resources: ["secrets"], resourceNames: ["s"], verbs: ["get", "update"] }];
    expect(() => expectExactly(rules, [{ resource: "secrets", verb: "get", name: "s" }])).toThrow(/update secrets is granted but never called/);
    expect(() => expectExactly(rules, [{ resource: "secrets", verb: "get", name: "other" }])).toThrow(/get secrets\/other is not granted/);
  });

  it("the comparison itself fails on an extra resourceName and on a rule without the resourceNames the code uses", () => {
    const extra: V1PolicyRule[] = [{ apiGroups: [""], resources: ["secrets"], resourceNames: ["s", "t"], verbs: ["get"] }];
    expect(() => expectExactly(extra, [{ resource: "secrets", verb: "get", name: "s" }])).toThrow(/get secrets\/t is granted but never called/);
    const blanket: V1PolicyRule[] = [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }];
    expect(() => expectExactly(blanket, [{ resource: "secrets", verb: "get", name: "s" }])).toThrow(/get secrets is granted on every object, but the code only uses s: add resourceNames/);
    expect(() => expectExactly(blanket, [{ resource: "secrets", verb: "get" }])).not.toThrow();
  });

  it("the cert bootstrap's rules on its Secret and webhook configuration name exactly those objects", () => {
    const named = rulesFor(objs, "cache-io-certs").filter((r) => r.resourceNames?.length);
    const byResource = Object.fromEntries(named.flatMap((r) => r.resources!.map((res) => [res, [...r.resourceNames!].sort()])));
    expect(byResource).toEqual({ secrets: ["cache-io-webhook-tls"], mutatingwebhookconfigurations: ["cache-io"] });
  });
});
