// What a check returns and how a run is shown: one ✔/‼/✖ line per check (a hint under
// each failure saying how to fix it), or the same as JSON (-o json). Failures make the
// exit code 1; warnings (‼) do not.
export type Status = "ok" | "warn" | "fail";

export interface CheckResult {
  id: string;
  title: string;
  status: Status;
  detail: string;
  hint?: string;
}

export interface Report {
  mode: "pre-install" | "post-install";
  namespace: string;
  server: string;
  ok: boolean;
  checks: CheckResult[];
}

export const ok = (id: string, title: string, detail: string): CheckResult => ({ id, title, status: "ok", detail });
export const warn = (id: string, title: string, detail: string, hint?: string): CheckResult => ({ id, title, status: "warn", detail, ...(hint ? { hint } : {}) });
export const fail = (id: string, title: string, detail: string, hint?: string): CheckResult => ({ id, title, status: "fail", detail, ...(hint ? { hint } : {}) });

const MARK: Record<Status, string> = { ok: "✔", warn: "‼", fail: "✖" };

export function report(mode: Report["mode"], namespace: string, server: string, checks: CheckResult[]): Report {
  return { mode, namespace, server, ok: checks.every((c) => c.status !== "fail"), checks };
}

export function formatText(r: Report): string {
  const lines = [`cache-io check: ${r.mode}, namespace ${r.namespace}, ${r.server}`, ""];
  for (const c of r.checks) {
    lines.push(`${MARK[c.status]} ${c.title}: ${c.detail}`);
    if (c.hint && c.status !== "ok") lines.push(`    fix: ${c.hint}`);
  }
  const count = (s: Status) => r.checks.filter((c) => c.status === s).length;
  lines.push("", `${r.ok ? "Status: OK" : "Status: FAILED"} (${count("ok")} passed, ${count("warn")} warnings, ${count("fail")} failed)`, "");
  return lines.join("\n");
}

/** Runs a check; an exception (network, TLS, a bug) is its failure, not the run's. */
export async function guarded(id: string, title: string, check: () => Promise<CheckResult>): Promise<CheckResult> {
  try {
    return await check();
  } catch (err) {
    return fail(id, title, `could not check: ${(err as Error).message}`, "make sure the kubeconfig's cluster is reachable, then run the check again");
  }
}
