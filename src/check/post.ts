// Post-install checks (like `linkerd check`): the webhook configuration and its
// caBundle (which must verify the serving cert in the TLS Secret, for the Service's DNS
// name), the cert's expiry, ready webhook endpoints, a ready node cache on every
// schedulable Linux node, and a server-side dry run of an annotated pod that the API
// server sends through the webhook.
import { X509Certificate } from "node:crypto";
import { NAMES } from "../deploy/names.js";
import { ENTRIES } from "../deploy/webhook-config.js";
import { ANNOTATION, NAMESPACE_LABEL } from "../shared/protocol.js";
import { why, type Api } from "./api.js";
import { fail, guarded, ok, warn, type CheckResult } from "./report.js";

/** Below this, the CacheIoWebhookCertExpiring alert fires too. */
const EXPIRY_WARN_DAYS = 14;
const DAY_MS = 86_400_000;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = any;

function pemCerts(pem: string): X509Certificate[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
}

function renew(namespace: string): string {
  return `kubectl -n ${namespace} create job cache-io-certs-now --from=cronjob/${NAMES.certsRenew} (cert Job mode), or check cert-manager's Certificate ${namespace}/${NAMES.webhook}`;
}

async function webhookConfig(config: { status: number; body: Obj }, namespace: string): Promise<CheckResult> {
  const title = "webhook configuration";
  if (config.status === 404) return fail("webhook-configuration", title, `MutatingWebhookConfiguration ${NAMES.webhookConfig} not found`, "install cache-io (helm install, or kubectl apply -k deploy/default)");
  if (config.status !== 200) return fail("webhook-configuration", title, `cannot read MutatingWebhookConfiguration ${NAMES.webhookConfig}: ${why(config)}`);
  const hooks: Obj[] = config.body.webhooks ?? [];
  const names = ENTRIES.map((e) => e.name);
  const missing = names.filter((n) => !hooks.some((h) => h.name === n));
  if (missing.length) return fail("webhook-configuration", title, `entries missing: ${missing.join(", ")}`, "re-apply the install (helm upgrade, or kubectl apply -k)");
  const noCa = hooks.filter((h) => !h.clientConfig?.caBundle).map((h) => h.name);
  if (noCa.length) return fail("webhook-configuration", title, `no caBundle on ${noCa.join(", ")}`, `see the cert Job's log (kubectl -n ${namespace} logs -l app.kubernetes.io/component=certs) or cert-manager's cainjector`);
  return ok("webhook-configuration", title, `${NAMES.webhookConfig}: ${hooks.length} entries, each with a caBundle`);
}

async function caBundleVerifies(config: { status: number; body: Obj }, secret: { status: number; body: Obj }, namespace: string): Promise<CheckResult> {
  const title = "caBundle verifies the serving certificate";
  if (secret.status !== 200) return fail("ca-bundle", title, `cannot read Secret ${namespace}/${NAMES.tlsSecret}: ${why(secret)}`, "the cert Job or cert-manager creates it; see their logs");
  if (config.status !== 200) return fail("ca-bundle", title, "no webhook configuration to compare with");
  const serving = new X509Certificate(Buffer.from(secret.body.data?.["tls.crt"] ?? "", "base64"));
  const host = `${NAMES.webhook}.${namespace}.svc`;
  if (!serving.checkHost(host)) return fail("ca-bundle", title, `the serving certificate is not for ${host} (it has ${serving.subjectAltName ?? serving.subject})`, renew(namespace));
  for (const h of config.body.webhooks ?? []) {
    const cas = pemCerts(Buffer.from(h.clientConfig?.caBundle ?? "", "base64").toString("utf8"));
    if (!cas.some((ca) => serving.checkIssued(ca) && serving.verify(ca.publicKey))) {
      return fail("ca-bundle", title, `the caBundle of ${h.name} does not verify the certificate in Secret ${NAMES.tlsSecret}: the API server would refuse the TLS connection`, renew(namespace));
    }
  }
  return ok("ca-bundle", title, `every entry's caBundle verifies the certificate for ${host}`);
}

async function certExpiry(secret: { status: number; body: Obj }, namespace: string): Promise<CheckResult> {
  const title = "serving certificate expiry";
  if (secret.status !== 200) return fail("cert-expiry", title, `cannot read Secret ${namespace}/${NAMES.tlsSecret}: ${why(secret)}`);
  const cert = new X509Certificate(Buffer.from(secret.body.data?.["tls.crt"] ?? "", "base64"));
  const days = Math.floor((new Date(cert.validTo).getTime() - Date.now()) / DAY_MS);
  const until = new Date(cert.validTo).toISOString();
  if (days < 0) return fail("cert-expiry", title, `expired on ${until}`, renew(namespace));
  if (days < EXPIRY_WARN_DAYS) return fail("cert-expiry", title, `expires in ${days} days (${until}); renewal should have happened 30 days before`, renew(namespace));
  return ok("cert-expiry", title, `valid until ${until} (${days} days)`);
}

async function webhookEndpoints(api: Api, namespace: string): Promise<CheckResult> {
  const title = "webhook endpoints";
  const r = await api.get(`/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${NAMES.webhook}`)}`);
  if (r.status !== 200) return fail("webhook-endpoints", title, `cannot list EndpointSlices: ${why(r)}`);
  const ready = (r.body.items ?? []).flatMap((s: Obj) => s.endpoints ?? []).filter((e: Obj) => e.conditions?.ready).length;
  if (!ready) return fail("webhook-endpoints", title, `Service ${namespace}/${NAMES.webhook} has no ready endpoint: annotated pods are refused`, `kubectl -n ${namespace} describe pods -l app.kubernetes.io/component=webhook`);
  return ok("webhook-endpoints", title, `${ready} ready behind Service ${NAMES.webhook}`);
}

async function nodeCaches(api: Api, namespace: string): Promise<CheckResult> {
  const title = "node cache on every schedulable node";
  const [nodes, pods] = await Promise.all([
    api.get("/api/v1/nodes"),
    api.get(`/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent("app.kubernetes.io/component=node-cache")}`),
  ]);
  if (nodes.status !== 200 || pods.status !== 200) return fail("node-cache", title, `cannot list nodes or pods: ${why(nodes.status !== 200 ? nodes : pods)}`);
  const wanted: string[] = (nodes.body.items ?? [])
    .filter((n: Obj) => !n.spec?.unschedulable && (n.metadata?.labels?.["kubernetes.io/os"] ?? "linux") === "linux")
    .map((n: Obj) => n.metadata.name);
  const ready = new Set(
    (pods.body.items ?? []).filter((p: Obj) => p.status?.conditions?.some((c: Obj) => c.type === "Ready" && c.status === "True")).map((p: Obj) => p.spec?.nodeName),
  );
  const missing = wanted.filter((n) => !ready.has(n));
  if (!wanted.length) return warn("node-cache", title, "no schedulable Linux node");
  if (missing.length) {
    const shown = missing.slice(0, 10).join(", ") + (missing.length > 10 ? ` and ${missing.length - 10} more` : "");
    return fail("node-cache", title, `not ready on ${missing.length} of ${wanted.length} nodes: ${shown}; pods asking for files there wait`, `kubectl -n ${namespace} get pods -o wide -l app.kubernetes.io/component=node-cache`);
  }
  return ok("node-cache", title, `ready on all ${wanted.length} nodes`);
}

async function dryRunMutation(api: Api, namespace: string, testNamespace?: string): Promise<CheckResult> {
  const title = "annotated pod is mutated (server-side dry run)";
  let ns = testNamespace;
  if (!ns) {
    const r = await api.get(`/api/v1/namespaces?labelSelector=${encodeURIComponent(`${NAMESPACE_LABEL}=enabled`)}`);
    if (r.status !== 200) return fail("dry-run", title, `cannot list namespaces: ${why(r)}`, "pass --test-namespace NS");
    ns = (r.body.items ?? []).map((n: Obj) => n.metadata.name as string).find((n: string) => n !== namespace && n !== "kube-system");
  }
  if (!ns) return warn("dry-run", title, `no namespace is labelled ${NAMESPACE_LABEL}=enabled yet, so no pod is sent to the webhook`, `kubectl label namespace <team> ${NAMESPACE_LABEL}=enabled, then run the check again (or pass --test-namespace)`);
  const sc = { runAsNonRoot: true, runAsUser: 65532, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, seccompProfile: { type: "RuntimeDefault" } };
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { generateName: "cache-io-check-", annotations: { [ANNOTATION.files]: "https://files.example.com/cache-io-check.bin" } },
    spec: { containers: [{ name: "app", image: "registry.k8s.io/pause:3.10", securityContext: sc }] },
  };
  const r = await api.req("POST", `/api/v1/namespaces/${ns}/pods?dryRun=All`, pod);
  const message = why(r);
  // A denial by cache-io's policy (say, files.example.com not allowed) still proves the path API server -> webhook.
  if (r.status >= 300 && message.includes(ANNOTATION.files)) return ok("dry-run", title, `in ${ns}: the webhook answered (denied by the policy: ${message})`);
  if (r.status >= 300) return fail("dry-run", title, `in ${ns}: ${message}`, "see the webhook configuration, endpoints and caBundle checks above, and the webhook's log");
  if (r.body.metadata?.annotations?.[ANNOTATION.status] !== "injected") {
    return fail("dry-run", title, `in ${ns}: the pod was admitted without being injected`, `check that ${ns} carries ${NAMESPACE_LABEL}=enabled and that the webhook configuration selects it`);
  }
  const init = (r.body.spec?.initContainers ?? []).map((c: Obj) => c.name).join(", ");
  return ok("dry-run", title, `in ${ns}: injected (init containers: ${init})`);
}

export async function postInstallChecks(api: Api, namespace: string, testNamespace?: string): Promise<CheckResult[]> {
  const [config, secret] = await Promise.all([
    api.get(`/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${NAMES.webhookConfig}`),
    api.get(`/api/v1/namespaces/${namespace}/secrets/${NAMES.tlsSecret}`),
  ]);
  return [
    await guarded("webhook-configuration", "webhook configuration", () => webhookConfig(config, namespace)),
    await guarded("ca-bundle", "caBundle verifies the serving certificate", () => caBundleVerifies(config, secret, namespace)),
    await guarded("cert-expiry", "serving certificate expiry", () => certExpiry(secret, namespace)),
    await guarded("webhook-endpoints", "webhook endpoints", () => webhookEndpoints(api, namespace)),
    await guarded("node-cache", "node cache on every schedulable node", () => nodeCaches(api, namespace)),
    await guarded("dry-run", "annotated pod is mutated (server-side dry run)", () => dryRunMutation(api, namespace, testNamespace)),
  ];
}
