// Apply what deploy/ renders to the test cluster with `kubectl apply --server-side`, the
// way an operator would. The MutatingWebhookConfiguration alone is applied with
// --dry-run=server (fully validated, not stored): stored, its failurePolicy Fail would
// send every opted-in namespace of the test files running beside this one to an
// in-cluster Service nothing serves (no kubelet runs the webhook's pods).
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import type { ClusterInfo } from "./harness.js";
import { kubectl } from "./kube.js";

export const ROOT = new URL("../..", import.meta.url).pathname;
export const FIELD_MANAGER = "cache-io-test";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export async function render(c: ClusterInfo, dir: string): Promise<Obj[]> {
  const r = await kubectl(c, ["kustomize", join(ROOT, dir)]);
  if (r.code !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj).filter(Boolean);
}

function list(objs: Obj[]): string {
  return JSON.stringify({ apiVersion: "v1", kind: "List", items: objs });
}

async function apply(c: ClusterInfo, objs: Obj[], extra: string[] = []): Promise<{ out: string; warnings: string[] }> {
  const r = await kubectl(c, ["apply", "--server-side", `--field-manager=${FIELD_MANAGER}`, "--force-conflicts", ...extra, "-f", "-"], { input: list(objs) });
  if (r.code !== 0) throw new Error(`kubectl apply --server-side ${extra.join(" ")}: ${r.stderr}`);
  return { out: r.stdout, warnings: r.stderr.split("\n").filter((l) => l.startsWith("Warning:")) };
}

/** Apply a kustomization; returns what kubectl printed (stdout, warnings) and the objects it rendered. */
export async function applyDir(c: ClusterInfo, dir: string): Promise<{ objs: Obj[]; out: string; warnings: string[] }> {
  const objs = await render(c, dir);
  const isMwc = (o: Obj) => o.kind === "MutatingWebhookConfiguration";
  const rest = objs.filter((o) => !isMwc(o));
  const a = rest.length ? await apply(c, rest) : { out: "", warnings: [] };
  const b = objs.some(isMwc) ? await apply(c, objs.filter(isMwc), ["--dry-run=server"]) : { out: "", warnings: [] };
  return { objs, out: a.out + b.out, warnings: [...a.warnings, ...b.warnings] };
}

export async function installCrds(c: ClusterInfo): Promise<void> {
  for (const project of ["cert-manager", "prometheus-operator"]) {
    const r = await kubectl(c, ["apply", "--server-side", `--field-manager=${FIELD_MANAGER}`, "-f", join(c.crds, project)]);
    if (r.code !== 0) throw new Error(`installing the ${project} CRDs: ${r.stderr}`);
  }
  const w = await kubectl(c, ["wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"]);
  if (w.code !== 0) throw new Error(`CRDs not Established: ${w.stderr}`);
}
