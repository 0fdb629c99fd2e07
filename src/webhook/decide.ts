// The pure mutation decision: skip, deny with a message, or the injected pod.
// The server (review.ts) and `cache-io inject` both go through exactly this function.
import type { V1Pod } from "@kubernetes/client-node";
import { settingsFor } from "../policy/load.js";
import type { Policy } from "../policy/schema.js";
import { ANNOTATION, RESERVED, STATUS_INJECTED } from "../shared/protocol.js";
import { annotation, readRequest, type InjectRequest } from "./annotations.js";
import { unknownKeyWarnings } from "./annotation-keys.js";
import { addNodeIp } from "./env.js";
import { fetchContainer, insertFetcher } from "./init-container.js";
import { podLabel, quote, Refusal, type ReasonCode } from "./messages.js";
import { checkShape } from "./shape.js";
import { tokenVolumes } from "./token.js";
import { addMounts, appMounts, podVolumes } from "./volumes.js";

export type { ReasonCode } from "./messages.js";

export type Decision =
  | { action: "skip"; reason: ReasonCode; warnings: string[] }
  | { action: "mutate"; reason: "injected"; pod: V1Pod; warnings: string[] }
  | { action: "deny"; reason: ReasonCode; message: string; warnings: string[] };

export interface DecideOptions {
  namespace?: string;
  /** The namespace's Pod Security level forbids hostPath: always copy mode. */
  copyOnly: boolean;
}

export function decide(pod: V1Pod, policy: Policy, opts: DecideOptions): Decision {
  const settings = settingsFor(policy, opts.namespace);
  const warnings = unknownKeyWarnings(pod.metadata?.annotations);
  try {
    const skip = skipReason(pod);
    // A reinvocation of a pod injected a moment ago was warned then; once is enough.
    if (skip) return { action: "skip", reason: skip, warnings: skip === "already-injected" ? [] : warnings };
    checkShape(pod);
    const windows = windowsReason(pod);
    if (windows) return { action: "skip", reason: "windows-pod", warnings: [...warnings, `cache.io did not inject this pod: ${windows}`] };
    warnings.push(...optOutWarning(pod));
    const request = readRequest(pod, settings, opts.copyOnly);
    checkReserved(pod);
    return { action: "mutate", reason: "injected", pod: inject(pod, request, policy, settings.fetcherResources), warnings: [...warnings, ...request.warnings] };
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    const who = podLabel(pod);
    const message = who ? `${who}: ${err.message}` : err.message;
    if (settings.injection.onInvalid === "warn") {
      return { action: "skip", reason: err.reason, warnings: [...warnings, `cache.io did not inject this pod: ${message}`] };
    }
    return { action: "deny", reason: err.reason, message, warnings };
  }
}

function skipReason(pod: V1Pod): ReasonCode | undefined {
  if (annotation(pod, ANNOTATION.files) === undefined) return "not-annotated";
  if (annotation(pod, ANNOTATION.inject)?.trim().toLowerCase() === "false") return "opted-out";
  if (annotation(pod, ANNOTATION.status)?.trim() === STATUS_INJECTED) return "already-injected";
  return undefined;
}

/** cache.io/inject takes only "false" (any case); anything else is no opt-out, and says so. */
function optOutWarning(pod: V1Pod): string[] {
  const value = annotation(pod, ANNOTATION.inject);
  if (value === undefined || value.trim().toLowerCase() === "true") return [];
  return [`${ANNOTATION.inject} ${quote(value)} is not an opt-out, so the pod was injected; set it to "false" to opt out.`];
}

/**
 * The fetcher is a Linux container (its securityContext is invalid on Windows) and the
 * node cache runs on Linux nodes: a Windows pod is left alone rather than made unschedulable.
 */
function windowsReason(pod: V1Pod): string | undefined {
  const spec = pod.spec!;
  const where =
    (typeof spec.os?.name === "string" && spec.os.name.toLowerCase() === "windows" && "spec.os.name is windows") ||
    (spec.nodeSelector?.["kubernetes.io/os"]?.toLowerCase() === "windows" && "its nodeSelector asks for kubernetes.io/os: windows");
  if (!where) return undefined;
  return `${where}, and cache.io's init container and node cache run on Linux only. Remove ${ANNOTATION.files}, or run the pod on Linux nodes.`;
}

/** A pod not yet injected must not already use the names the webhook adds. */
function checkReserved(pod: V1Pod): void {
  const spec = pod.spec!;
  const kinds = ["containers", "initContainers", "ephemeralContainers"] as const;
  for (const kind of kinds) {
    const clash = (spec[kind] ?? []).find((c) => c.name === RESERVED.initContainer);
    if (clash) {
      throw new Refusal("reserved-name", `spec.${kind} has a container named ${quote(clash.name)}, a name reserved for cache.io's init container. Rename that container.`);
    }
  }
  for (const kind of kinds) {
    for (const c of spec[kind] ?? []) {
      const mount = (c.volumeMounts ?? []).find((m) => m.name.startsWith(RESERVED.volumePrefix));
      if (mount) {
        throw new Refusal(
          "reserved-name",
          `spec.${kind} container ${quote(c.name, 63)} mounts a volume named ${quote(mount.name, 63)}; names starting with "${RESERVED.volumePrefix}" are reserved ` +
            "for the volumes cache.io adds (the node cache's read-only files). Remove that volumeMount or rename the volume it means.",
        );
      }
    }
  }
  const volume = (spec.volumes ?? []).find((v) => v.name.startsWith(RESERVED.volumePrefix));
  if (volume) {
    throw new Refusal("reserved-name", `spec.volumes has a volume named ${quote(volume.name, 63)}; names starting with "${RESERVED.volumePrefix}" are reserved for cache.io. Rename that volume.`);
  }
}

/**
 * The injected pod. Copy-on-write: only the objects on the path to a change are new
 * (the input is never mutated; untouched containers and volumes are shared), which
 * keeps the admission hot path free of a deep clone of the whole pod.
 */
function inject(original: V1Pod, request: InjectRequest, policy: Policy, fetcherResources: Policy["fetcher"]["resources"]): V1Pod {
  const spec = { ...original.spec! };
  const mounts = appMounts(request.files, request.mode, request.mountPath);
  spec.containers = spec.containers.map((c) => {
    if (!request.containers.includes(c.name)) return c;
    const container = { ...c };
    addNodeIp(container);
    addMounts(container, mounts);
    return container;
  });
  spec.initContainers = insertFetcher(spec.initContainers ?? [], fetchContainer(request.files, request.mode, policy, fetcherResources));
  spec.volumes = [...(spec.volumes ?? []), ...podVolumes(request.files, request.mode, policy.cache.root), ...tokenVolumes(policy)];
  const metadata = { ...original.metadata, annotations: { ...original.metadata?.annotations, [ANNOTATION.status]: STATUS_INJECTED } };
  return { ...original, metadata, spec };
}
