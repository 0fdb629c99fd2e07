// Every install entry renders with `kubectl kustomize`, every built-in object validates
// against the Kubernetes OpenAPI schemas (and has no unknown fields), the CRD objects
// have the structure their operators need, and each overlay changes what it says.
import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { serviceDnsNames } from "../../src/certs/generate.js";
import { checkCustomResource, find, isBuiltIn, kustomize, podSpecOf, validate, type Obj } from "./k8s.js";

const ENTRIES = ["deploy/base", "deploy/default", "deploy/overlays/cert-manager", "deploy/overlays/host-network", "deploy/monitoring"];
const CERTS_OBJECTS = ["Job/cache-io-certs", "CronJob/cache-io-certs-renew", "ServiceAccount/cache-io-certs", "Role/cache-io-certs", "RoleBinding/cache-io-certs", "ClusterRole/cache-io-certs", "ClusterRoleBinding/cache-io-certs"];
const ids = (objs: Obj[]) => objs.map((o) => `${o.kind}/${o.metadata.name}`);

describe.each(ENTRIES)("%s", (dir) => {
  it("renders, and every object validates", async () => {
    const objs = await kustomize(dir);
    expect(objs.length).toBeGreaterThan(2);
    const errors = objs.flatMap((o) => (isBuiltIn(o) ? validate(o) : checkCustomResource(o)));
    expect(errors).toEqual([]);
    expect(new Set(ids(objs)).size).toBe(objs.length);
  });
});

describe("the validator itself", () => {
  it("catches a misspelt field, a wrong type and a missing required field", async () => {
    const ds = structuredClone(find(await kustomize("deploy/default"), "DaemonSet", "cache-io-cache"));
    ds.spec.template.spec.containers[0].securityContext.readOnlyRootFilesytem = true;
    ds.spec.template.spec.containers[0].ports[0].hostPort = "8585";
    delete ds.spec.selector;
    const errors = validate(ds).join("\n");
    expect(errors).toContain("unknown field .spec.template.spec.containers[0].securityContext.readOnlyRootFilesytem");
    expect(errors).toContain("hostPort must be integer");
    expect(errors).toContain("must have required property selector");
  });
});

describe("overlays", () => {
  it("the default install has every component, in namespace cache-io", async () => {
    const objs = await kustomize("deploy/default");
    for (const id of ["Namespace/cache-io", "MutatingWebhookConfiguration/cache-io", "Deployment/cache-io-webhook", "Service/cache-io-webhook", "PodDisruptionBudget/cache-io-webhook", "DaemonSet/cache-io-cache", "ConfigMap/cache-io-policy", "Deployment/cache-io-prepull-controller", "PriorityClass/cache-io-critical", ...CERTS_OBJECTS]) {
      expect(ids(objs)).toContain(id);
    }
    const clusterScoped = ["Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "PriorityClass"];
    for (const o of objs) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(clusterScoped.includes(o.kind) ? undefined : "cache-io");
  });

  it("cert-manager: no cert Job or its RBAC; a Certificate for the webhook Service whose Secret the webhook mounts; cainjector annotation", async () => {
    const objs = await kustomize("deploy/overlays/cert-manager");
    for (const id of CERTS_OBJECTS) expect(ids(objs)).not.toContain(id);
    const config = find(objs, "MutatingWebhookConfiguration", "cache-io");
    expect(config.metadata.annotations?.["cert-manager.io/inject-ca-from"]).toBe("cache-io/cache-io-webhook");
    const cert = find(objs, "Certificate", "cache-io-webhook");
    const volume = podSpecOf(find(objs, "Deployment", "cache-io-webhook"))!.volumes!.find((v) => v.name === "certs")!;
    expect(cert.spec.secretName).toBe(volume.secret!.secretName);
    expect(cert.spec.dnsNames).toEqual(serviceDnsNames("cache-io-webhook", "cache-io"));
    const issuer = find(objs, "Issuer", cert.spec.issuerRef.name);
    expect(find(objs, "Certificate", "cache-io-ca").spec.secretName).toBe(issuer.spec.ca.secretName);
  });

  it("host-network: the cache on the node's network, same port, DNS still cluster-first", async () => {
    const spec = podSpecOf(find(await kustomize("deploy/overlays/host-network"), "DaemonSet", "cache-io-cache"))!;
    expect(spec.hostNetwork).toBe(true);
    expect(spec.dnsPolicy).toBe("ClusterFirstWithHostNet");
    const port = spec.containers[0]!.ports![0]!;
    expect(port.hostPort).toBe(port.containerPort);
    const base = podSpecOf(find(await kustomize("deploy/default"), "DaemonSet", "cache-io-cache"))!;
    expect(base.hostNetwork).toBeUndefined();
  });

  it("one `images:` entry in a user's overlay moves every use of the cache-io image, including the pre-pull controller's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "overlay-"));
    cpSync(resolve("deploy"), join(dir, "deploy"), { recursive: true });
    writeFileSync(
      join(dir, "kustomization.yaml"),
      "resources: [deploy/default]\nimages:\n  - name: ghcr.io/cache-io/cache-io\n    newName: registry.example.com/mirror/cache-io\n    newTag: \"9.9.9\"\n",
    );
    const objs = await kustomize(dir);
    const images = objs.flatMap((o) => [...(podSpecOf(o)?.containers ?? []), ...(podSpecOf(o)?.initContainers ?? [])]).map((c) => c.image);
    expect(images.length).toBeGreaterThan(4);
    expect(new Set(images)).toEqual(new Set(["registry.example.com/mirror/cache-io:9.9.9"]));
    const env = podSpecOf(find(objs, "Deployment", "cache-io-prepull-controller"))!.containers[0]!.env!;
    expect(env.find((e) => e.name === "CACHE_IO_IMAGE")!.value).toBe("registry.example.com/mirror/cache-io:9.9.9");
  });
});
