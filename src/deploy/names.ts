// Names, labels, ports and paths shared by every generated manifest, so the webhook
// config, its Service, the Deployment's args and the RBAC rules cannot disagree.
import { VERSION } from "../shared/version.js";

export const NAMESPACE = "cache-io";
/** Where the release workflow pushes the image. */
export const IMAGE_NAME = "ghcr.io/cache-io/cache-io";
/** Where the release workflow pushes the Helm chart (`helm install cache-io oci://ghcr.io/cache-io/charts/cache-io`). */
export const CHART_REPOSITORY = "oci://ghcr.io/cache-io/charts";
/** The image every component runs, tagged with package.json's version; kustomize `images:` overrides it (see deploy/default). */
export const IMAGE = `${IMAGE_NAME}:${VERSION}`;
export const FIELD_MANAGER = "cache-io";

/** Where and with which image the builders place the objects: kustomize's base uses the defaults, the Helm chart sentinels it replaces with template expressions. */
export interface Target {
  namespace: string;
  image: string;
}

export const DEFAULT_TARGET: Target = { namespace: NAMESPACE, image: IMAGE };

export const NAMES = {
  webhookConfig: "cache-io",
  webhook: "cache-io-webhook",
  tlsSecret: "cache-io-webhook-tls",
  policy: "cache-io-policy",
  nodeCache: "cache-io-cache",
  /** The headless Service whose EndpointSlices list the node caches (the cluster tier's peers). */
  peersService: "cache-io-node-cache-peers",
  certs: "cache-io-certs",
  certsRenew: "cache-io-certs-renew",
  prepullController: "cache-io-prepull-controller",
  prepull: "cache-io-prepull",
  priorityClass: "cache-io-critical",
  caIssuer: "cache-io-ca",
} as const;

export const PATHS = {
  policyDir: "/etc/cache-io/policy",
  policyFile: "/etc/cache-io/policy/policy.yaml",
  certsDir: "/etc/cache-io/certs",
  /** The node cache's own projected token, sent to peers (cache-io cache --peer-token-file). */
  peerTokenDir: "/var/run/secrets/cache.io/peer",
  tmp: "/tmp",
} as const;

export const WEBHOOK_PORT = 8443;
export const SERVICE_PORT = 443;
export { WEBHOOK_PATHS } from "../shared/protocol.js";

export type Component = "webhook" | "node-cache" | "certs" | "prepull-controller" | "prepull";

/** Recommended labels; `selectorLabels` is the immutable subset used in selectors. */
export function selectorLabels(component: Component): Record<string, string> {
  return { "app.kubernetes.io/name": "cache-io", "app.kubernetes.io/component": component };
}

export function labels(component: Component): Record<string, string> {
  return { ...selectorLabels(component), "app.kubernetes.io/part-of": "cache-io" };
}
