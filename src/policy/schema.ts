// The policy file's schema: what platform teams may set, with defaults and the
// checks that name the bad field. Quantities and durations become numbers here.
import { z } from "zod";
import { credentialsSchema } from "./credentials.js";
import { keyIgnoreQuerySchema } from "./keys.js";
import { partsSchema } from "./parts.js";
import { peersSchema } from "./peers.js";
import { proxiesSchema } from "./proxies.js";
import { bytes, duration } from "./fields.js";

const hostPattern = z
  .string()
  .regex(/^(\*|(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]|[0-9a-f:.]+)$/i, "must be a host name, `*.domain`, `*` or an IP address (no scheme, port or path)");

const privateEntry = z
  .string()
  .regex(/^([a-z0-9.-]+|[0-9a-f:.]+(\/\d{1,3})?|\[[0-9a-f:.]+\])$/i, "must be a host name, an IP address or a CIDR such as 10.0.0.0/8");

const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label").max(63);
const absPath = z
  .string()
  .regex(/^\/[^\0]*$/, "must be an absolute path")
  .refine((p) => !p.split("/").some((s) => s === ".." || s === "."), "must not contain . or .. segments")
  .refine((p) => p !== "/", "must not be /");

const image = z.string().min(1).regex(/^[a-z0-9][^\s]*$/i, "must be an image reference such as registry.k8s.io/pause:3.10");
const quantity = z.union([z.string(), z.number()]).transform(String);
const resourceList = z.strictObject({ cpu: quantity.optional(), memory: quantity.optional(), "ephemeral-storage": quantity.optional() });

const origins = z.strictObject({
  allow: z.array(hostPattern).default(["*"]),
  schemes: z.array(z.enum(["https", "http"])).min(1).default(["https", "http"]),
  allowPrivate: z.array(privateEntry).default([]),
});

const injection = z.strictObject({
  maxFiles: z.number().int().min(1).max(256).default(16),
  mountPath: absPath.default("/cache"),
  mode: z.enum(["mount", "copy"]).default("mount"),
  onInvalid: z.enum(["deny", "warn"]).default("deny"),
});

const fetcherResources = z.strictObject({ requests: resourceList.optional(), limits: resourceList.optional() });

/** Requests and limits that pass LimitRanges with a maxLimitRequestRatio of 4 or more. */
export const DEFAULT_FETCHER_RESOURCES = { requests: { cpu: "250m", memory: "32Mi" }, limits: { cpu: "1", memory: "64Mi" } };

const namespaceOverride = z.strictObject({
  maxFiles: z.number().int().min(1).max(256).optional(),
  mountPath: absPath.optional(),
  mode: z.enum(["mount", "copy"]).optional(),
  onInvalid: z.enum(["deny", "warn"]).optional(),
  originsAllow: z.array(hostPattern).optional(),
  /** Replaces fetcher.resources for pods in this namespace (for its LimitRange). */
  fetcher: z.strictObject({ resources: fetcherResources }).optional(),
  /** Replaces identity.diskSharePerNamespace for this namespace's callers. */
  diskShare: z.number().gt(0, "must be more than 0 and at most 1 (a share of cache.diskBudget)").max(1, "must be at most 1 (a share of cache.diskBudget)").optional(),
});

/** Who may ask the node cache (src/shared/identity.ts, docs/CACHE.md "Who may ask"). */
const identity = z.strictObject({
  /**
   * off: no token (anonymous callers, the union of every namespace's allow-list);
   * optional: the init container sends a token and the cache verifies any token it gets, anonymous callers still served (rollout);
   * required: file requests without a valid token get 401.
   */
  mode: z.enum(["off", "optional", "required"]).default("required"),
  /** expirationSeconds of the projected token (the API server's minimum is 600). */
  tokenExpirationSeconds: z.number().int().min(600, "must be at least 600 (the API server refuses shorter projected tokens)").max(86_400).default(600),
  /** Origin fills in flight started by one namespace's callers (joining a fill in flight costs nothing). */
  maxFillsPerNamespace: z.number().int().min(1).default(8),
  /** Share of cache.diskBudget that files filled by one namespace's callers may hold (1: no cap of its own). */
  diskSharePerNamespace: z.number().gt(0, "must be more than 0 and at most 1 (a share of cache.diskBudget)").max(1, "must be at most 1 (a share of cache.diskBudget)").default(1),
});

const prepullImage = z.union([
  image.transform((i) => ({ image: i, architectures: [] as string[] })),
  z.strictObject({ image, architectures: z.array(z.enum(["amd64", "arm64", "arm", "ppc64le", "s390x"])).default([]) }),
]);

export const policySchema = z.strictObject({
  origins: origins.prefault({}),
  injection: injection.prefault({}),
  namespaces: z.record(dnsLabel, namespaceOverride).default({}),
  identity: identity.prefault({}),
  /** Private origins (src/policy/credentials.ts). */
  credentials: credentialsSchema,
  fetcher: z
    .strictObject({
      image: image.default("curlimages/curl:8.11.1"),
      imagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).default("IfNotPresent"),
      runAsUser: z.number().int().min(1).default(65532),
      retries: z.number().int().min(0).max(100).default(10),
      resources: fetcherResources.default(DEFAULT_FETCHER_RESOURCES),
    })
    .prefault({}),
  cache: z
    .strictObject({
      root: absPath.default("/var/lib/cache-io"),
      port: z.number().int().min(1).max(65535).default(8585),
      diskBudget: bytes.default(50 * 2 ** 30),
      maxFileSize: bytes.default(20 * 2 ** 30),
      revalidateAfter: duration.default(3_600_000),
      connectTimeout: duration.default(10_000),
      idleTimeout: duration.default(60_000),
      fillTimeout: duration.default(3_600_000),
      originRetries: z.number().int().min(0).max(20).default(3),
      recentUseWindow: duration.default(600_000),
      emptyDirGrace: duration.default(600_000),
      /** Share of diskBudget that files protected only by a recent request may hold. */
      recentUseShare: z.number().min(0).max(1).default(0.5),
      /** Distinct keys remembered as recently requested (oldest forgotten first). */
      recentUseMaxKeys: z.number().int().min(1).default(10_000),
      /** A revalidation that fails transiently keeps serving the old copy at most this long past revalidateAfter. */
      maxStale: duration.default(86_400_000),
      /** /v1/objects downloads served at once, in all and per client address (ensure waiters hold no download slot). */
      maxDownloads: z.number().int().min(1).default(256),
      maxDownloadsPerClient: z.number().int().min(1).default(32),
      /** A download whose client takes no bytes for this long is cut. */
      sendTimeout: duration.default(60_000),
      /** Origin fills in flight, in all and per origin host name; more are refused with 503. */
      maxFills: z.number().int().min(1).default(32),
      maxFillsPerHost: z.number().int().min(1).default(8),
      /** A fill whose every waiter has gone is abandoned after this (pre-warm fills never are). */
      abandonGrace: duration.default(10_000),
      /** Query parameters left out of cache keys (src/policy/keys.ts). */
      keyIgnoreQuery: keyIgnoreQuerySchema,
      /** Parallel ranged fills (src/policy/parts.ts). */
      parts: partsSchema.prefault({}),
      /** The cluster tier: fills from the owning peer first (src/policy/peers.ts). */
      peers: peersSchema.prefault({}),
      /** Forward proxies for origin fetches (src/policy/proxies.ts). */
      proxies: proxiesSchema,
      prewarm: z.array(z.string().url()).default([]),
    })
    .prefault({}),
  prepull: z
    .strictObject({
      images: z.array(prepullImage).default([]),
      pauseImage: image.default("registry.k8s.io/pause:3.10"),
      imagePullSecrets: z.array(dnsLabel).default([]),
    })
    .prefault({}),
});

export type Policy = z.output<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;
export type InjectionSettings = Policy["injection"];
