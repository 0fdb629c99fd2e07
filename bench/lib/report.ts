// docs/BENCHMARKS.md and docs/bench/*.svg from the raw results in bench/results/:
// the machine, the method, one section per benchmark, the charts, and the goals.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ManyNodesResult } from "../many-nodes.js";
import type { ManyPodsResult } from "../many-pods.js";
import type { ServingResult } from "../serving.js";
import type { TimeToDataResult } from "../time-to-data.js";
import type { WebhookResult } from "../webhook.js";
import { originBytesSpec, renderSvg, timeToDataSpec } from "./charts.js";
import { load, ROOT, type Machine, type Saved } from "./env.js";
import { fillsGoals, fillsSection } from "./fills-section.js";
import { peersGoals } from "./peers-goals.js";
import { manyNodesSection, manyPodsSection, METHOD_LABELS, servingSection, timeToDataSection, webhookSection } from "./sections.js";
import { fmtBytes, fmtMs, fmtRatio, table } from "./stats.js";

const DOCS = join(ROOT, "docs");
const FINDINGS = join(ROOT, "bench", "findings.md");
/** Written by bench/peers.ts (it starts its own control plane, so bench/all.ts does not run it). */
const PEERS = join(ROOT, "docs", "bench-peers.md");

interface All {
  ttd?: Saved<TimeToDataResult>;
  pods?: Saved<ManyPodsResult>;
  nodes?: Saved<ManyNodesResult>;
  serving?: Saved<ServingResult>;
  webhook?: Saved<WebhookResult>;
}

function machineSection(m: Machine | undefined): string {
  if (!m) return "## Machine\n\nNo results yet: run `npx tsx bench/all.ts`.\n";
  return [
    "## Machine\n",
    table(["", ""], [
      ["CPUs (nproc)", `${m.nproc} x ${m.cpu}`],
      ["memory", `${m.memoryGiB} GiB`],
      ["kernel", m.kernel],
      ["Node.js", m.node],
      ["curl", m.curl],
      ["nginx", m.nginx ?? "Debian's nginx-light"],
    ]),
    "",
    "The machine is shared: other work runs on the same 2 cores while the benchmarks do. That is why every figure that matters is a ratio " +
      "against a baseline measured in the same run, the runs of the two sides alternate, and medians of repeated runs are reported.\n",
  ].join("\n");
}

const METHOD = `## Method

- Every server is a real process on loopback: \`node dist/cli/main.js cache\` and \`... webhook\` (built by \`npm run build\` at the start),
  Debian's nginx run as our own master process with a config in a temp dir (\`bench/lib/nginx.ts\`), and the origin
  (\`test/support/origin.ts\`, the same one the tests use) in a child process of its own (\`bench/lib/origin-child.ts\`), so its
  per-connection pacing timers share an event loop with neither the cache nor the load generator.
- A "pod" is the init container \`decide()\` writes for a pod annotated with the file, run with real \`curl\` (no shell).
- Every child process is killed and every temp file deleted when a benchmark ends, also on error or Ctrl-C.
- Raw results (every run) are in \`bench/results/*.json\` (git-ignored); this page and its charts are regenerated from them by each script.
- Profiling: \`BENCH_CPU_PROF=/tmp/prof npx tsx bench/<name>.ts\` starts every cache-io process with \`node --cpu-prof\`.
`;

async function charts(all: All): Promise<void> {
  mkdirSync(join(DOCS, "bench"), { recursive: true });
  if (all.ttd) {
    const r = all.ttd.result;
    const bars = r.methods.map((m) => ({
      label: METHOD_LABELS[m.method].replaceAll("`", ""),
      seconds: m.medianMs / 1000,
      kind: m.method === "origin" || m.method === "nginx" ? "baseline" : "cache-io",
    }));
    await renderSvg(timeToDataSpec(bars, `Time until a ${fmtBytes(r.sizeBytes)} file is usable (origin ${r.rate / 1e6} MB/s)`), join(DOCS, "bench", "time-to-data.svg"));
  }
  if (all.pods) {
    const r = all.pods.result;
    const points = r.counts.flatMap((c) => [
      { pods: c.pods, files: c.originFiles, series: "cache-io (measured)" },
      { pods: c.pods, files: c.baselineFiles, series: "every pod fetching from the origin" },
    ]);
    await renderSvg(originBytesSpec(points, `Origin bytes for one ${fmtBytes(r.sizeBytes)} file, one cold node`), join(DOCS, "bench", "origin-bytes.svg"));
  }
}

type Status = "met" | "not met" | "not measured";

function goals(all: All): string {
  const rows: [string, Status, string][] = [];
  const ttd = all.ttd?.result;
  const mount = ttd?.methods.filter((m) => m.method.startsWith("mount-warm")) ?? [];
  rows.push([
    "Warm node, `mount` mode: file usable in under 100 ms regardless of size",
    mount.length ? (mount.every((m) => m.medianMs < 100) ? "met" : "not met") : "not measured",
    mount.map((m) => `${fmtMs(m.medianMs)} (${m.method === "mount-warm" ? fmtBytes(ttd!.sizeBytes) : fmtBytes(ttd!.smallBytes)})`).join(", ") +
      (ttd ? `; curl start + one round trip alone: ${fmtMs(ttd.curlFloorMs)}` : ""),
  ]);
  const hundred = all.pods?.result.counts.find((c) => c.pods === 100);
  rows.push([
    "Cold node, 100 concurrent pods: origin bytes 1.0x the file, last pod within 10% of one origin transfer",
    hundred ? (hundred.originFiles <= 1.0001 && hundred.lastVsDirect <= 1.1 ? "met" : "not met") : "not measured",
    hundred
      ? `origin ${hundred.originFiles.toFixed(2)}x; last pod ${fmtRatio(hundred.lastVsDirect)} one transfer ` +
        `(the cache's own fill: ${fmtRatio(hundred.fillMs / all.pods!.result.directMedianMs)}; starting 100 curls alone: ${fmtMs(hundred.floorMs)})`
      : "",
  ]);
  const points = all.serving?.result.points ?? [];
  rows.push([
    "Serving: at least 0.8x nginx throughput",
    points.length ? (points.every((p) => p.ratio >= 0.8) ? "met" : "not met") : "not measured",
    points.map((p) => `${p.clients} client(s): ${fmtRatio(p.ratio)}`).join(", "),
  ]);
  const w = all.webhook?.result;
  rows.push([
    "Webhook: at least 0.8x the bare HTTPS baseline's reviews/s",
    w ? (w.peak.ratio >= 0.8 ? "met" : "not met") : "not measured",
    w ? fmtRatio(w.peak.ratio) : "",
  ]);
  rows.push([
    "Webhook: p99 under 5 ms at half of the measured peak rate",
    w ? (w.half.webhook.p99 < 5 ? "met" : "not met") : "not measured",
    w ? `p99 ${w.half.webhook.p99} ms at ${w.half.rate} reviews/s (bare server at the same rate: ${w.half.bare.p99} ms)` : "",
  ]);
  rows.push(...fillsGoals(), ...peersGoals());
  return ["## Goals\n", table(["goal", "status", "measured"], rows.map(([g, s, m]) => [g, s === "met" ? "**met**" : s, m])), ""].join("\n");
}

export async function writeReport(): Promise<string> {
  const all: All = {
    ttd: load("time-to-data"),
    pods: load("many-pods"),
    nodes: load("many-nodes"),
    serving: load("serving"),
    webhook: load("webhook"),
  };
  await charts(all);
  const missing = (name: string, cmd: string) => `## ${name}\n\nNot run yet: \`${cmd}\`.\n`;
  const machine = [all.ttd, all.pods, all.nodes, all.serving, all.webhook].find((x) => x)?.machine;
  const doc = [
    "# Benchmarks\n",
    "How fast cache-io is, side by side with what users would use instead, on one machine over loopback. " +
      "Generated by `npx tsx bench/all.ts` (about 10 minutes: every benchmark below, then this page and its charts); " +
      "each benchmark also runs alone with the command in its section. Benchmarks print and write numbers; they never fail a build.\n",
    machineSection(machine),
    METHOD,
    goals(all),
    all.ttd ? timeToDataSection(all.ttd) : missing("1. Time to data", "npx tsx bench/time-to-data.ts"),
    all.pods ? manyPodsSection(all.pods) : missing("2. Many pods, one cold node", "npx tsx bench/many-pods.ts"),
    all.nodes ? manyNodesSection(all.nodes) : missing("3. Many nodes", "npx tsx bench/many-nodes.ts"),
    all.serving ? servingSection(all.serving) : missing("4. Serving a cached file", "npx tsx bench/serving.ts"),
    all.webhook ? webhookSection(all.webhook) : missing("5. The webhook", "npx tsx bench/webhook.ts"),
    fillsSection(),
    existsSync(PEERS) ? readFileSync(PEERS, "utf8").replace(/^## N\./m, "## 8.") : "",
    existsSync(FINDINGS) ? readFileSync(FINDINGS, "utf8") : "",
  ].join("\n");
  const file = join(DOCS, "BENCHMARKS.md");
  writeFileSync(file, doc.replace(/\n{3,}/g, "\n\n").trimEnd() + "\n");
  return file;
}
