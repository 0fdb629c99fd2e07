// The checks kube-apiserver applies to a pod after admission (the subset a mutation
// can break), the Kubernetes OpenAPI schema, and the Pod Security "restricted" rules.
import type { V1Container, V1Pod, V1PodSecurityContext } from "@kubernetes/client-node";
import { Pod } from "kubernetes-models/v1";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const VOLUME_SOURCES = ["hostPath", "emptyDir", "configMap", "secret", "persistentVolumeClaim", "projected", "downwardAPI", "csi", "ephemeral", "nfs"];

function allContainers(pod: V1Pod): Array<{ kind: string; c: V1Container }> {
  const spec = pod.spec;
  return [
    ...(spec?.containers ?? []).map((c) => ({ kind: "containers", c })),
    ...(spec?.initContainers ?? []).map((c) => ({ kind: "initContainers", c })),
    ...(spec?.ephemeralContainers ?? []).map((c) => ({ kind: "ephemeralContainers", c: c as V1Container })),
  ];
}

function duplicates(names: string[]): string[] {
  return names.filter((n, i) => names.indexOf(n) !== i);
}

function dnsLabel(name: string, what: string): string[] {
  return name.length <= 63 && DNS1123_LABEL.test(name) ? [] : [`${what} name "${name}" is not a DNS-1123 label`];
}

function containerProblems(kind: string, c: V1Container, volumes: Set<string>): string[] {
  const at = `${kind}/${c.name}`;
  const problems = dnsLabel(c.name, at);
  const mounts = c.volumeMounts ?? [];
  for (const m of mounts) {
    if (!volumes.has(m.name)) problems.push(`${at}: mount of unknown volume "${m.name}"`);
    if (!m.mountPath.startsWith("/")) problems.push(`${at}: mountPath "${m.mountPath}" is not absolute`);
    if (m.subPath !== undefined && (m.subPath.startsWith("/") || m.subPath.split("/").includes(".."))) {
      problems.push(`${at}: subPath "${m.subPath}" must be relative without ".."`);
    }
  }
  for (const p of duplicates(mounts.map((m) => m.mountPath))) problems.push(`${at}: mountPath "${p}" used twice`);
  for (const e of c.env ?? []) if (!ENV_NAME.test(e.name)) problems.push(`${at}: env name "${e.name}" is invalid`);
  for (const n of duplicates((c.env ?? []).map((e) => e.name))) problems.push(`${at}: env "${n}" defined twice`);
  return problems;
}

/** What kube-apiserver's pod validation would reject, as readable strings. */
export function apiServerProblems(pod: V1Pod): string[] {
  const volumes = pod.spec?.volumes ?? [];
  const names = new Set(volumes.map((v) => v.name));
  const problems: string[] = [];
  for (const v of volumes) {
    problems.push(...dnsLabel(v.name, "volume"));
    const sources = VOLUME_SOURCES.filter((s) => (v as unknown as Record<string, unknown>)[s] !== undefined);
    if (sources.length !== 1) problems.push(`volume "${v.name}" must have exactly one source, has ${sources.join(", ") || "none"}`);
    if (v.hostPath && (!v.hostPath.path.startsWith("/") || v.hostPath.path.split("/").includes(".."))) problems.push(`volume "${v.name}": bad hostPath`);
  }
  for (const n of duplicates(volumes.map((v) => v.name))) problems.push(`volume name "${n}" used twice`);
  const containers = allContainers(pod);
  for (const n of duplicates(containers.map((x) => x.c.name))) problems.push(`container name "${n}" used twice`);
  for (const { kind, c } of containers) problems.push(...containerProblems(kind, c, names));
  return problems;
}

/** Errors from the Kubernetes OpenAPI schema (kubernetes-models). */
export function schemaProblems(pod: V1Pod): string[] {
  try {
    new Pod(pod as ConstructorParameters<typeof Pod>[0]).validate();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

/** Both of the above: an empty list means the API server would accept the pod. */
export function podProblems(pod: V1Pod): string[] {
  return [...apiServerProblems(pod), ...schemaProblems(pod)];
}

const RESTRICTED_VOLUMES = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]);

/** Pod Security Standard "restricted" checks for one container (pod-level settings count). */
export function restrictedProblems(c: V1Container, podContext: V1PodSecurityContext = {}): string[] {
  const sc = c.securityContext ?? {};
  const problems: string[] = [];
  if (sc.privileged) problems.push("privileged");
  if (sc.allowPrivilegeEscalation !== false) problems.push("allowPrivilegeEscalation must be false");
  if (!(sc.capabilities?.drop ?? []).includes("ALL")) problems.push("capabilities must drop ALL");
  if ((sc.capabilities?.add ?? []).some((a) => a !== "NET_BIND_SERVICE")) problems.push("capabilities may add only NET_BIND_SERVICE");
  if ((sc.runAsNonRoot ?? podContext.runAsNonRoot) !== true) problems.push("runAsNonRoot must be true");
  if ((sc.runAsUser ?? podContext.runAsUser) === 0) problems.push("runAsUser must not be 0");
  const seccomp = sc.seccompProfile?.type ?? podContext.seccompProfile?.type;
  if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") problems.push("seccompProfile must be RuntimeDefault or Localhost");
  return problems;
}

/** Volumes a "restricted" (or "baseline", for hostPath) namespace would refuse. */
export function restrictedVolumeProblems(pod: V1Pod): string[] {
  return (pod.spec?.volumes ?? [])
    .filter((v) => !Object.keys(v).some((k) => RESTRICTED_VOLUMES.has(k)))
    .map((v) => `volume "${v.name}" has a type the restricted level forbids`);
}

const SUFFIX: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A Kubernetes resource quantity ("250m", "1", "64Mi", "1.5Gi", "1e3") as a number; throws on anything else. */
export function parseQuantity(q: string | number): number {
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(String(q).trim());
  if (!m) throw new Error(`"${q}" is not a Kubernetes quantity`);
  return Number(m[1]) * (m[2] ? 10 ** Number(m[2].slice(1)) : SUFFIX[m[3] ?? ""]!);
}

export interface LimitRangeItem {
  /** Per resource: limit / request at most this. */
  maxLimitRequestRatio?: Record<string, string>;
  /** Per resource: limit at most this. */
  max?: Record<string, string>;
  /** Per resource: request at least this. */
  min?: Record<string, string>;
}

/** What a LimitRange of type Container would refuse in this container (as the LimitRanger admission plugin checks). */
export function limitRangeProblems(c: V1Container, range: LimitRangeItem): string[] {
  const requests = (c.resources?.requests ?? {}) as Record<string, string>;
  const limits = (c.resources?.limits ?? {}) as Record<string, string>;
  const problems: string[] = [];
  for (const [resource, ratio] of Object.entries(range.maxLimitRequestRatio ?? {})) {
    const req = requests[resource];
    const lim = limits[resource];
    if (req === undefined || lim === undefined) {
      problems.push(`${c.name}: ${resource} needs both a request and a limit for maxLimitRequestRatio`);
      continue;
    }
    const r = parseQuantity(lim) / parseQuantity(req);
    if (r > parseQuantity(ratio)) problems.push(`${c.name}: ${resource} limit/request ${lim}/${req} = ${r} exceeds ${ratio}`);
  }
  for (const [resource, max] of Object.entries(range.max ?? {})) {
    if (limits[resource] === undefined || parseQuantity(limits[resource]) > parseQuantity(max)) problems.push(`${c.name}: ${resource} limit over max ${max}`);
  }
  for (const [resource, min] of Object.entries(range.min ?? {})) {
    if (requests[resource] === undefined || parseQuantity(requests[resource]) < parseQuantity(min)) problems.push(`${c.name}: ${resource} request under min ${min}`);
  }
  return problems;
}
