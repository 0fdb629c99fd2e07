// The alert rules and the Grafana dashboard: `promtool check rules` accepts the rules,
// `promtool test rules` proves each alert fires in its failure and stays quiet in the
// nearest healthy situation, every alert links to its docs/RUNBOOK.md section, and the
// dashboard is well-formed, filterable by cluster and namespace, and counts the bytes
// mount-mode pods read in place. (That each cache_io_* metric exists, and that a full
// scrape passes `promtool check metrics`, is checked against real processes in
// live.test.ts.)
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ALERT_CASES, type AlertCase } from "./alert-cases.js";
import { parseYamlDocs, type Obj } from "./k8s.js";
import { findTool, itWith, toolPath } from "./tools.js";

const run = promisify(execFile);
const promtool = findTool("promtool", "Install it with `apt-get install -y prometheus` (Debian's package ships promtool).");
const RULES_FILE = "deploy/monitoring/prometheus-rules.yaml";
const ruleObject = parseYamlDocs(readFileSync(RULES_FILE, "utf8"))[0]!;
const rules: Obj[] = ruleObject.spec.groups.flatMap((g: Obj) => g.rules);
const dashboard = JSON.parse(readFileSync("deploy/monitoring/cache-io-dashboard.json", "utf8")) as Obj;
const exprOf = (alert: string) => rules.find((r) => r.alert === alert)?.expr as string;
/** kube-apiserver's own metrics: they see webhook calls that never reached the webhook. */
const EXTERNAL = new Set(["apiserver_admission_webhook_rejection_count"]);
const RUNBOOK = readFileSync("docs/RUNBOOK.md", "utf8");

const work = mkdtempSync(join(tmpdir(), "promtool-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function balanced(expr: string): boolean {
  let depth = 0;
  for (const ch of expr) {
    if ("([{".includes(ch)) depth++;
    if (")]}".includes(ch) && --depth < 0) return false;
  }
  return depth === 0;
}

/** GitHub's anchor for a Markdown heading. */
const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\w\- ]/g, "").replace(/ /g, "-");

/**
 * The rule groups as a plain Prometheus rule file. For `promtool test rules` the
 * annotations are left out (promtool compares rendered annotations verbatim); that
 * their templates only use labels the alert has is checked below, and that they parse,
 * by `promtool check rules` on the full file.
 */
function ruleFile(withAnnotations: boolean): string {
  const path = join(work, withAnnotations ? "rules.yaml" : "rules-bare.yaml");
  const groups = ruleObject.spec.groups.map((g: Obj) => ({ ...g, rules: g.rules.map((r: Obj) => (withAnnotations ? r : { ...r, annotations: undefined })) }));
  writeFileSync(path, stringify({ groups }));
  return path;
}

function promtoolTest(alert: string, c: AlertCase): string {
  const path = join(work, `${alert}.test.yaml`);
  const test = (input: AlertCase["fires"]["input"], at: string, labels: Record<string, string>[]) => ({
    interval: "1m",
    input_series: input,
    alert_rule_test: [{ eval_time: at, alertname: alert, exp_alerts: labels.map((l) => ({ exp_labels: { severity: rules.find((r) => r.alert === alert)!.labels.severity, ...l } })) }],
  });
  writeFileSync(path, stringify({ rule_files: [ruleFile(false)], evaluation_interval: "1m", tests: [test(c.fires.input, c.fires.at, c.fires.labels), test(c.quiet.input, c.quiet.at, [])] }));
  return path;
}

describe("alert rules", () => {
  it.each([
    ["CacheIoWebhookErrors", /cache_io_webhook_reviews_total\{outcome=~"error\|malformed"\}/],
    ["CacheIoWebhookCallsFailing", /apiserver_admission_webhook_rejection_count\{name=~"\.\*files\\\\\.cache\\\\\.io"/],
    ["CacheIoWebhookSlow", /histogram_quantile\(0\.99, .*cache_io_webhook_review_duration_seconds_bucket/],
    ["CacheIoWebhookCertExpiring", /cache_io_webhook_cert_expiry_timestamp_seconds\) - time\(\) < 14 \* 86400/],
    ["CacheIoPolicyInvalid", /cache_io_policy_valid\) == 0/],
    ["CacheIoFillErrors", /cache_io_cache_fill_errors_total/],
    ["CacheIoStaleServed", /cache_io_cache_stale_served_total/],
    ["CacheIoDownloadsRefused", /cache_io_cache_downloads_refused_total/],
    ["CacheIoVersionSkew", /cache_io_build_info/],
    ["CacheIoDiskOverBudget", /cache_io_cache_disk_used_bytes \/ cache_io_cache_disk_budget_bytes\) > 0\.95/],
  ])("%s watches the right series", (alert, pattern) => {
    expect(exprOf(alert)).toMatch(pattern);
  });

  it("every expression has balanced brackets and uses only cache_io_* or named kube-apiserver metrics", () => {
    for (const r of rules) {
      expect(balanced(r.expr), r.alert).toBe(true);
      const series = (r.expr as string).match(/\b[a-z_]+_(total|seconds|bytes|count|valid|bucket|info)\b/g) ?? [];
      for (const s of series) expect(s.startsWith("cache_io_") || EXTERNAL.has(s), `${r.alert}: ${s}`).toBe(true);
    }
  });

  it("the webhook name pattern matches every entry of the webhook configuration", async () => {
    const { ENTRIES } = await import("../../src/deploy/webhook-config.js");
    for (const e of ENTRIES) expect(e.name).toMatch(/^.*files\.cache\.io$/);
  });

  it("every alert has a runbook_url to its own section of docs/RUNBOOK.md, which says what it means, what to check and how to fix it", () => {
    const sections = new Map(RUNBOOK.split(/^## /m).slice(1).map((s) => [slug(s.slice(0, s.indexOf("\n"))), s]));
    for (const r of rules) {
      const url = r.annotations?.runbook_url as string;
      expect(url, r.alert).toBe(`https://github.com/cache-io/cache-io/blob/main/docs/RUNBOOK.md#${slug(r.alert)}`);
      const section = sections.get(slug(r.alert));
      expect(section, `docs/RUNBOOK.md has no "## ${r.alert}" section`).toBeDefined();
      for (const part of ["What it means", "What to check", "How to fix"]) expect(section, `${r.alert}: ${part}`).toContain(`**${part}.**`);
    }
    expect(sections.size, "a runbook section for an alert that does not exist").toBe(rules.length);
  });

  it("each alert has promtool cases, and its annotations only name labels the firing alert carries", () => {
    expect(Object.keys(ALERT_CASES).sort()).toEqual(rules.map((r) => r.alert as string).sort());
    for (const r of rules) {
      const used = [...JSON.stringify(r.annotations).matchAll(/\$labels\.(\w+)/g)].map((m) => m[1]!);
      for (const labels of ALERT_CASES[r.alert]!.fires.labels) for (const l of used) expect(Object.keys(labels), `${r.alert} annotations use $labels.${l}`).toContain(l);
    }
  });
});

describe("promtool", () => {
  itWith(promtool)("check rules accepts the rule file (expressions, templates, durations)", async () => {
    const { stdout } = await run(toolPath(promtool), ["check", "rules", ruleFile(true)]);
    expect(stdout).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  itWith(promtool).each(Object.keys(ALERT_CASES))("test rules: %s fires in its failure case and not in the healthy one", async (alert) => {
    const file = promtoolTest(alert, ALERT_CASES[alert]!);
    const result = await run(toolPath(promtool), ["test", "rules", file]).then(
      (r) => ({ ok: true, out: r.stdout + r.stderr }),
      (e: { stdout: string; stderr: string }) => ({ ok: false, out: e.stdout + e.stderr }),
    );
    expect(result.ok, result.out).toBe(true);
  });

  itWith(promtool)("test rules catches a broken case (the harness can fail)", async () => {
    const c = ALERT_CASES.CacheIoWebhookErrors!;
    const file = promtoolTest("CacheIoWebhookErrors", { ...c, quiet: { ...c.quiet, input: c.fires.input } });
    const failed = await run(toolPath(promtool), ["test", "rules", file]).then(() => "", (e: { stdout: string; stderr: string }) => e.stdout + e.stderr);
    expect(failed).toMatch(/FAILED[\s\S]*alertname: CacheIoWebhookErrors/);
  });
});

describe("Grafana dashboard", () => {
  const panels = (dashboard.panels as Obj[]).filter((p) => p.type !== "row");
  const exprs = panels.flatMap((p) => p.targets.map((t: Obj) => t.expr as string));

  it("has a uid, a Prometheus data source variable, and unique panel ids on the grid", () => {
    expect(dashboard.uid).toBe("cache-io");
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }));
    const ids = (dashboard.panels as Obj[]).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels as Obj[]) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
    }
  });

  it("has cluster and namespace variables (multi-select, all by default), and every query filters by both", () => {
    const vars = dashboard.templating.list as Obj[];
    for (const name of ["cluster", "namespace"]) {
      const v = vars.find((x) => x.name === name);
      expect(v, name).toMatchObject({ type: "query", includeAll: true, multi: true, allValue: ".*", datasource: { type: "prometheus", uid: "${datasource}" } });
      expect(v!.definition, name).toMatch(new RegExp(`label_values\\(cache_io_build_info.*, ${name}\\)`));
    }
    expect(vars.find((x) => x.name === "namespace")!.definition).toContain('cluster=~"$cluster"');
    for (const e of exprs) {
      for (const m of e.match(/\bcache_io_[a-z0-9_]+(\{[^}]*\})?/g) ?? []) expect(m, e).toMatch(/\{cluster=~"\$cluster", namespace=~"\$namespace"/);
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

  it("shows webhook outcomes and latency, cert expiry, policy validity, hit ratio, fill errors and durations, disk vs budget", () => {
    const all = exprs.join("\n");
    for (const m of ["cache_io_webhook_reviews_total", "cache_io_webhook_review_duration_seconds_bucket", "cache_io_webhook_cert_expiry_timestamp_seconds", "cache_io_policy_valid", "cache_io_cache_hits_total", "cache_io_cache_misses_total", "cache_io_cache_fill_errors_total", "cache_io_cache_fill_duration_seconds_bucket", "cache_io_cache_disk_budget_bytes", "cache_io_build_info"]) {
      expect(all).toContain(m);
    }
  });

  it("a 'bytes delivered to pods' panel counts what mount-mode pods read in place (ensured bytes), not only bytes streamed", () => {
    const p = panels.find((x) => /bytes delivered to pods/i.test(x.title));
    expect(p, "panel 'Bytes delivered to pods'").toBeDefined();
    const all = p!.targets.map((t: Obj) => t.expr).join("\n");
    expect(all).toContain("cache_io_cache_ensured_bytes_total");
    expect(all).toContain("cache_io_cache_origin_bytes_total");
  });
});
