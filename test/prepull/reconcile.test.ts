// `prepull reconcile` against the Kubernetes API stand-in: server-side apply with the
// right content type, field manager and force; stale owned DaemonSets deleted, others
// left alone; policy edits followed.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/policy/load.js";
import { PolicyStore } from "../../src/policy/store.js";
import { follow, reconcileOnce } from "../../src/prepull/reconcile.js";
import { renderPrepull } from "../../src/prepull/render.js";
import { KubeApiStandIn } from "../support/kube-api.js";

const opts = { namespace: "cache-io", image: "example.com/cache-io:1.0" };
const TWO_GROUPS = "prepull: {images: [a.example.com/big:1, {image: b.example.com/arm:1, architectures: [arm64]}]}";
const ONE_GROUP = "prepull: {images: [a.example.com/big:2]}";

function policy(text: string) {
  const r = parsePolicy(text);
  if (!r.ok) throw new Error(r.errors.join());
  return r.policy;
}

let api: KubeApiStandIn;
beforeEach(async () => {
  api = await new KubeApiStandIn().start();
});
afterEach(async () => {
  expect(api.violations).toEqual([]);
  await api.close();
});
const daemonSets = () => [...api.objects.keys()].filter((k) => k.startsWith("daemonsets/")).sort();

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe("prepull reconcile", () => {
  it("applies each rendered DaemonSet server-side as field manager cache-io, with force", async () => {
    const result = await reconcileOnce(api.kubeConfig(), policy(TWO_GROUPS), opts);
    expect(result).toEqual({ applied: ["cache-io-prepull", "cache-io-prepull-arm64"], deleted: [] });
    const applies = api.requests.filter((r) => r.method === "PATCH");
    expect(applies).toHaveLength(2);
    const rendered = renderPrepull(policy(TWO_GROUPS), opts);
    applies.forEach((r, i) => {
      expect(r).toMatchObject({ contentType: "application/apply-patch+yaml", query: { fieldManager: "cache-io", force: "true" }, status: 201, verbs: ["patch", "create"] });
      expect(r.body).toEqual(JSON.parse(JSON.stringify(rendered[i])));
    });
    expect(daemonSets()).toEqual(["daemonsets/cache-io/cache-io-prepull", "daemonsets/cache-io/cache-io-prepull-arm64"]);
    const list = api.requests.find((r) => r.method === "GET")!;
    expect(list.query.labelSelector).toBe("app.kubernetes.io/component=prepull,app.kubernetes.io/managed-by=cache-io");
  });

  it("updates in place and deletes owned DaemonSets the policy no longer needs, never others", async () => {
    api.seed("daemonsets", { apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name: "cache-io-cache", namespace: "cache-io", labels: { "app.kubernetes.io/component": "node-cache" } } });
    await reconcileOnce(api.kubeConfig(), policy(TWO_GROUPS), opts);
    const result = await reconcileOnce(api.kubeConfig(), policy(ONE_GROUP), opts);
    expect(result).toEqual({ applied: ["cache-io-prepull"], deleted: ["cache-io-prepull-arm64"] });
    expect(daemonSets()).toEqual(["daemonsets/cache-io/cache-io-cache", "daemonsets/cache-io/cache-io-prepull"]);
    const del = api.requests.find((r) => r.method === "DELETE")!;
    expect(del).toMatchObject({ path: "/apis/apps/v1/namespaces/cache-io/daemonsets/cache-io-prepull-arm64", status: 200 });
    const stored = api.get("daemonsets", "cache-io", "cache-io-prepull") as { spec: { template: { spec: { initContainers: { image: string }[] } } } };
    expect(stored.spec.template.spec.initContainers.map((c) => c.image)).toEqual(["example.com/cache-io:1.0", "a.example.com/big:2"]);
  });

  it("an empty image list removes every owned DaemonSet", async () => {
    await reconcileOnce(api.kubeConfig(), policy(TWO_GROUPS), opts);
    expect((await reconcileOnce(api.kubeConfig(), policy(""), opts)).deleted.sort()).toEqual(["cache-io-prepull", "cache-io-prepull-arm64"]);
    expect(daemonSets()).toEqual([]);
  });

  it("follows policy file edits and keeps going after a failed run", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "prepull-")), "policy.yaml");
    writeFileSync(file, TWO_GROUPS);
    const store = PolicyStore.fromFile(file);
    api.failNext((r) => r.method === "PATCH", 500, "InternalError");
    const stop = new AbortController();
    const done = follow(api.kubeConfig(), store, opts, stop.signal, 200);
    await until(() => daemonSets().length === 2, "the first successful reconcile (after the injected 500)");
    writeFileSync(file, ONE_GROUP);
    await until(() => daemonSets().length === 1, "the reconcile after the policy edit");
    stop.abort();
    await done;
    expect(api.requests.some((r) => r.status === 500)).toBe(true);
  });

  it("the CLI reconciles once with --once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kube-"));
    const kubeconfig = join(dir, "config");
    api.writeKubeconfig(kubeconfig);
    writeFileSync(join(dir, "policy.yaml"), TWO_GROUPS);
    await promisify(execFile)(process.execPath, ["dist/cli/main.js", "prepull", "reconcile", "--once", "--policy", join(dir, "policy.yaml"), "--namespace", "cache-io"], {
      env: { PATH: process.env.PATH, KUBECONFIG: kubeconfig, HOME: dir },
    });
    expect(daemonSets()).toEqual(["daemonsets/cache-io/cache-io-prepull", "daemonsets/cache-io/cache-io-prepull-arm64"]);
  });
});
