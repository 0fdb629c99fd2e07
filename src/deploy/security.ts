// Security contexts and small pod-spec pieces every component shares. Each call
// returns fresh objects, so the YAML writer never emits anchors/aliases.
import type { V1Container, V1EnvVar, V1PodSecurityContext, V1ResourceRequirements, V1SecurityContext, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import { PATHS } from "./names.js";

/** The uid/gid distroless' `nonroot` user has; the image runs as it. */
export const NONROOT_UID = 65532;

/** Pod Security "restricted" at pod level. */
export function restrictedPod(): V1PodSecurityContext {
  return { runAsNonRoot: true, runAsUser: NONROOT_UID, runAsGroup: NONROOT_UID, seccompProfile: { type: "RuntimeDefault" } };
}

/** Pod Security "restricted" at container level, plus a read-only root filesystem. */
export function restrictedContainer(): V1SecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: NONROOT_UID,
    runAsGroup: NONROOT_UID,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
}

export function resources(requests: { cpu: string; memory: string }, limits: { cpu: string; memory: string }): V1ResourceRequirements {
  return { requests: { ...requests }, limits: { ...limits } };
}

export function fieldEnv(name: string, fieldPath: string): V1EnvVar {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

/** Node writes nothing outside mounted volumes, but libraries may ask for os.tmpdir(). */
export function tmpVolume(): V1Volume {
  return { name: "tmp", emptyDir: { sizeLimit: "64Mi" } };
}

export function tmpMount(): V1VolumeMount {
  return { name: "tmp", mountPath: PATHS.tmp };
}

export function policyVolume(configMap: string): V1Volume {
  return { name: "policy", configMap: { name: configMap } };
}

export function policyMount(): V1VolumeMount {
  return { name: "policy", mountPath: PATHS.policyDir, readOnly: true };
}

/** The node cache's own ServiceAccount token for its peers: short-lived, for the node caches' audience only (the kubelet rotates it). */
export function peerTokenVolume(audience: string): V1Volume {
  return { name: "peer-token", projected: { sources: [{ serviceAccountToken: { audience, expirationSeconds: 3600, path: "token" } }] } };
}

export function peerTokenMount(): V1VolumeMount {
  return { name: "peer-token", mountPath: PATHS.peerTokenDir, readOnly: true };
}

/** A cache-io container: the image's ENTRYPOINT is the CLI, so args are `<cmd> ...`. */
export function cliContainer(name: string, image: string, args: string[], extra: Partial<V1Container> = {}): V1Container {
  return {
    name,
    image,
    imagePullPolicy: "IfNotPresent",
    args,
    securityContext: restrictedContainer(),
    ...extra,
  };
}
