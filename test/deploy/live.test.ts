// The manifests against the real processes: every webhook path in the rendered config
// is served (and /mutate/copy really means copy mode), the probe paths answer, and
// every cache_io_* metric the alerts and dashboard use is one the code exports, and a
// full scrape of each component passes `promtool check metrics`.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1MutatingWebhook } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { find, kustomize, parseYamlDocs, podSpecOf, type Obj } from "./k8s.js";
import { findTool, itWith, toolPath } from "./tools.js";

const promtool = findTool("promtool", "Install it with `apt-get install -y prometheus` (Debian's package ships promtool).");

/** `promtool check metrics` reads a scrape on stdin; exit 0 and no output means no lint problem. */
function checkMetrics(scrape: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(toolPath(promtool), ["check", "metrics"], (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? -1) : 0;
      if (typeof code !== "number") reject(err);
      else resolve({ code, out: stdout + stderr });
    });
    child.stdin!.end(scrape);
  });
}

const children: ChildProcess[] = [];

/** Spawn the CLI and resolve with the first stdout match of `port`. */
function start(args: string[], port: RegExp, env: NodeJS.ProcessEnv = {}): Promise<number> {
  const child = spawn(process.execPath, ["dist/cli/main.js", ...args], { env: { PATH: process.env.PATH, HOME: tmpdir(), ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = port.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => reject(new Error(`cache-io ${args[0]} exited ${code} before listening:\n${out}`)));
  });
}

let certs: string;
let webhookPort: number;
let cachePort: number;
let objs: Obj[];
beforeAll(async () => {
  certs = mkdtempSync(join(tmpdir(), "live-certs-"));
  const policy = join(certs, "policy.yaml");
  writeFileSync(policy, 'identity: {mode: "off"}  # no API server here to verify tokens\n');
  [objs, webhookPort, cachePort] = await Promise.all([
    kustomize("deploy/default"),
    start(["webhook", "--host", "127.0.0.1", "--port", "0", "--certs", certs], /listening on https:\/\/127\.0\.0\.1:(\d+)/),
    start(["cache", "--host", "127.0.0.1", "--port", "0", "--policy", policy, "--root", mkdtempSync(join(tmpdir(), "live-root-"))], /"port":(\d+)/, { LOG_LEVEL: "info" }),
  ]);
});
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
});

function https(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: webhookPort, path, method, ca: readFileSync(join(certs, "ca.crt")), servername: "localhost", headers: { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function http(path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${cachePort}${path}`);
  return { status: res.status, text: await res.text() };
}

function review(annotations?: Record<string, string>) {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "u-1", kind: { group: "", version: "v1", kind: "Pod" }, resource: { group: "", version: "v1", resource: "pods" },
      operation: "CREATE", namespace: "team-a",
      object: { apiVersion: "v1", kind: "Pod", metadata: { name: "p", namespace: "team-a", ...(annotations ? { annotations } : {}) }, spec: { containers: [{ name: "app", image: "busybox" }] } },
    },
  };
}

describe("the webhook serves what the configuration calls", () => {
  const paths = () => [...new Set((find(objs, "MutatingWebhookConfiguration", "cache-io").webhooks as V1MutatingWebhook[]).map((w) => w.clientConfig.service!.path!))];

  it("every path answers an AdmissionReview for its uid", async () => {
    expect(paths().sort()).toEqual(["/mutate", "/mutate/copy"]);
    for (const path of paths()) {
      const res = await https("POST", path, review());
      expect(res.status, path).toBe(200);
      expect(JSON.parse(res.text).response).toMatchObject({ uid: "u-1", allowed: true });
    }
    expect((await https("POST", "/mutate/other", review())).status).toBe(404);
  });

  it("/mutate may use hostPath; /mutate/copy never does", async () => {
    const patchOf = async (path: string) => {
      const body = JSON.parse((await https("POST", path, review({ "cache.io/files": "https://models.example.com/m.bin" }))).text);
      expect(body.response.patch, path).toBeDefined();
      return Buffer.from(body.response.patch, "base64").toString();
    };
    expect(await patchOf("/mutate")).toContain("hostPath");
    expect(await patchOf("/mutate/copy")).not.toContain("hostPath");
  });

  it("the probe paths of both DaemonSet and Deployment answer 200", async () => {
    const probes = (kind: string, name: string) => podSpecOf(find(objs, kind, name))!.containers.flatMap((c) => [c.readinessProbe, c.livenessProbe, c.startupProbe]).filter((p) => p?.httpGet).map((p) => p!.httpGet!.path!);
    for (const p of probes("Deployment", "cache-io-webhook")) expect((await https("GET", p)).status, p).toBe(200);
    for (const p of probes("DaemonSet", "cache-io-cache")) expect((await http(p)).status, p).toBe(200);
  });
});

describe("monitoring uses only metrics the code exports", () => {
  /** Series names a scrape can contain: each TYPE line, plus a histogram's _bucket/_sum/_count. */
  function exported(text: string): Set<string> {
    const names = new Set<string>();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      names.add(name!);
      if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name! + s);
    }
    return names;
  }

  it("every cache_io_* name in the alerts and the dashboard is in a /metrics scrape of the webhook or the cache", async () => {
    const scraped = new Set([...exported((await https("GET", "/metrics")).text), ...exported((await http("/metrics")).text)]);
    const rules = parseYamlDocs(readFileSync("deploy/monitoring/prometheus-rules.yaml", "utf8"))[0]!;
    const exprs = [
      ...rules.spec.groups.flatMap((g: Obj) => g.rules.map((r: Obj) => r.expr as string)),
      ...JSON.parse(readFileSync("deploy/monitoring/cache-io-dashboard.json", "utf8")).panels.flatMap((p: Obj) => (p.targets ?? []).map((t: Obj) => t.expr as string)),
    ];
    const used = new Set(exprs.flatMap((e) => e.match(/\bcache_io_[a-z0-9_]+/g) ?? []));
    expect(used.size).toBeGreaterThanOrEqual(15);
    expect([...used].filter((m) => !scraped.has(m))).toEqual([]);
  });
});

describe("a full scrape of each component passes promtool check metrics", () => {
  itWith(promtool)("webhook", async () => {
    const scrape = (await https("GET", "/metrics")).text;
    expect(scrape).toContain("cache_io_build_info{");
    expect(await checkMetrics(scrape)).toEqual({ code: 0, out: "" });
  });

  itWith(promtool)("node cache", async () => {
    const scrape = (await http("/metrics")).text;
    expect(scrape).toContain("cache_io_build_info{");
    expect(await checkMetrics(scrape)).toEqual({ code: 0, out: "" });
  });

  itWith(promtool)("the check itself fails on a gauge named like a counter", async () => {
    const r = await checkMetrics("# HELP x_total a gauge\n# TYPE x_total gauge\nx_total 1\n");
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("x_total");
  });
});
