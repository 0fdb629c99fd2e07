// Results of bench/peers-nics.ts: what one run records, the per-row medians against the
// one-node baseline, and the charts (docs/bench/peers-nics.svg; bench/peers.ts's too).
import { join } from "node:path";
import { renderSvg } from "./charts.js";
import { ROOT } from "./env.js";
import { median, MiB } from "./stats.js";

export const CHART = join(ROOT, "docs", "bench", "peers-nics.svg");

export interface NicsRow {
  label: string;
  nodes: number;
  tier: boolean;
  kill: boolean;
  /** cache.peers.fanout (64: a star, every node asks the owner). */
  fanout: number;
  /** cache.parts fields, as flow YAML (default: the policy's defaults). */
  parts?: string;
  /** Run only when BENCH_ROWS names it. */
  extra?: boolean;
}

export interface NicsRun {
  label: string;
  nodes: number;
  clients: number;
  /** Bytes the origin sent during the run, over the file size (counted at the origin). */
  originFiles: number;
  clientMs: number[];
  lastMs: number;
  perNodeLastMs: number[];
  failed: number;
  /** Failures other than the killed owner's own pods (the first few). */
  errors: string[];
  sources: { origin: number; peer: number };
  peerFailures: number;
  fills: { node: string; ms: number; from: string }[];
  /** CPU seconds the caches used over the run's wall seconds. */
  cacheCores: number;
  /** Busy CPU seconds of the whole machine (all processes, every engineer's) over the wall seconds; 2 = both cores busy. */
  machineCores: number;
  loadBefore: string;
  loadAfter: string;
  killed?: string;
  killAtMs?: number;
}

export interface NicsSummary {
  label: string;
  originFiles: number;
  lastMs: number;
  lastVsOneNode: number;
  cacheCores: number;
  machineCores: number;
  failed: number;
  unexpectedFailures: number;
}

export interface NicsResult {
  sizeBytes: number;
  nicBytesPerSecond: number;
  ratePerConnection: number;
  clientsPerNode: number;
  rounds: number;
  runs: NicsRun[];
  rows: NicsSummary[];
  clusterStartSeconds: number;
  loadBefore: string;
  loadAfter: string;
  /** Namespaces and links of the benchmark's names on the host before the run and after it. */
  footprintBefore: string[];
  footprintAfter: string[];
}

/** Medians per row, in `rows` order, the last pod against the baseline's (rows[0]). */
export function summarize(rows: NicsRow[], runs: NicsRun[]): NicsSummary[] {
  const base = median(runs.filter((r) => r.label === rows[0]!.label).map((r) => r.lastMs));
  return rows.filter((row) => runs.some((r) => r.label === row.label)).map((row) => {
    const rs = runs.filter((r) => r.label === row.label);
    const lastMs = median(rs.map((r) => r.lastMs));
    return {
      label: row.label, originFiles: median(rs.map((r) => r.originFiles)), lastMs, lastVsOneNode: lastMs / base,
      cacheCores: median(rs.map((r) => r.cacheCores)), machineCores: median(rs.map((r) => r.machineCores)),
      failed: rs.reduce((a, r) => a + r.failed, 0), unexpectedFailures: rs.reduce((a, r) => a + r.errors.length, 0),
    };
  });
}

/** Horizontal bars (linear axis) of the cluster tier's rows: the last pod's time, its origin bytes in the label. */
export async function tierChart(rows: { label: string; originFiles: number; lastMs: number }[], title: string, file: string, who = "pod"): Promise<void> {
  const kind = (label: string) => (label.includes("tier off") ? "tier off: every node from the origin" : label.includes("killed") ? "tier on, owner SIGKILLed mid-fill" : "tier on");
  const values = rows.map((x) => ({ label: `${x.label}: origin ${x.originFiles.toFixed(2)}x`, seconds: +(x.lastMs / 1000).toFixed(2), kind: kind(x.label) }));
  const y = { field: "label", type: "nominal", sort: null, title: null, axis: { labelLimit: 400 } } as const;
  await renderSvg({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 520,
    height: { step: 26 },
    data: { values },
    layer: [
      { mark: "bar", encoding: { y, x: { field: "seconds", type: "quantitative", title: `seconds until the last ${who} has the file` }, color: { field: "kind", type: "nominal", title: null, legend: { orient: "bottom", labelLimit: 400 } } } },
      { mark: { type: "text", align: "left", dx: 4 }, encoding: { y, x: { field: "seconds", type: "quantitative" }, text: { field: "seconds", type: "quantitative", format: ".3~r" } } },
    ],
  }, file);
}

export function chart(r: NicsResult): Promise<void> {
  const title = `Per-node NICs (${r.nicBytesPerSecond / 1e6} MB/s each way), ${r.clientsPerNode} pods per node, ${r.sizeBytes / MiB} MiB: the last pod has the file (median of ${r.rounds})`;
  return tierChart(r.rows, title, CHART);
}

const s = (ms: number) => (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);

/** The rows as the markdown table of docs/bench-peers.md (medians, every run in brackets). */
export function table(r: NicsResult): string {
  const head = "| row | pods | origin bytes (runs) | last pod has the file (runs) | vs one node | caches used | machine busy | pods failed (all runs) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
  const lines = r.rows.map((x) => {
    const rs = r.runs.filter((run) => run.label === x.label);
    const goal = x.label.includes("node (") || x.label.includes("tier off") ? "" : "**";
    return `| ${x.label} | ${rs[0]!.clients} | ${goal}${x.originFiles.toFixed(2)}x${goal} (${rs.map((run) => run.originFiles.toFixed(2)).join(", ")}) | ${s(x.lastMs)} s (${rs.map((run) => s(run.lastMs)).join(", ")}) | ${x.lastVsOneNode.toFixed(2)}x | ${x.cacheCores.toFixed(2)} cores | ${x.machineCores.toFixed(2)} cores | ${x.failed}${x.unexpectedFailures ? ` (${x.unexpectedFailures} unexpected)` : ""} |`;
  });
  return [head, ...lines].join("\n");
}
