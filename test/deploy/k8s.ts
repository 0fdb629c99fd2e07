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

/** cert-manager.io/v1 and monitoring.coreos.com/v1 have no schema package here: checked by hand. */
export function checkCustomResource(o: Obj, namespace = "cache-io"): string[] {
  const e: string[] = [];
  const need = (cond: boolean, what: string) => cond || e.push(`${o.kind}/${o.metadata.name}: ${what}`);
  need(typeof o.metadata?.name === "string" && o.metadata.namespace === namespace, `needs metadata.name and namespace ${namespace}`);
  if (o.apiVersion === "cert-manager.io/v1" && o.kind === "Issuer") need(!!(o.spec?.selfSigned || o.spec?.ca?.secretName), "Issuer needs spec.selfSigned or spec.ca.secretName");
  else if (o.apiVersion === "cert-manager.io/v1" && o.kind === "Certificate") {
    need(typeof o.spec?.secretName === "string", "spec.secretName");
    need(o.spec?.issuerRef?.kind === "Issuer" && typeof o.spec.issuerRef.name === "string", "spec.issuerRef {kind: Issuer, name}");
    need(o.spec.isCA === true ? typeof o.spec.commonName === "string" : Array.isArray(o.spec.dnsNames) && o.spec.dnsNames.length > 0, "commonName (CA) or dnsNames");
  } else if (o.apiVersion === "monitoring.coreos.com/v1" && o.kind === "PrometheusRule") {
    need(Array.isArray(o.spec?.groups) && o.spec.groups.length > 0, "spec.groups");
    for (const g of o.spec?.groups ?? []) {
      need(typeof g.name === "string" && Array.isArray(g.rules), "each group needs name and rules");
      for (const r of g.rules ?? []) {
        need(typeof r.alert === "string" && typeof r.expr === "string" && r.expr.trim() !== "", `rule ${r.alert}: alert and expr`);
        need(/^\d+[smh]$/.test(r.for ?? "0s"), `rule ${r.alert}: for must be a duration`);
        need(["critical", "warning", "info"].includes(r.labels?.severity), `rule ${r.alert}: labels.severity`);
        need(typeof r.annotations?.summary === "string" && typeof r.annotations?.description === "string", `rule ${r.alert}: summary and description`);
      }
    }
  } else if (o.apiVersion === "monitoring.coreos.com/v1" && o.kind === "PodMonitor") {
    need(!!o.spec?.selector?.matchLabels, "spec.selector.matchLabels");
    need(Array.isArray(o.spec?.podMetricsEndpoints) && o.spec.podMetricsEndpoints.every((p: Obj) => typeof p.port === "string" && p.path === "/metrics"), "podMetricsEndpoints with a named port and /metrics");
  } else e.push(`${o.apiVersion} ${o.kind}: not a kind this install should contain`);
  return e;
}
