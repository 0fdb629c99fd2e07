// The pre-pull DaemonSets, rendered from the policy's image list: the single-use
// pattern (each image an init container that runs a static no-op, then pause). Pure.
import { createHash } from "node:crypto";
import type { V1Container, V1DaemonSet, V1Volume } from "@kubernetes/client-node";
import { FIELD_MANAGER, IMAGE, NAMES, NAMESPACE } from "../deploy/names.js";
import { resources, restrictedContainer, restrictedPod } from "../deploy/security.js";
import type { Policy } from "../policy/schema.js";

export const NOOP_DIR = "/cache-io-prepull";
export const NOOP_PATH = `${NOOP_DIR}/noop`;
export const HASH_ANNOTATION = "cache.io/prepull-hash";
export const GROUP_LABEL = "cache.io/prepull-group";
/** What `reconcile` owns: it deletes DaemonSets with these labels that the policy no longer needs. */
export const OWNED_SELECTOR = { "app.kubernetes.io/component": "prepull", "app.kubernetes.io/managed-by": FIELD_MANAGER } as const;

export interface RenderOptions {
  namespace?: string;
  /** The cache-io image: it ships the no-op binary. */
  image?: string;
}

type PrepullImage = Policy["prepull"]["images"][number];

/** Images grouped by the architectures they exist for; "" = every architecture. */
export function groupByArchitecture(images: PrepullImage[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const { image, architectures } of images) {
    const key = [...new Set(architectures)].sort().join("-");
    const list = groups.get(key) ?? [];
    if (!list.includes(image)) list.push(image);
    groups.set(key, list);
  }
  return new Map([...groups].sort(([a], [b]) => a.localeCompare(b)));
}

/** A DNS-1123 label made from the image's repository name, for a readable container name. */
function slug(image: string): string {
  const repo = image.split("@")[0]!.split("/").pop()!.split(":")[0]!;
  return repo.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40).replace(/-+$/, "") || "image";
}

/**
 * For the no-op and pause, which do nothing. Every limit is at most 4x its request:
 * LimitRanges with `maxLimitRequestRatio` 4 (a common setting) refuse higher ratios.
 */
function tinyResources() {
  return resources({ cpu: "5m", memory: "4Mi" }, { cpu: "20m", memory: "16Mi" });
}

function pullContainer(image: string, index: number): V1Container {
  return {
    name: `pull-${index + 1}-${slug(image)}`,
    image,
    imagePullPolicy: "IfNotPresent",
    // No shell or coreutils needed in the image: the copied static binary exits 0.
    command: [NOOP_PATH],
    resources: tinyResources(),
    securityContext: restrictedContainer(),
    volumeMounts: [{ name: "noop", mountPath: NOOP_DIR, readOnly: true }],
  };
}

function noopContainer(image: string): V1Container {
  return {
    name: "copy-noop",
    image,
    imagePullPolicy: "IfNotPresent",
    args: ["prepull", "copy-noop", "--to", NOOP_PATH],
    resources: resources({ cpu: "50m", memory: "32Mi" }, { cpu: "200m", memory: "128Mi" }),
    securityContext: restrictedContainer(),
    volumeMounts: [{ name: "noop", mountPath: NOOP_DIR }],
  };
}

function hashOf(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}

function daemonSet(group: string, images: string[], policy: Policy, opts: Required<RenderOptions>): V1DaemonSet {
  const name = group ? `${NAMES.prepull}-${group}` : NAMES.prepull;
  const archs = group ? group.split("-") : [];
  const selector = { "app.kubernetes.io/name": "cache-io", "app.kubernetes.io/component": "prepull", [GROUP_LABEL]: group || "all" };
  const labels = { ...selector, ...OWNED_SELECTOR, "app.kubernetes.io/part-of": "cache-io" };
  const hash = hashOf({ images, pause: policy.prepull.pauseImage, secrets: policy.prepull.imagePullSecrets, noop: opts.image });
  const volumes: V1Volume[] = [{ name: "noop", emptyDir: { sizeLimit: "16Mi" } }];
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name, namespace: opts.namespace, labels, annotations: { [HASH_ANNOTATION]: hash } },
    spec: {
      selector: { matchLabels: selector },
      // Few nodes at a time: every node pulling gigabytes at once floods the registry.
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "10%" } },
      template: {
        metadata: { labels, annotations: { [HASH_ANNOTATION]: hash } },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 5,
          tolerations: [{ operator: "Exists" }],
          nodeSelector: { "kubernetes.io/os": "linux", ...(archs.length === 1 ? { "kubernetes.io/arch": archs[0]! } : {}) },
          ...(archs.length > 1
            ? { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/arch", operator: "In", values: archs }] }] } } } }
            : {}),
          ...(policy.prepull.imagePullSecrets.length ? { imagePullSecrets: policy.prepull.imagePullSecrets.map((n) => ({ name: n })) } : {}),
          securityContext: restrictedPod(),
          initContainers: [noopContainer(opts.image), ...images.map(pullContainer)],
          containers: [
            {
              name: "pause",
              image: policy.prepull.pauseImage,
              imagePullPolicy: "IfNotPresent",
              resources: tinyResources(),
              securityContext: restrictedContainer(),
            },
          ],
          volumes,
        },
      },
    },
  };
}

/** One DaemonSet per architecture group; none when the policy lists no images. */
export function renderPrepull(policy: Policy, options: RenderOptions = {}): V1DaemonSet[] {
  const opts = { namespace: options.namespace ?? NAMESPACE, image: options.image ?? IMAGE };
  return [...groupByArchitecture(policy.prepull.images)].map(([group, images]) => daemonSet(group, images, policy, opts));
}
