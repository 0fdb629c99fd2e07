// Helpers for tests against the test control plane: an admin client, namespaces that
// are ready for pods (their default ServiceAccount exists), the v1.36 kubectl built with
// the cluster, and polling with the generous deadlines a loaded 2-core machine needs.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { Api } from "./api.js";
import type { ClusterInfo } from "./harness.js";
import { waitFor } from "./processes.js";

const run = promisify(execFile);

/** A label each test file puts on its namespaces and adds to its webhook configuration's
 * namespaceSelector, so test files sharing the one cluster never call each other's webhooks. */
export const SCOPE_LABEL = "cache-io.test/scope";

export function adminApi(c: ClusterInfo): Api {
  return new Api(c.server, c.ca, { cert: c.adminCert, key: c.adminKey });
}

export async function createNamespace(api: Api, name: string, labels: Record<string, string> = {}): Promise<void> {
  await api.must("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
  await until(`the default ServiceAccount in ${name}`, async () => ((await api.get(`/api/v1/namespaces/${name}/serviceaccounts/default`)).status === 200 ? true : undefined));
}

/** Delete namespaces without waiting for their finalizers (the cluster goes away at the end). */
export async function deleteNamespaces(api: Api, names: string[]): Promise<void> {
  await Promise.all(names.map((n) => api.req("DELETE", `/api/v1/namespaces/${n}`)));
}

export function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  return waitFor(what, check, { timeoutMs, intervalMs: 200 });
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The cluster's own kubectl (v1.36) with its admin kubeconfig; never throws on a non-zero exit. */
export async function kubectl(c: ClusterInfo, args: string[], opts: { input?: string; kubeconfig?: string } = {}): Promise<KubectlResult> {
  const p = run(join(c.bin, "kubectl"), ["--kubeconfig", opts.kubeconfig ?? c.kubeconfig, ...args], { maxBuffer: 32 * 2 ** 20, timeout: 120_000 });
  if (opts.input !== undefined) p.child.stdin!.end(opts.input);
  try {
    const { stdout, stderr } = await p;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
  }
}
