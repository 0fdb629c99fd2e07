// The MutatingWebhookConfiguration: which pods kube-apiserver sends to the webhook,
// and on which path. Entries are split by the namespace's Pod Security level so the
// API server, not the handler, decides whether hostPath (mount mode) is allowed.
import type { V1LabelSelectorRequirement, V1MutatingWebhook, V1MutatingWebhookConfiguration } from "@kubernetes/client-node";
import { ANNOTATION, NAMESPACE_LABEL } from "../shared/protocol.js";
import { NAMES, NAMESPACE, SERVICE_PORT, WEBHOOK_PATHS, labels } from "./names.js";

export const PSA_ENFORCE = "pod-security.kubernetes.io/enforce";
const NAMESPACE_NAME = "kubernetes.io/metadata.name";

/**
 * CEL: only pods that carry the trigger annotation and have not opted out are ever
 * sent, so an outage of the webhook can never block any other pod.
 */
export const MATCH_CONDITIONS = [
  { name: "has-cache-io-files", expression: `has(object.metadata.annotations) && '${ANNOTATION.files}' in object.metadata.annotations` },
  {
    name: "not-opted-out",
    expression: `!has(object.metadata.annotations) || !('${ANNOTATION.inject}' in object.metadata.annotations) || object.metadata.annotations['${ANNOTATION.inject}'] != 'false'`,
  },
] as const;

export interface WebhookConfigOptions {
  namespace?: string;
  service?: string;
  /** base64 PEM; left out of the committed manifest (the cert Job or cert-manager sets it). */
  caBundle?: string;
}

/**
 * Three entries, exactly one of which matches any namespace:
 * - enforce label absent, or `privileged`: path /mutate (mount mode allowed);
 * - any other value (baseline, restricted, or one Pod Security would read as
 *   restricted): path /mutate/copy (copy mode only, no hostPath).
 * A label selector ANDs its requirements, so "absent OR privileged" takes two entries.
 */
export const ENTRIES: { name: string; path: string; psa: V1LabelSelectorRequirement[] }[] = [
  { name: "mount.files.cache.io", path: WEBHOOK_PATHS.mount, psa: [{ key: PSA_ENFORCE, operator: "DoesNotExist" }] },
  { name: "mount-privileged.files.cache.io", path: WEBHOOK_PATHS.mount, psa: [{ key: PSA_ENFORCE, operator: "In", values: ["privileged"] }] },
  {
    name: "copy.files.cache.io",
    path: WEBHOOK_PATHS.copy,
    psa: [
      { key: PSA_ENFORCE, operator: "Exists" },
      { key: PSA_ENFORCE, operator: "NotIn", values: ["privileged"] },
    ],
  },
];

function entry(e: (typeof ENTRIES)[number], opts: Required<Omit<WebhookConfigOptions, "caBundle">> & WebhookConfigOptions): V1MutatingWebhook {
  return {
    name: e.name,
    admissionReviewVersions: ["v1"],
    sideEffects: "None",
    // The handler does no I/O: anything slower than this is an outage, not load.
    timeoutSeconds: 5,
    // Pods that ask for files cannot start correctly without them.
    failurePolicy: "Fail",
    matchPolicy: "Equivalent",
    // Another webhook may add a container after us; we run again and the status
    // annotation makes a second pass a no-op for pods already injected.
    reinvocationPolicy: "IfNeeded",
    clientConfig: {
      service: { name: opts.service, namespace: opts.namespace, path: e.path, port: SERVICE_PORT },
      ...(opts.caBundle ? { caBundle: opts.caBundle } : {}),
    },
    rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"], scope: "Namespaced" }],
    namespaceSelector: {
      matchExpressions: [
        { key: NAMESPACE_LABEL, operator: "In", values: ["enabled"] },
        { key: NAMESPACE_NAME, operator: "NotIn", values: ["kube-system", opts.namespace] },
        ...e.psa.map((r) => ({ ...r, ...(r.values ? { values: [...r.values] } : {}) })),
      ],
    },
    matchConditions: MATCH_CONDITIONS.map((c) => ({ ...c })),
  };
}

export function webhookConfiguration(options: WebhookConfigOptions = {}): V1MutatingWebhookConfiguration {
  const opts = { namespace: options.namespace ?? NAMESPACE, service: options.service ?? NAMES.webhook, caBundle: options.caBundle };
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "MutatingWebhookConfiguration",
    metadata: { name: NAMES.webhookConfig, labels: labels("webhook") },
    webhooks: ENTRIES.map((e) => entry(e, opts)),
  };
}
