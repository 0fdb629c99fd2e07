// Where the pod is inside a workload object: a Pod itself, the pod template of a
// Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job,
// PodTemplate or CronJob, and every item of a List. Used by `cache-io inject`.
import type { V1Pod } from "@kubernetes/client-node";

type Json = Record<string, unknown>;

/** One pod (or pod template) inside an object; `replace` writes a mutated pod back. */
export interface PodSite {
  /** `Deployment/web`, for messages. */
  owner: string;
  namespace?: string;
  pod: V1Pod;
  replace(pod: V1Pod): void;
}

const TEMPLATE_AT: Record<string, string[]> = {
  Deployment: ["spec", "template"],
  StatefulSet: ["spec", "template"],
  DaemonSet: ["spec", "template"],
  ReplicaSet: ["spec", "template"],
  ReplicationController: ["spec", "template"],
  Job: ["spec", "template"],
  CronJob: ["spec", "jobTemplate", "spec", "template"],
  PodTemplate: ["template"],
};

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function dig(obj: Json, path: string[]): Json | undefined {
  let at: unknown = obj;
  for (const key of path) at = isObject(at) ? at[key] : undefined;
  return isObject(at) ? at : undefined;
}

function ownerOf(obj: Json): string {
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  const name = meta.name ?? (meta.generateName ? `${String(meta.generateName)}*` : "(unnamed)");
  return `${String(obj.kind)}/${String(name)}`;
}

/** Every pod site in an object; objects without a pod template have none. */
export function podSites(obj: unknown): PodSite[] {
  if (!isObject(obj)) return [];
  if (Array.isArray(obj.items) && typeof obj.kind === "string" && obj.kind.endsWith("List")) return obj.items.flatMap(podSites);
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  const base = { owner: ownerOf(obj), ...(typeof meta.namespace === "string" ? { namespace: meta.namespace } : {}) };
  if (obj.kind === "Pod") {
    return [{ ...base, pod: obj as V1Pod, replace: (p) => Object.assign(obj, { metadata: p.metadata, spec: p.spec }) }];
  }
  const path = TEMPLATE_AT[String(obj.kind)];
  const template = path && dig(obj, path);
  if (!template) return [];
  const pod = { apiVersion: "v1", kind: "Pod", metadata: template.metadata ?? {}, spec: template.spec } as V1Pod;
  return [{ ...base, pod, replace: (p) => Object.assign(template, { metadata: p.metadata, spec: p.spec }) }];
}
