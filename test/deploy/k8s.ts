// Test helpers for manifests: render a kustomization with `kubectl kustomize`, validate
// objects against the Kubernetes OpenAPI schemas (kubernetes-models) plus an
// unknown-field check (client-node's model field maps), and evaluate label selectors.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import type { V1LabelSelector, V1PodSpec } from "@kubernetes/client-node";
import * as admission from "kubernetes-models/admissionregistration.k8s.io/v1";
import * as apps from "kubernetes-models/apps/v1";
import * as batch from "kubernetes-models/batch/v1";
import * as policy from "kubernetes-models/policy/v1";
import * as rbac from "kubernetes-models/rbac.authorization.k8s.io/v1";
import * as scheduling from "kubernetes-models/scheduling.k8s.io/v1";
import * as core from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } };

const run = promisify(execFile);
const rendered = new Map<string, Promise<Obj[]>>();

/** `kubectl kustomize DIR`, parsed; cached per directory for the test file. */
export function kustomize(dir: string): Promise<Obj[]> {
  let p = rendered.get(dir);
  if (!p) {
    p = run("kubectl", ["kustomize", dir], { maxBuffer: 16 * 2 ** 20 }).then(({ stdout }) => parseYamlDocs(stdout));
    rendered.set(dir, p);
  }
  return p;
}

export function parseYamlDocs(text: string): Obj[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length) throw new Error(d.errors.map((e) => e.message).join("; "));
    return d.toJS() as Obj;
  }).filter(Boolean);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ModelModule = Record<string, any>;
const MODELS: Record<string, ModelModule> = {
  v1: core,
  "apps/v1": apps,
  "batch/v1": batch,
  "policy/v1": policy,
  "rbac.authorization.k8s.io/v1": rbac,
  "admissionregistration.k8s.io/v1": admission,
  "scheduling.k8s.io/v1": scheduling,
};

export function isBuiltIn(o: Obj): boolean {
  return o.apiVersion in MODELS;
}

const LEAF = new Set(["string", "number", "boolean", "Date", "any", "object", "IntOrString"]);

/** Field names the Kubernetes type does not have (typos the schema validator lets through). */
export function unknownFields(value: unknown, type: string, path = ""): string[] {
  if (value === null || value === undefined || LEAF.has(type)) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const model = (k8s as Record<string, any>)[type];
  if (typeof model?.getAttributeTypeMap !== "function") return [];
  const attrs = new Map<string, string>((model.getAttributeTypeMap() as { baseName: string; type: string }[]).map((a) => [a.baseName, a.type]));
  return Object.entries(value as object).flatMap(([k, v]) => (attrs.has(k) ? unknownFields(v, attrs.get(k)!, `${path}.${k}`) : [`${path}.${k}`]));
}

/** Schema errors for a built-in object, as strings ("" entries never appear). */
export function validate(o: Obj): string[] {
  const mod = MODELS[o.apiVersion];
  if (!mod) return [`${o.kind}/${o.metadata?.name}: ${o.apiVersion} is not a built-in API this check knows`];
  const Model = mod[o.kind];
  if (!Model) return [`${o.kind}/${o.metadata?.name}: no model for ${o.apiVersion} ${o.kind}`];
  const errors: string[] = [];
  try {
    new Model(o).validate();
  } catch (err) {
    errors.push(`${o.kind}/${o.metadata.name}: ${(err as Error).message}`);
  }
  const typeName = `V1${o.kind}`;
  if (typeof (k8s as Record<string, unknown>)[typeName] !== "function") errors.push(`${o.kind}: no client-node model ${typeName}`);
  for (const f of unknownFields(o, typeName)) errors.push(`${o.kind}/${o.metadata.name}: unknown field ${f}`);
  return errors;
}

export function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} in the rendered manifests`);
  return o;
}

export function podSpecOf(o: Obj): V1PodSpec | undefined {
  if (o.kind === "CronJob") return o.spec.jobTemplate.spec.template.spec;
  return o.spec?.template?.spec;
}

/** Kubernetes label selector semantics (NotIn and DoesNotExist match an absent key). */
export function selects(selector: V1LabelSelector, labels: Record<string, string>): boolean {
  const eq = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return eq && (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    const has = key in labels;
    switch (operator) {
      case "In": return has && values.includes(labels[key]!);
      case "NotIn": return !has || !values.includes(labels[key]!);
      case "Exists": return has;
      case "DoesNotExist": return !has;
      default: throw new Error(`unknown operator ${operator}`);
    }
  });
}
