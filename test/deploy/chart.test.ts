// The Helm chart with the real helm binary: `helm lint`, and `helm template` of several
// value sets. With default values (and each overlay's equivalent value) it renders the
// same objects as `kubectl kustomize` of deploy/ (apart from Helm's own labels and the
// per-revision cert Job name); with other values every object still validates, and the
// one-value settings (port, root, namespace, image) reach every place that needs them.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { serviceDnsNames } from "../../src/certs/generate.js";
import { parsePolicy } from "../../src/policy/load.js";
import { VERSION } from "../../src/shared/version.js";
import { checkCustomResource, find, isBuiltIn, kustomize, parseYamlDocs, podSpecOf, validate, type Obj } from "./k8s.js";
import { findTool, itWith, toolPath } from "./tools.js";

const run = promisify(execFile);
const helm = findTool("helm", "Build it with `bash test/cluster/tools/build.sh helm` (Go module proxy).");
const CHART = "deploy/chart/cache-io";
const HELM_LABELS = ["helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by"];

async function template(args: string[], namespace = "cache-io", release = "cache-io"): Promise<Obj[]> {
  const { stdout } = await run(toolPath(helm), ["template", release, CHART, "--namespace", namespace, "--kube-version", "1.36.3", ...args], { maxBuffer: 16 * 2 ** 20 });
  return parseYamlDocs(stdout);
}

async function templateError(args: string[], namespace = "cache-io"): Promise<string> {
  return template(args, namespace).then(
    () => "",
    (e: { stderr: string }) => e.stderr,
  );
}

const id = (o: Obj) => `${o.kind}/${o.metadata.name}`;
const byId = (objs: Obj[]) => new Map(objs.map((o) => [id(o), o]));

/** What Helm adds on purpose, taken out so the rest must equal kustomize's output exactly. */
function withoutHelmExtras(o: Obj): Obj {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (!v || typeof v !== "object") return v;
    const out = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, strip(x)])) as Obj;
    if (out.metadata?.labels) for (const l of HELM_LABELS) delete out.metadata.labels[l];
    return out;
  };
  const c = strip(o) as Obj;
  if (c.kind === "Job" && c.metadata.name === "cache-io-certs-1") c.metadata.name = "cache-io-certs";
  return semanticPolicy(c);
}

/** The policy ConfigMap compares as the policy it loads to (the chart's has no comments). */
function semanticPolicy(o: Obj): Obj {
  if (o.kind !== "ConfigMap" || o.metadata.name !== "cache-io-policy") return o;
  const loaded = parsePolicy(o.data["policy.yaml"]);
  if (!loaded.ok) throw new Error(`policy in ${o.metadata.name}: ${loaded.errors.join("; ")}`);
  return { ...o, data: { "policy.yaml": loaded.policy } } as Obj;
}

async function sameAsKustomize(dir: string, args: string[]): Promise<void> {
  const want = byId((await kustomize(dir)).filter((o) => o.kind !== "Namespace").map(semanticPolicy));
  const got = byId((await template(args)).map(withoutHelmExtras));
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [k, o] of got) expect(o, k).toEqual(want.get(k));
}

function validateAll(objs: Obj[], namespace: string): string[] {
  return objs.flatMap((o) => (isBuiltIn(o) ? validate(o) : checkCustomResource(o, namespace)));
}

const policyOf = (objs: Obj[]) => parse(find(objs, "ConfigMap", "cache-io-policy").data["policy.yaml"]) as Obj;

describe("the Helm chart", () => {
  itWith(helm)("passes helm lint --strict, with default and with non-default values", async () => {
    const { stdout } = await run(toolPath(helm), ["lint", CHART, "--strict"]);
    expect(stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
    await run(toolPath(helm), ["lint", CHART, "--strict", "--set", "certs.mode=cert-manager,monitoring.enabled=true,cache.hostNetwork=true"]);
  });

  it("is versioned with package.json (chart and app), and lists the Kubernetes versions it needs", () => {
    const chart = parse(readFileSync(`${CHART}/Chart.yaml`, "utf8")) as Obj;
    expect(chart).toMatchObject({ apiVersion: "v2", name: "cache-io", version: VERSION, appVersion: VERSION, kubeVersion: ">=1.30.0-0" });
  });

  itWith(helm)("default values render exactly what kubectl kustomize renders for deploy/default", async () => {
    await sameAsKustomize("deploy/default", []);
  });

  itWith(helm)("certs.mode=cert-manager renders exactly the cert-manager overlay", async () => {
    await sameAsKustomize("deploy/overlays/cert-manager", ["--set", "certs.mode=cert-manager"]);
  });

  itWith(helm)("cache.hostNetwork=true renders exactly the host-network overlay", async () => {
    await sameAsKustomize("deploy/overlays/host-network", ["--set", "cache.hostNetwork=true"]);
  });

  itWith(helm)("monitoring.enabled=true adds exactly deploy/monitoring's objects, with the release label on PodMonitors and rules", async () => {
    const base = new Set((await template([])).map(id));
    const objs = await template(["--set", "monitoring.enabled=true", "--set", "monitoring.labels.release=kube-prometheus-stack"]);
    const added = objs.filter((o) => !base.has(id(o)));
    const want = await kustomize("deploy/monitoring");
    expect(added.map(id).sort()).toEqual(want.map(id).sort());
    for (const o of added) {
      if (o.kind !== "ConfigMap") expect(o.metadata.labels?.release, id(o)).toBe("kube-prometheus-stack");
      const plain = withoutHelmExtras(o);
      delete plain.metadata.labels?.release;
      expect(plain, id(o)).toEqual(find(want, o.kind, o.metadata.name));
    }
    const noDashboard = await template(["--set", "monitoring.enabled=true,monitoring.dashboard=false"]);
    expect(noDashboard.map(id)).not.toContain("ConfigMap/cache-io-grafana-dashboard");
  });

  itWith(helm)("every object carries the recommended labels: name, component or part-of, instance, version, managed-by", async () => {
    const objs = await template(["--set", "monitoring.enabled=true"], "cache-io", "edge");
    for (const o of objs) {
      expect(o.metadata.labels, id(o)).toMatchObject({ "app.kubernetes.io/instance": "edge", "app.kubernetes.io/version": VERSION, "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/part-of": "cache-io", "helm.sh/chart": `cache-io-${VERSION}` });
      const tpl = o.spec?.template?.metadata?.labels ?? o.spec?.jobTemplate?.spec?.template?.metadata?.labels;
      if (tpl) expect(tpl, `${id(o)} pod template`).toMatchObject({ "app.kubernetes.io/instance": "edge", "app.kubernetes.io/managed-by": "Helm" });
    }
  });

  itWith(helm)("one value each: port, peer port, root, namespace, image, replicas and resources reach every object that needs them, and all still validate", async () => {
    const ns = "platform-cache";
    const objs = await template(
      [
        "--set", "cache.port=9585", "--set", "cache.peerPort=9586", "--set", "cache.root=/data/cache-io", "--set", "image.repository=registry.example.com/mirror/cache-io",
        "--set", "image.tag=9.9.9", "--set", "webhook.replicas=3", "--set", "cache.resources.limits.memory=4Gi",
        "--set", "policy.origins.allow={models.example.com}", "--set", "imagePullSecrets={regcred}",
      ],
      ns,
    );
    expect(validateAll(objs, ns)).toEqual([]);
    const ds = podSpecOf(find(objs, "DaemonSet", "cache-io-cache"))!;
    const policy = policyOf(objs);
    expect(policy.cache).toMatchObject({ port: 9585, root: "/data/cache-io" });
    expect(policy.origins.allow).toEqual(["models.example.com"]);
    expect(parsePolicy(find(objs, "ConfigMap", "cache-io-policy").data["policy.yaml"]).ok).toBe(true);
    expect(ds.containers[0]!.ports![0]).toMatchObject({ containerPort: 9585, hostPort: 9585 });
    expect(policy.cache.peers).toMatchObject({ port: 9586 });
    expect(ds.containers[0]!.ports![1]).toEqual({ name: "peer", containerPort: 9586, protocol: "TCP" });
    expect(find(objs, "Service", "cache-io-node-cache-peers").spec.ports[0].port).toBe(9586);
    expect(ds.volumes!.find((v) => v.name === "cache-root")!.hostPath!.path).toBe("/data/cache-io");
    expect(ds.containers[0]!.volumeMounts!.find((m) => m.name === "cache-root")!.mountPath).toBe("/data/cache-io");
    expect(ds.containers[0]!.resources!.limits!.memory).toBe("4Gi");
    expect(find(objs, "Deployment", "cache-io-webhook").spec.replicas).toBe(3);

    const pods = objs.map(podSpecOf).filter((p) => p !== undefined);
    expect(pods.length).toBe(5);
    for (const p of pods) expect(p!.imagePullSecrets).toEqual([{ name: "regcred" }]);
    const images = objs.flatMap((o) => podSpecOf(o)?.containers ?? []).map((c) => c.image);
    expect(new Set(images)).toEqual(new Set(["registry.example.com/mirror/cache-io:9.9.9"]));
    expect(podSpecOf(find(objs, "Deployment", "cache-io-prepull-controller"))!.containers[0]!.env!.find((e) => e.name === "CACHE_IO_IMAGE")!.value).toBe("registry.example.com/mirror/cache-io:9.9.9");

    const clusterScoped = ["ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "PriorityClass"];
    for (const o of objs) expect(o.metadata.namespace, id(o)).toBe(clusterScoped.includes(o.kind) ? undefined : ns);
    for (const o of objs) for (const s of o.subjects ?? []) expect(s.namespace, id(o)).toBe(ns);
    const config = find(objs, "MutatingWebhookConfiguration", "cache-io");
    for (const w of config.webhooks) {
      expect(w.clientConfig.service.namespace).toBe(ns);
      expect(w.namespaceSelector.matchExpressions).toContainEqual({ key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["kube-system", ns] });
    }
    expect(JSON.stringify(objs)).not.toMatch(/cache-io\.svc|"cache-io\/|namespace":"cache-io"/);
  });

  itWith(helm)("cert-manager mode in another namespace: the Certificate covers that namespace's Service, cainjector points at it", async () => {
    const objs = await template(["--set", "certs.mode=cert-manager", "--set", "monitoring.enabled=true"], "platform-cache");
    expect(validateAll(objs, "platform-cache")).toEqual([]);
    expect(find(objs, "Certificate", "cache-io-webhook").spec.dnsNames).toEqual(serviceDnsNames("cache-io-webhook", "platform-cache"));
    expect(find(objs, "MutatingWebhookConfiguration", "cache-io").metadata.annotations).toEqual({ "cert-manager.io/inject-ca-from": "platform-cache/cache-io-webhook" });
    expect(find(objs, "PodMonitor", "cache-io-webhook").spec.podMetricsEndpoints[0].tlsConfig.serverName).toBe("cache-io-webhook.platform-cache.svc");
    expect(objs.map(id)).not.toContain("Job/cache-io-certs-1");
  });

  itWith(helm)("the cert Job is named per revision, so an upgrade never patches an immutable Job", async () => {
    const objs = await template([]);
    expect(objs.map(id)).toContain("Job/cache-io-certs-1");
  });

  itWith(helm).each([
    // values.schema.json (helm checks it on install, upgrade, template and lint)
    [["--set", "webhok.replicas=3"], "cache-io", /at '': additional properties 'webhok' not allowed/],
    [["--set", "certs.mode=vault"], "cache-io", /at '\/certs\/mode': value must be one of 'job', 'cert-manager'/],
    [["--set", "cache.port=0"], "cache-io", /at '\/cache\/port': .*minimum/],
    [["--set", "cache.root=relative/dir"], "cache-io", /at '\/cache\/root': .*\^\//],
    [["--set", "policy.injection.mode=sideways"], "cache-io", /at '\/policy\/injection\/mode': value must be one of 'mount', 'copy'/],
    [["--set", "policy.origins.alow={x}"], "cache-io", /at '\/policy\/origins': additional properties 'alow' not allowed/],
    // the chart's own checks (also with --skip-schema-validation)
    [["--set", "policy.cache.port=9000"], "cache-io", /policy\.cache\.port and policy\.cache\.root come from the values cache\.port and cache\.root/],
    [["--set", "policy.cache.peers.port=9000"], "cache-io", /policy\.cache\.peers\.port comes from the value cache\.peerPort/],
    [["--set", "cache.peerPort=8585"], "cache-io", /cache\.peerPort is 8585, the same as cache\.port/],
    [["--skip-schema-validation", "--set", "certs.mode=vault"], "cache-io", /certs\.mode is "vault": use "job" .* or "cert-manager"/],
    [["--skip-schema-validation", "--set", "cache.port=0"], "cache-io", /cache\.port is 0: use a port from 1 to 65535/],
    [["--skip-schema-validation", "--set", "cache.root=relative/dir"], "cache-io", /cache\.root is "relative\/dir": use an absolute path/],
    [[], "kube-system", /install cache-io into its own namespace/],
  ])("refuses %j in %s, saying which value and what to set", async (args, ns, message) => {
    expect(await templateError(args, ns)).toMatch(message);
  });
});
