// The parts of a pod the webhook reads and writes must have the shapes it expects.
// kube-apiserver guarantees this after decoding; anything else (a hand-made review,
// a CLI input) is refused here, so later steps never throw on odd JSON.
import type { V1Pod } from "@kubernetes/client-node";
import { Refusal } from "./messages.js";

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function fail(where: string, what: string): never {
  throw new Refusal("invalid-pod", `the pod's ${where} ${what}; cache.io cannot inject a malformed pod.`);
}

function optionalArray(owner: Json, key: string, where: string, item: (v: unknown, at: string) => void): void {
  const value = owner[key];
  if (value === undefined || value === null) return;
  if (!Array.isArray(value)) fail(`${where}.${key}`, "must be a list");
  value.forEach((v, i) => item(v, `${where}.${key}[${i}]`));
}

function named(v: unknown, at: string): void {
  if (!isObject(v) || typeof v.name !== "string") fail(at, "must be an object with a string name");
}

function container(v: unknown, at: string): void {
  named(v, at);
  const c = v as Json;
  optionalArray(c, "env", at, named);
  optionalArray(c, "volumeMounts", at, (m, mAt) => {
    if (!isObject(m) || typeof m.name !== "string" || typeof m.mountPath !== "string") fail(mAt, "must be an object with a string name and mountPath");
  });
}

export function checkShape(pod: V1Pod): void {
  const p = pod as unknown as Json;
  if (p.metadata !== undefined && !isObject(p.metadata)) fail("metadata", "must be an object");
  const annotations = (p.metadata as Json | undefined)?.annotations;
  if (annotations !== undefined && annotations !== null && !isObject(annotations)) fail("metadata.annotations", "must be an object");
  if (!isObject(p.spec)) fail("spec", "must be an object");
  const spec = p.spec;
  if (!Array.isArray(spec.containers)) fail("spec.containers", "must be a list");
  for (const key of ["containers", "initContainers", "ephemeralContainers"]) optionalArray(spec, key, "spec", container);
  optionalArray(spec, "volumes", "spec", named);
}
