// Pre-install checks (like `istioctl x precheck`): the API server's version and the
// features the manifests need (matchConditions, native sidecars: both proven with a
// server-side dry run, not inferred from the version), the installer's RBAC for every
// object the install creates (SelfSubjectAccessReview), and the Pod Security labels of
// the install namespace.
import type { KubernetesObject } from "@kubernetes/client-node";
import { certsObjects } from "../deploy/certs-job.js";
import { priorityClass } from "../deploy/cluster.js";
import { DEFAULT_TARGET, NAMES } from "../deploy/names.js";
import { nodeCacheObjects } from "../deploy/node-cache.js";
import { prepullControllerObjects } from "../deploy/prepull-controller.js";
import { PSA_ENFORCE, webhookConfiguration } from "../deploy/webhook-config.js";
import { webhookObjects } from "../deploy/webhook.js";
import { defaultPolicy } from "../policy/load.js";
import { why, type Api } from "./api.js";
import { fail, guarded, ok, warn, type CheckResult } from "./report.js";

const MIN_MINOR = 30;

async function kubernetesVersion(api: Api): Promise<CheckResult> {
  const title = "Kubernetes version";
  const r = await api.get("/version");
  if (r.status !== 200) return fail("kubernetes-version", title, `GET /version: ${why(r)}`);
  const minor = Number(String(r.body.minor).replace(/\D+$/, ""));
  const v = `${r.body.gitVersion ?? `${r.body.major}.${r.body.minor}`}`;
  if (Number(r.body.major) === 1 && minor < MIN_MINOR) return fail("kubernetes-version", title, `${v}; cache-io needs 1.${MIN_MINOR} or later (CEL matchConditions GA)`, `upgrade the cluster to 1.${MIN_MINOR}+`);
  return ok("kubernetes-version", title, `${v} (1.${MIN_MINOR} or later needed)`);
}

/** The real webhook configuration, under another name, created with dryRun=All: nothing is stored. */
async function matchConditions(api: Api, namespace: string): Promise<CheckResult> {
  const title = "matchConditions on admission webhooks";
  const config = webhookConfiguration({ namespace });
  config.metadata = { ...config.metadata, name: "cache-io-precheck" };
  const r = await api.req("POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations?dryRun=All", config);
  if (r.status === 403) return fail("match-conditions", title, `not allowed to create MutatingWebhookConfigurations (dry run): ${why(r)}`, "run the install as a cluster administrator");
  if (r.status >= 300) return fail("match-conditions", title, `the API server refused cache-io's webhook configuration (dry run): ${why(r)}`);
  const kept = (r.body.webhooks ?? []).every((w: { matchConditions?: unknown[] }) => (w.matchConditions?.length ?? 0) === config.webhooks![0]!.matchConditions!.length);
  if (!kept) return fail("match-conditions", title, "the API server dropped matchConditions from the webhook configuration", "enable the AdmissionWebhookMatchConditions feature gate (on by default from 1.28, GA in 1.30)");
  return ok("match-conditions", title, "available (webhook configuration accepted in a dry run)");
}

/** A pod with a restartPolicy: Always init container, created with dryRun=All. */
async function nativeSidecars(api: Api, namespace: string, namespaceExists: boolean): Promise<CheckResult> {
  const title = "native sidecar containers";
  const ns = namespaceExists ? namespace : "default";
  const sc = { runAsNonRoot: true, runAsUser: 65532, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, seccompProfile: { type: "RuntimeDefault" } };
  const container = (name: string, extra: object = {}) => ({ name, image: "registry.k8s.io/pause:3.10", securityContext: sc, ...extra });
  const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "cache-io-precheck" }, spec: { initContainers: [container("sidecar", { restartPolicy: "Always" })], containers: [container("app")] } };
  const r = await api.req("POST", `/api/v1/namespaces/${ns}/pods?dryRun=All`, pod);
  if (r.status >= 300) return fail("native-sidecars", title, `a dry-run pod in ${ns} was refused: ${why(r)}`);
  if (r.body.spec?.initContainers?.[0]?.restartPolicy !== "Always") return fail("native-sidecars", title, "the API server dropped restartPolicy: Always from an init container", "enable the SidecarContainers feature gate (on by default from 1.29)");
  return ok("native-sidecars", title, "available (cache-io's init container goes after them)");
}

function resourceOf(kind: string): string {
  const k = kind.toLowerCase();
  return k.endsWith("s") ? `${k}es` : k.endsWith("y") ? `${k.slice(0, -1)}ies` : `${k}s`;
}

/** Every object the default install creates, with the policy ConfigMap. */
function installObjects(namespace: string): KubernetesObject[] {
  const t = { ...DEFAULT_TARGET, namespace };
  const configMap = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: NAMES.policy, namespace } };
  return [webhookConfiguration({ namespace }), priorityClass(), configMap, ...webhookObjects(t), ...nodeCacheObjects(defaultPolicy(), t), ...certsObjects(t), ...prepullControllerObjects(t)];
}

async function installerRbac(api: Api, namespace: string, namespaceExists: boolean): Promise<CheckResult> {
  const title = "RBAC of the installer";
  const wanted = new Map<string, { group: string; resource: string; namespace?: string }>();
  for (const o of installObjects(namespace)) {
    const group = o.apiVersion!.includes("/") ? o.apiVersion!.split("/")[0]! : "";
    const resource = resourceOf(o.kind!);
    wanted.set(`${group}/${resource}`, { group, resource, ...(o.metadata?.namespace ? { namespace } : {}) });
  }
  if (!namespaceExists) wanted.set("/namespaces", { group: "", resource: "namespaces" });
  const denied: string[] = [];
  for (const w of wanted.values()) {
    for (const verb of ["create", "get", "patch", "delete"]) {
      const review = { apiVersion: "authorization.k8s.io/v1", kind: "SelfSubjectAccessReview", spec: { resourceAttributes: { verb, ...w } } };
      const r = await api.req("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review);
      if (r.status >= 300) return fail("installer-rbac", title, `SelfSubjectAccessReview: ${why(r)}`);
      if (!r.body.status?.allowed) denied.push(`${verb} ${w.resource}${w.group ? `.${w.group}` : ""}${w.namespace ? ` in ${w.namespace}` : ""}`);
    }
  }
  if (denied.length) {
    const shown = denied.slice(0, 8).join(", ") + (denied.length > 8 ? `, and ${denied.length - 8} more` : "");
    return fail("installer-rbac", title, `not allowed to ${shown}`, "install as a cluster administrator, or have these permissions granted");
  }
  return ok("installer-rbac", title, `allowed to create, get, patch and delete all ${wanted.size} kinds of object the install creates`);
}

async function namespacePodSecurity(namespace: string, ns: { status: number; body: { metadata?: { labels?: Record<string, string> } } }): Promise<CheckResult> {
  const title = `Pod Security of namespace ${namespace}`;
  const label = `kubectl label namespace ${namespace} ${PSA_ENFORCE}=privileged --overwrite`;
  if (ns.status === 404) {
    return ok("namespace-pod-security", title, `does not exist yet: kustomize creates it labelled ${PSA_ENFORCE}=privileged; for Helm, create it first: kubectl create namespace ${namespace} && ${label}`);
  }
  if (ns.status !== 200) return fail("namespace-pod-security", title, `cannot read the namespace: HTTP ${ns.status}`, "run the check with a kubeconfig that may get namespaces");
  const level = ns.body.metadata?.labels?.[PSA_ENFORCE];
  if (level === undefined) return warn("namespace-pod-security", title, `no ${PSA_ENFORCE} label: a cluster-wide Pod Security default, if the cluster sets one, applies to the node cache`, label);
  if (level !== "privileged") return fail("namespace-pod-security", title, `${PSA_ENFORCE}=${level} forbids the node cache's hostPath and hostPort`, label);
  return ok("namespace-pod-security", title, `${PSA_ENFORCE}=privileged (the node cache needs hostPath and hostPort)`);
}

export async function preInstallChecks(api: Api, namespace: string): Promise<CheckResult[]> {
  const ns = await api.get(`/api/v1/namespaces/${namespace}`);
  const exists = ns.status === 200;
  return [
    await guarded("kubernetes-version", "Kubernetes version", () => kubernetesVersion(api)),
    await guarded("match-conditions", "matchConditions on admission webhooks", () => matchConditions(api, namespace)),
    await guarded("native-sidecars", "native sidecar containers", () => nativeSidecars(api, namespace, exists)),
    await guarded("installer-rbac", "RBAC of the installer", () => installerRbac(api, namespace, exists)),
    await guarded("namespace-pod-security", `Pod Security of namespace ${namespace}`, () => namespacePodSecurity(namespace, ns)),
  ];
}
