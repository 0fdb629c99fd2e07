// `cache-io certs install`: the in-cluster bootstrap. Create or reuse the webhook's TLS
// Secret (renewing before expiry), then put its CA into every caBundle of the webhook
// configuration. Idempotent and safe to run twice at once: creates that lose a race
// re-read the winner; updates carry a resourceVersion and retry on 409 Conflict.
import { AdmissionregistrationV1Api, ApiException, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import { FIELD_MANAGER } from "../deploy/names.js";
import { logger } from "../shared/log.js";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { CERT_FILES, caBundleBase64, generateBundle, inspectServing, renewServing, serviceDnsNames, type CertBundle } from "./generate.js";

const log = logger("certs");

export interface InstallOptions {
  namespace: string;
  service: string;
  secret: string;
  webhookConfig: string;
  days: number;
  renewBeforeDays: number;
  /** Attempts per object before giving up on repeated conflicts. */
  attempts?: number;
}

export type SecretAction = "created" | "reused" | "renewed" | "regenerated";

export interface InstallResult {
  action: SecretAction;
  caBundle: string;
  patchedWebhooks: number;
}

export function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

export type CertPlan =
  | { kind: "reuse"; bundle: CertBundle }
  | { kind: "renew"; ca: Pick<CertBundle, "caCert" | "caKey">; reason: string }
  | { kind: "regenerate"; reason: string; previousCa?: string }
  | { kind: "refuse"; reason: string };

function decodeBundle(secret: V1Secret): CertBundle | string {
  const data = secret.data ?? {};
  const missing = Object.values(CERT_FILES).filter((k) => !data[k]);
  if (missing.length) return `missing ${missing.join(", ")}`;
  const get = (k: string) => Buffer.from(data[k]!, "base64").toString("utf8");
  return { caCert: get(CERT_FILES.caCert), caKey: get(CERT_FILES.caKey), cert: get(CERT_FILES.cert), key: get(CERT_FILES.key) };
}

/** The CA if it is parseable, matches its key and outlives the renewal window. */
function usableCa(b: CertBundle, now: number, deadline: number): { ok: true } | { ok: false; reason: string; previousCa?: string } {
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(b.caCert);
  } catch {
    return { ok: false, reason: "ca.crt is not a PEM certificate" };
  }
  const alive = new Date(ca.validTo).getTime() > now;
  const previousCa = alive ? b.caCert : undefined;
  try {
    if (!ca.checkPrivateKey(createPrivateKey(b.caKey))) return { ok: false, reason: "ca.key does not match ca.crt", previousCa };
  } catch {
    return { ok: false, reason: "ca.key is not a PEM private key", previousCa };
  }
  if (new Date(ca.validTo).getTime() <= deadline) return { ok: false, reason: `the CA expires ${ca.validTo}, inside the renewal window`, previousCa };
  return { ok: true };
}

/** What to do with an existing Secret: reuse it, renew the serving cert, or start over. */
export function assessSecret(secret: V1Secret, req: { dnsNames: string[]; renewBeforeMs: number; now: Date }): CertPlan {
  if (secret.metadata?.annotations?.["cert-manager.io/certificate-name"]) {
    return { kind: "refuse", reason: "is managed by cert-manager; use deploy/overlays/cert-manager, which has no cert Job" };
  }
  if (secret.type !== "kubernetes.io/tls") return { kind: "refuse", reason: `has type ${secret.type ?? "Opaque"}, not kubernetes.io/tls; delete it or pass another --secret` };
  const bundle = decodeBundle(secret);
  if (typeof bundle === "string") return { kind: "regenerate", reason: bundle };
  const deadline = req.now.getTime() + req.renewBeforeMs;
  const ca = usableCa(bundle, req.now.getTime(), deadline);
  if (!ca.ok) return { kind: "regenerate", reason: ca.reason, ...(ca.previousCa ? { previousCa: ca.previousCa } : {}) };
  const renew = (reason: string): CertPlan => ({ kind: "renew", ca: { caCert: bundle.caCert, caKey: bundle.caKey }, reason });
  try {
    const info = inspectServing(bundle, req.dnsNames);
    if (!info.signedByCa) return renew("tls.crt is not signed by ca.crt");
    if (!info.coversNames) return renew(`tls.crt does not cover ${req.dnsNames.join(", ")}`);
    if (!new X509Certificate(bundle.cert).checkPrivateKey(createPrivateKey(bundle.key))) return renew("tls.key does not match tls.crt");
    if (info.notAfter.getTime() <= deadline) return renew(`tls.crt expires ${info.notAfter.toISOString()}, inside the renewal window`);
  } catch {
    return renew("tls.crt or tls.key is not valid PEM");
  }
  return { kind: "reuse", bundle };
}

export function bundleToSecretData(bundle: CertBundle): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, file] of Object.entries(CERT_FILES) as [keyof CertBundle, string][]) out[file] = Buffer.from(bundle[field]).toString("base64");
  return out;
}

/** base64 of the CA; during a CA rotation also the previous CA, until the webhook reloads. */
export function caBundleFor(bundle: CertBundle, previousCa?: string): string {
  if (!previousCa || previousCa === bundle.caCert) return caBundleBase64(bundle);
  return Buffer.from(`${bundle.caCert.trimEnd()}\n${previousCa.trimEnd()}\n`).toString("base64");
}

async function readSecret(core: CoreV1Api, opts: InstallOptions): Promise<V1Secret | null> {
  try {
    return await core.readNamespacedSecret({ name: opts.secret, namespace: opts.namespace });
  } catch (err) {
    if (statusOf(err) === 404) return null;
    throw err;
  }
}

function secretObject(opts: InstallOptions, bundle: CertBundle, resourceVersion?: string): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: {
      name: opts.secret,
      namespace: opts.namespace,
      labels: { "app.kubernetes.io/name": "cache-io", "app.kubernetes.io/component": "webhook" },
      annotations: { "cache.io/issued-by": "cache-io certs install" },
      ...(resourceVersion ? { resourceVersion } : {}),
    },
    data: bundleToSecretData(bundle),
  };
}

async function makeBundle(plan: CertPlan, dnsNames: string[], days: number): Promise<CertBundle> {
  if (plan.kind === "renew") return renewServing(plan.ca, { dnsNames, days });
  return generateBundle({ dnsNames, days });
}

/** The Secret's bundle after this run, and the CA to keep trusting during a CA rotation. */
async function ensureSecret(core: CoreV1Api, opts: InstallOptions): Promise<{ bundle: CertBundle; action: SecretAction; previousCa?: string }> {
  const dnsNames = serviceDnsNames(opts.service, opts.namespace);
  for (let attempt = 1; attempt <= (opts.attempts ?? 5); attempt++) {
    const existing = await readSecret(core, opts);
    if (!existing) {
      const bundle = await generateBundle({ dnsNames, days: opts.days });
      try {
        await core.createNamespacedSecret({ namespace: opts.namespace, body: secretObject(opts, bundle), fieldManager: FIELD_MANAGER });
        return { bundle, action: "created" };
      } catch (err) {
        if (statusOf(err) !== 409) throw err;
        log.info({ attempt }, `Secret ${opts.secret} was created by another run; using it`);
        continue;
      }
    }
    const plan = assessSecret(existing, { dnsNames, renewBeforeMs: opts.renewBeforeDays * 86_400_000, now: new Date() });
    if (plan.kind === "refuse") throw new Error(`Secret ${opts.namespace}/${opts.secret}: ${plan.reason}`);
    if (plan.kind === "reuse") return { bundle: plan.bundle, action: "reused" };
    log.info({ reason: plan.reason }, `Secret ${opts.secret}: ${plan.kind === "renew" ? "renewing the serving cert with the same CA" : "generating a new CA and serving cert"}`);
    const bundle = await makeBundle(plan, dnsNames, opts.days);
    try {
      await core.replaceNamespacedSecret({ name: opts.secret, namespace: opts.namespace, body: secretObject(opts, bundle, existing.metadata?.resourceVersion), fieldManager: FIELD_MANAGER });
      return { bundle, action: plan.kind === "renew" ? "renewed" : "regenerated", ...(plan.kind === "regenerate" && plan.previousCa ? { previousCa: plan.previousCa } : {}) };
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
      log.info({ attempt }, `Secret ${opts.secret} changed while renewing; re-reading`);
    }
  }
  throw new Error(`Secret ${opts.namespace}/${opts.secret}: gave up after ${opts.attempts ?? 5} conflicting attempts; is another writer fighting over it?`);
}

/**
 * JSON Patch of every webhook's caBundle. `test` ops pin each index to its webhook
 * name, and the resourceVersion in the patch makes the API server refuse (409) if the
 * object changed since we read it; both cases re-read and retry.
 */
async function patchCaBundle(admission: AdmissionregistrationV1Api, opts: InstallOptions, caBundle: string): Promise<number> {
  const patchOptions = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);
  for (let attempt = 1; attempt <= (opts.attempts ?? 5); attempt++) {
    let config;
    try {
      config = await admission.readMutatingWebhookConfiguration({ name: opts.webhookConfig });
    } catch (err) {
      if (statusOf(err) === 404) throw new Error(`MutatingWebhookConfiguration ${opts.webhookConfig} not found: apply deploy/ first (kubectl apply -k deploy/default), or pass --webhook-config`);
      throw err;
    }
    const webhooks = config.webhooks ?? [];
    if (webhooks.length === 0) throw new Error(`MutatingWebhookConfiguration ${opts.webhookConfig} has no webhooks to patch`);
    const stale = webhooks.map((w, i) => ({ w, i })).filter(({ w }) => w.clientConfig.caBundle !== caBundle);
    if (stale.length === 0) return 0;
    const ops = [
      { op: "replace", path: "/metadata/resourceVersion", value: config.metadata?.resourceVersion },
      ...stale.flatMap(({ w, i }) => [
        { op: "test", path: `/webhooks/${i}/name`, value: w.name },
        { op: "add", path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle },
      ]),
    ];
    try {
      await admission.patchMutatingWebhookConfiguration({ name: opts.webhookConfig, body: ops, fieldManager: FIELD_MANAGER }, patchOptions);
      return stale.length;
    } catch (err) {
      const status = statusOf(err);
      if (status !== 409 && status !== 422) throw err;
      log.info({ attempt, status }, `MutatingWebhookConfiguration ${opts.webhookConfig} changed while patching; re-reading`);
    }
  }
  throw new Error(`MutatingWebhookConfiguration ${opts.webhookConfig}: gave up after ${opts.attempts ?? 5} conflicting attempts`);
}

export async function installCerts(kc: KubeConfig, opts: InstallOptions): Promise<InstallResult> {
  const core = kc.makeApiClient(CoreV1Api);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const { bundle, action, previousCa } = await ensureSecret(core, opts);
  const caBundle = caBundleFor(bundle, previousCa);
  const patchedWebhooks = await patchCaBundle(admission, opts, caBundle);
  log.info({ action, patchedWebhooks, secret: opts.secret, webhookConfig: opts.webhookConfig }, "webhook certificate in place");
  return { action, caBundle, patchedWebhooks };
}
