// Helpers for tests against the test control plane: an admin client, namespaces that
// are ready for pods (their default ServiceAccount exists), the v1.36 kubectl built with
// the cluster, and polling with the generous deadlines a loaded 2-core machine needs.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Api } from "./api.js";
import type { ClusterInfo } from "./harness.js";
import { kubeconfig } from "./pki.js";
import { waitFor } from "./processes.js";

const run = promisify(execFile);

/** The label (`cache-io.test/<scope>: in`) each test file puts on its namespaces and adds to
 * its webhook configuration's namespaceSelector, so test files sharing the one cluster never
 * call each other's webhooks. One key per file, so two files can label kube-system at once. */
export function scopeLabel(scope: string): Record<string, string> {
  return { [`cache-io.test/${scope}`]: "in" };
}

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

/** A bound token of a ServiceAccount (TokenRequest), as a pod of it would mount. */
export async function serviceAccountToken(api: Api, namespace: string, sa: string, expirationSeconds = 3600): Promise<string> {
  const r = await api.must("POST", `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`, {
    apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds },
  });
  return r.status.token as string;
}

let kubeconfigs = 0;

/** A kubeconfig file (in the cluster's temp dir, removed with it) that authenticates with `token`. */
export function tokenKubeconfig(c: ClusterInfo, token: string, namespace = "default"): string {
  const file = join(c.dir, `token-${process.pid}-${kubeconfigs++}.kubeconfig`);
  writeFileSync(file, kubeconfig(c.server, c.ca, "sa", { token }, namespace), { mode: 0o600 });
  return file;
}

const ROOT = new URL("../..", import.meta.url).pathname;

/** `node dist/cli/main.js ARGS` with KUBECONFIG set; never throws on a non-zero exit. */
export async function cacheIoCli(args: string[], kubeconfigFile: string, env: NodeJS.ProcessEnv = {}): Promise<KubectlResult> {
  const base = { ...process.env };
  for (const k of ["POD_NAMESPACE", "CACHE_IO_POLICY", "KUBERNETES_SERVICE_HOST"]) delete base[k];
  try {
    const { stdout, stderr } = await run(process.execPath, ["dist/cli/main.js", ...args], {
      cwd: ROOT, timeout: 120_000, env: { ...base, KUBECONFIG: kubeconfigFile, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
  }
}
