// The webhook as the real kube-apiserver (v1.36) calls it: the `cache-io webhook` process
// on the host, registered by the MutatingWebhookConfiguration deploy/ renders (only
// clientConfig rewritten to https://127.0.0.1:PORT/<path> with the real caBundle, plus a
// scopeLabel() namespaceSelector term so other test files in the shared cluster are not
// affected). Pods go through the real admission chain: namespaceSelector and CEL
// matchConditions evaluated by the API server, PodSecurity, LimitRanger, validation,
// reinvocation, the controllers that create pods with generateName. No stand-ins here.
import { afterAll, beforeAll, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import { admit, app, DATA, fetcherOf, files, makePod, MODEL, realisticPods, SHA, testPolicy } from "../support/pod-fixtures.js";
import { makeCertDir } from "../support/tls-secret.js";
import type { Api } from "./api.js";
import { describeCluster } from "./context.js";
import { adminApi, createNamespace, deleteNamespaces, kubectl, scopeLabel, until } from "./kube.js";
import { startMutator, type Mutator } from "./mutator.js";
import { pointAtHost, registerWebhookConfig, renderedWebhookConfig, reviewsByReason, reviewsTotal, startHostWebhook, type HostWebhook } from "./webhook-host.js";

const SCOPE = "webhook";
const NS = {
  on: "wh-on", off: "wh-off", privileged: "wh-privileged", baseline: "wh-baseline", restricted: "wh-restricted",
  limits: "wh-limits", reinvoke: "wh-reinvoke",
} as const;
const ON = { "cache.io/inject": "enabled", ...scopeLabel(SCOPE) };
const psa = (level: string) => ({ ...ON, "pod-security.kubernetes.io/enforce": level });
const policy = testPolicy("");

const RESTRICTED_SPEC: V1Pod["spec"] = {
  securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
  containers: [app("app", { securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } })],
};

function pod(ns: string, name: string, annotations: Record<string, string>, spec?: V1Pod["spec"]): V1Pod {
  const p = makePod(annotations, spec, { name });
  p.metadata!.namespace = ns;
  return p;
}

const REFUSED_SHAPES: Record<string, string> = {
  ephemeralContainers: "spec.ephemeralContainers: Forbidden",
  "annotation keys with / and ~": 'metadata.annotations: Invalid value: "a/b/c"',
};

const podsPath = (ns: string) => `/api/v1/namespaces/${ns}/pods`;
const injected = (p: V1Pod) => p.metadata?.annotations?.["cache.io/status"] === "injected";
const hostPaths = (p: V1Pod) => (p.spec?.volumes ?? []).filter((v) => v.hostPath);
const emptyDirs = (p: V1Pod) => (p.spec?.volumes ?? []).filter((v) => v.emptyDir && v.name.startsWith("cache-io-"));

/** The stored pod without what the ServiceAccount admission plugin adds (it runs before
 * webhooks, so review() in the unit tables never sees it): the kube-api-access volume and mounts. */
function withoutServiceAccountToken(p: V1Pod): V1Pod {
  const out = structuredClone(p);
  const sa = (name: string) => name.startsWith("kube-api-access-");
  out.spec!.volumes = out.spec!.volumes?.filter((v) => !sa(v.name));
  for (const c of [...out.spec!.containers, ...(out.spec!.initContainers ?? [])]) {
    c.volumeMounts = c.volumeMounts?.filter((m) => !sa(m.name));
    if (c.volumeMounts?.length === 0) delete c.volumeMounts;
  }
  if (out.spec!.volumes?.length === 0) delete out.spec!.volumes;
  return out;
}

describeCluster("the webhook behind the real kube-apiserver", (c) => {
  let api: Api;
  let hook: HostWebhook;
  let ca: string;
  let other: Mutator | undefined;
  const reviews = () => reviewsTotal(hook.port, ca);

  beforeAll(async () => {
    api = adminApi(c);
    const certs = await makeCertDir();
    ca = certs.bundle.caCert;
    hook = await startHostWebhook(certs.dir);
    await registerWebhookConfig(api, pointAtHost(await renderedWebhookConfig(c), `cache-io-${SCOPE}`, [hook.port], ca, SCOPE));
    await Promise.all([
      createNamespace(api, NS.on, ON),
      createNamespace(api, NS.off, scopeLabel(SCOPE)),
      createNamespace(api, NS.privileged, psa("privileged")),
      createNamespace(api, NS.baseline, psa("baseline")),
      createNamespace(api, NS.restricted, psa("restricted")),
      createNamespace(api, NS.limits, ON),
      createNamespace(api, NS.reinvoke, ON),
    ]);
    // The API server picks up a new configuration asynchronously: wait until it calls us.
    await until("the webhook configuration in effect", async () => {
      const r = await api.req("POST", `${podsPath(NS.on)}?dryRun=All`, pod(NS.on, "probe", files(MODEL)));
      return r.status === 201 && injected(r.body) ? true : undefined;
    });
  }, 120_000);

  afterAll(async () => {
    await other?.close();
    await hook?.stop();
    if (api) {
      await api.req("DELETE", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/cache-io-webhook");
      await api.req("DELETE", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/zz-reinvoke");
      await deleteNamespaces(api, Object.values(NS));
    }
  });

  it("stores every pod shape of the unit tables exactly as review() mutates it (mount mode, unlabelled namespace)", async () => {
    for (const [shape, p] of Object.entries(realisticPods())) {
      p.metadata!.namespace = NS.on;
      if (p.metadata!.name) p.metadata!.name = `shape-${Object.keys(realisticPods()).indexOf(shape)}`;
      const r = await api.post(podsPath(NS.on), p);
      if (shape in REFUSED_SHAPES) {
        // Shapes the unit tables use that the real API refuses whatever the webhook does.
        expect(r.status, shape).toBe(422);
        expect(r.body.message).toContain(REFUSED_SHAPES[shape]);
        continue;
      }
      expect(r.status, `${shape}: ${r.text.slice(0, 500)}`).toBe(201);
      const { after } = admit(p, policy, { namespace: NS.on });
      expect(r.body.metadata.annotations, shape).toMatchObject(after.metadata!.annotations!);
      expect(withoutServiceAccountToken(r.body).spec, shape).toMatchObject(after.spec!);
    }
  });

  it("leaves pods alone outside opted-in namespaces, in kube-system and in the project's own namespace", async () => {
    for (const ns of ["kube-system", "cache-io"]) {
      const exists = (await api.get(`/api/v1/namespaces/${ns}`)).status === 200;
      if (!exists) await createNamespace(api, ns);
      await api.must("PATCH", `/api/v1/namespaces/${ns}`, { metadata: { labels: ON } });
    }
    try {
      for (const ns of [NS.off, "kube-system", "cache-io"]) {
        const r = await api.post(podsPath(ns), pod(ns, `untouched-${SCOPE}`, files(MODEL)));
        expect(r.status, r.text).toBe(201);
        expect(injected(r.body), ns).toBe(false);
        expect(fetcherOf(r.body), ns).toBeUndefined();
        await api.req("DELETE", `${podsPath(ns)}/untouched-${SCOPE}`, { gracePeriodSeconds: 0 });
      }
    } finally {
      // cache.io/inject stays: another file may label these at the same time, and every
      // configuration excludes them by name anyway.
      for (const ns of ["kube-system", "cache-io"]) {
        await api.req("PATCH", `/api/v1/namespaces/${ns}`, { metadata: { labels: { [`cache-io.test/${SCOPE}`]: null } } });
      }
    }
  });

  it("Pod Security: privileged gets mount mode; baseline and restricted get copy mode and the real PodSecurity plugin admits them", async () => {
    const priv = await api.post(podsPath(NS.privileged), pod(NS.privileged, "p", files(`${MODEL}#sha256=${SHA}`)));
    expect(priv.status, priv.text).toBe(201);
    expect(hostPaths(priv.body)).toHaveLength(1);

    for (const ns of [NS.baseline, NS.restricted]) {
      // mount requested explicitly: the copy path wins, since hostPath is forbidden there
      const r = await api.post(podsPath(ns), pod(ns, "p", files(`${MODEL}\n${DATA}`, { "cache.io/mode": "mount" }), RESTRICTED_SPEC));
      expect(r.status, `${ns}: ${r.text}`).toBe(201);
      expect(r.warnings, ns).toEqual([expect.stringContaining('cache.io/mode \\"mount\\" was replaced by \\"copy\\"')]);
      expect(injected(r.body), ns).toBe(true);
      expect(hostPaths(r.body), ns).toEqual([]);
      expect(emptyDirs(r.body), ns).toHaveLength(1);
      const { after } = admit(pod(ns, "p", files(`${MODEL}\n${DATA}`, { "cache.io/mode": "mount" }), RESTRICTED_SPEC), policy, { namespace: ns, copyOnly: true });
      expect(withoutServiceAccountToken(r.body).spec).toMatchObject(after.spec!);
    }
    // The same pod in mount mode is what PodSecurity would refuse: prove the plugin is live.
    const { after: mounted } = admit(pod(NS.baseline, "m", files(MODEL), RESTRICTED_SPEC), policy, { namespace: NS.baseline });
    delete mounted.metadata!.annotations!["cache.io/files"]; // not sent to the webhook again
    const refused = await api.post(podsPath(NS.baseline), mounted);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/violates PodSecurity "baseline:latest": hostPath volumes/);
  });

  it("a namespace with a LimitRange (maxLimitRequestRatio 4) admits the injected fetcher", async () => {
    await api.must("POST", `/api/v1/namespaces/${NS.limits}/limitranges`, {
      apiVersion: "v1", kind: "LimitRange", metadata: { name: "ratio" },
      spec: { limits: [{ type: "Container", maxLimitRequestRatio: { cpu: "4", memory: "4" }, default: { cpu: "500m", memory: "128Mi" }, defaultRequest: { cpu: "250m", memory: "64Mi" } }] },
    });
    const r = await until("the LimitRange in the admission cache", async () => {
      const res = await api.post(podsPath(NS.limits), pod(NS.limits, `limited-${Date.now()}`, files(MODEL)));
      if (res.status !== 201) throw new Error(res.text);
      return res.body.spec.containers[0].resources?.limits ? res : undefined; // LimitRanger defaulted the app
    });
    expect(fetcherOf(r.body)!.resources).toEqual({ requests: { cpu: "250m", memory: "32Mi" }, limits: { cpu: "1", memory: "64Mi" } });
  });

  it("a Windows pod is admitted unmutated with a warning (the injected Linux securityContext would make it invalid)", async () => {
    const r = await api.post(podsPath(NS.on), pod(NS.on, "win", files(MODEL), { os: { name: "windows" }, containers: [app()] }));
    expect(r.status, r.text).toBe(201);
    expect(injected(r.body)).toBe(false);
    expect(fetcherOf(r.body)).toBeUndefined();
    expect(r.warnings.join("\n")).toMatch(/windows/i);
    // what the API server says to the injected pod: the reason the webhook must skip it
    const { after } = admit(pod(NS.on, "win2", files(MODEL), { containers: [app()] }), policy, { namespace: NS.on });
    after.spec!.os = { name: "windows" };
    delete after.metadata!.annotations!["cache.io/files"];
    const invalid = await api.post(podsPath(NS.on), after);
    expect(invalid.status).toBe(422);
    expect(invalid.body.message).toMatch(/Forbidden: cannot be set for a windows pod/);
  });

  it("native sidecars: the fetcher runs after them and the pod is valid", async () => {
    const spec = { initContainers: [app("proxy", { restartPolicy: "Always" }), app("migrate")], containers: [app()] };
    const r = await api.post(podsPath(NS.on), pod(NS.on, "sidecars", files(MODEL), spec));
    expect(r.status, r.text).toBe(201);
    expect(r.body.spec.initContainers.map((x: { name: string }) => x.name)).toEqual(["proxy", "cache-io-fetch", "migrate"]);
  });

  it("a Deployment's and a Job's pods (created by the controller manager, generateName) are injected", async () => {
    const template = { metadata: { labels: { app: "dep" }, annotations: files(MODEL) }, spec: { containers: [app()] } };
    await api.must("POST", `/apis/apps/v1/namespaces/${NS.on}/deployments`, {
      apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "dep" },
      spec: { replicas: 2, selector: { matchLabels: { app: "dep" } }, template },
    });
    await api.must("POST", `/apis/batch/v1/namespaces/${NS.on}/jobs`, {
      apiVersion: "batch/v1", kind: "Job", metadata: { name: "job" },
      spec: { template: { metadata: { annotations: files(DATA) }, spec: { restartPolicy: "Never", containers: [app()] } } },
    });
    for (const [selector, want] of [["app=dep", 2], ["batch.kubernetes.io/job-name=job", 1]] as const) {
      const pods: V1Pod[] = await until(`pods of ${selector}`, async () => {
        const items = (await api.get(`${podsPath(NS.on)}?labelSelector=${encodeURIComponent(selector)}`)).body.items as V1Pod[];
        return items.length >= want ? items : undefined;
      }, 90_000);
      for (const p of pods) {
        expect(p.metadata!.generateName, selector).toBeTruthy();
        expect(injected(p), selector).toBe(true);
        expect(fetcherOf(p), selector).toBeDefined();
      }
    }
  });

  it("reinvocation: a later webhook that adds a container makes the API server call ours again, which adds nothing twice", async () => {
    other = await startMutator(await makeCertDir());
    const mwc = {
      apiVersion: "admissionregistration.k8s.io/v1", kind: "MutatingWebhookConfiguration", metadata: { name: "zz-reinvoke" },
      webhooks: [{
        name: "late.reinvoke.test", admissionReviewVersions: ["v1"], sideEffects: "None", failurePolicy: "Fail", reinvocationPolicy: "Never",
        clientConfig: { url: `https://127.0.0.1:${other.port}/`, caBundle: Buffer.from(other.ca).toString("base64") },
        rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"], scope: "Namespaced" }],
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": NS.reinvoke } },
      }],
    };
    await registerWebhookConfig(api, mwc);
    await until("the second webhook in effect", async () => {
      const r = await api.req("POST", `${podsPath(NS.reinvoke)}?dryRun=All`, pod(NS.reinvoke, "probe", {}));
      return r.status === 201 && r.body.spec.containers.some((x: { name: string }) => x.name === "late") ? true : undefined;
    });
    const before = await reviewsByReason(hook.port, ca);
    const r = await api.post(podsPath(NS.reinvoke), pod(NS.reinvoke, "reinvoked", files(MODEL)));
    expect(r.status, r.text).toBe(201);
    const after = await reviewsByReason(hook.port, ca);
    expect(after.injected).toBe((before.injected ?? 0) + 1);
    expect(after["already-injected"]).toBe((before["already-injected"] ?? 0) + 1);
    expect(other.calls).toBeGreaterThanOrEqual(1);
    // the container added after us gets no NODE_IP: a pod carrying the status marker is never patched again
    expect(r.body.spec.containers[1].env).toBeUndefined();
    expect(r.body.spec.containers.map((x: { name: string }) => x.name)).toEqual(["app", "late"]);
    expect(r.body.spec.initContainers.filter((x: { name: string }) => x.name === "cache-io-fetch")).toHaveLength(1);
    // one volume for the file, one for the projected token (identity.mode required, the default), none twice
    expect(r.body.spec.volumes.filter((v: { name: string }) => v.name.startsWith("cache-io-")).map((v: { name: string }) => v.name === "cache-io-token")).toEqual([false, true]);
  });

  it("CEL matchConditions run in the API server: unannotated and opted-out pods never reach the webhook", async () => {
    const before = await reviews();
    for (const [name, ann] of [["plain", {}], ["opted-out", files(MODEL, { "cache.io/inject": "false" })], ["other-annotations", { "example.com/x": "1" }]] as const) {
      const r = await api.post(podsPath(NS.on), pod(NS.on, `cel-${name}`, ann));
      expect(r.status, r.text).toBe(201);
      expect(injected(r.body)).toBe(false);
    }
    const off = await api.post(podsPath(NS.off), pod(NS.off, "cel-off", files(MODEL)));
    expect(off.status).toBe(201);
    expect(await reviews()).toBe(before);
    const annotated = await api.post(podsPath(NS.on), pod(NS.on, "cel-annotated", files(MODEL)));
    expect(injected(annotated.body)).toBe(true);
    // One patch, then the reinvocation (IfNeeded) that finds the status annotation.
    expect(await reviews()).toBe(before + 2);
  });

  it("server-side dry-run returns the mutated pod and stores nothing", async () => {
    const r = await api.req("POST", `${podsPath(NS.on)}?dryRun=All`, pod(NS.on, "dry", files(MODEL)));
    expect(r.status).toBe(201);
    expect(injected(r.body)).toBe(true);
    expect((await api.get(`${podsPath(NS.on)}/dry`)).status).toBe(404);
    const k = await kubectl(c, ["create", "--dry-run=server", "-o", "json", "-f", "-"], { input: JSON.stringify(pod(NS.on, "dry2", files(MODEL))) });
    expect(k.code, k.stderr).toBe(0);
    expect(injected(JSON.parse(k.stdout))).toBe(true);
  });

  it("a denial's message reaches kubectl", async () => {
    const bad = pod(NS.on, "denied", files("https://models.example.com/ok.bin,ftp://files.example.com/a.bin"));
    const k = await kubectl(c, ["create", "-f", "-"], { input: JSON.stringify(bad) });
    expect(k.code).not.toBe(0);
    expect(k.stderr).toContain('admission webhook "mount.files.cache.io" denied the request');
    expect(k.stderr).toContain('cache.io/files entry 2 ("ftp://files.example.com/a.bin"): scheme "ftp" is not allowed');
    expect((await api.get(`${podsPath(NS.on)}/denied`)).status).toBe(404);
  });
});
