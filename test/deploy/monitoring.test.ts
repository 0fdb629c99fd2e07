// The alert rules cover what a platform team must hear about, and the Grafana dashboard
// is well-formed. (That each cache_io_* metric exists is checked against live scrapes
// in live.test.ts.) No PromQL parser is installed: expressions are checked by shape.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseYamlDocs, type Obj } from "./k8s.js";

const rules: Obj[] = parseYamlDocs(readFileSync("deploy/monitoring/prometheus-rules.yaml", "utf8"))[0]!.spec.groups.flatMap((g: Obj) => g.rules);
const dashboard = JSON.parse(readFileSync("deploy/monitoring/cache-io-dashboard.json", "utf8")) as Obj;
const exprOf = (alert: string) => rules.find((r) => r.alert === alert)?.expr as string;
/** kube-apiserver's own metrics: they see webhook calls that never reached the webhook. */
const EXTERNAL = new Set(["apiserver_admission_webhook_rejection_count"]);

function balanced(expr: string): boolean {
  let depth = 0;
  for (const ch of expr) {
    if ("([{".includes(ch)) depth++;
    if (")]}".includes(ch) && --depth < 0) return false;
  }
  return depth === 0;
}

describe("alert rules", () => {
  it.each([
    ["CacheIoWebhookErrors", /cache_io_webhook_reviews_total\{outcome="malformed"\}/],
    ["CacheIoWebhookCallsFailing", /apiserver_admission_webhook_rejection_count\{name=~"\.\*files\\\\\.cache\\\\\.io"/],
    ["CacheIoWebhookSlow", /histogram_quantile\(0\.99, .*cache_io_webhook_review_duration_seconds_bucket/],
    ["CacheIoWebhookCertExpiring", /cache_io_webhook_cert_not_after_seconds\) - time\(\) < 14 \* 86400/],
    ["CacheIoPolicyInvalid", /cache_io_policy_valid\) == 0/],
    ["CacheIoFillErrors", /cache_io_cache_fill_errors_total/],
    ["CacheIoDiskOverBudget", /cache_io_cache_disk_used_bytes \/ cache_io_cache_disk_budget_bytes\) > 0\.95/],
  ])("%s watches the right series", (alert, pattern) => {
    expect(exprOf(alert)).toMatch(pattern);
  });

  it("every expression has balanced brackets and uses only cache_io_* or named kube-apiserver metrics", () => {
    for (const r of rules) {
      expect(balanced(r.expr), r.alert).toBe(true);
      const series = (r.expr as string).match(/\b[a-z_]+_(total|seconds|bytes|count|valid|bucket)\b/g) ?? [];
      for (const s of series) expect(s.startsWith("cache_io_") || EXTERNAL.has(s), `${r.alert}: ${s}`).toBe(true);
    }
  });

  it("the webhook name pattern matches every entry of the webhook configuration", async () => {
    const { ENTRIES } = await import("../../src/deploy/webhook-config.js");
    for (const e of ENTRIES) expect(e.name).toMatch(/^.*files\.cache\.io$/);
  });
});

describe("Grafana dashboard", () => {
  const panels = (dashboard.panels as Obj[]).filter((p) => p.type !== "row");

  it("has a uid, a Prometheus data source variable, and unique panel ids on the grid", () => {
    expect(dashboard.uid).toBe("cache-io");
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }));
    const ids = (dashboard.panels as Obj[]).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels as Obj[]) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
    }
  });

  it("every panel queries the variable's data source with balanced expressions", () => {
    expect(panels.length).toBeGreaterThanOrEqual(10);
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: "${datasource}" });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(balanced(t.expr) && t.expr.includes("cache_io_"), `${p.title}: ${t.expr}`).toBe(true);
    }
  });

  it("shows webhook outcomes and latency, cert expiry, policy validity, hit ratio, fill errors and disk vs budget", () => {
    const all = panels.flatMap((p) => p.targets.map((t: Obj) => t.expr as string)).join("\n");
    for (const m of ["cache_io_webhook_reviews_total", "cache_io_webhook_review_duration_seconds_bucket", "cache_io_webhook_cert_not_after_seconds", "cache_io_policy_valid", "cache_io_cache_hits_total", "cache_io_cache_misses_total", "cache_io_cache_fill_errors_total", "cache_io_cache_disk_budget_bytes"]) {
      expect(all).toContain(m);
    }
  });
});
