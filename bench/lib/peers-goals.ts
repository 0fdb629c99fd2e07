// The cluster tier's rows of the goals table in docs/BENCHMARKS.md, from the per-node NIC
// runs of bench/peers-nics.ts: peers-nics.json (every row), and when they were run, the
// rows with parts scaled to the file (peers-nics-scaled.json) and with 10 ms link queues
// (peers-nics-queue10.json), and the default fanout's row (peers-nics-fanout3.json). The
// best of them per node count is what the goal reads.
import { load } from "./env.js";
import type { NicsResult, NicsSummary } from "./nics-report.js";
import { fmtRatio } from "./stats.js";

type Status = "met" | "not met" | "not measured";

const RUNS = [
  { name: "peers-nics", what: "" },
  { name: "peers-nics-scaled", what: "parts scaled to the file" },
  { name: "peers-nics-queue10", what: "parts scaled, 10 ms link queues" },
];

function rows(): { row: NicsSummary; what: string }[] {
  return RUNS.flatMap(({ name, what }) => (load<NicsResult>(name)?.result.rows ?? []).map((row) => ({ row, what })));
}

const nodesOf = (label: string) => Number(/^(\d+) nodes?/.exec(label)?.[1] ?? 0);

/** The default fanout's row (peers-nics-fanout3.json), when it was run. */
function defaultFanout(): string {
  const row = load<NicsResult>("peers-nics-fanout3")?.result.rows.find((r) => /fanout 3/.test(r.label));
  return row ? `; the default fanout 3: ${fmtRatio(row.lastVsOneNode)} for ${nodesOf(row.label)} nodes (a node's children share its uplink: docs/PEERS.md)` : "";
}

export function peersGoals(): [string, Status, string][] {
  const all = rows();
  if (all.length === 0) return [];
  const tier = all.filter(({ row }) => nodesOf(row.label) > 1 && !/tier off|killed/.test(row.label));
  const killed = all.filter(({ row }) => /killed/.test(row.label));
  const best = [4, 8].map((n) => tier.filter(({ row }) => nodesOf(row.label) === n).sort((a, b) => a.row.lastVsOneNode - b.row.lastVsOneNode)[0]);
  const bytesMet = tier.every(({ row }) => Math.abs(row.originFiles - 1) < 0.005);
  const timeMet = best.every((b) => b && b.row.lastVsOneNode <= 1.3);
  const worstKilled = Math.max(...killed.map(({ row }) => row.originFiles));
  return [
    [
      "4 and 8 nodes, cold, 10 pods each (per-node NICs): origin bytes 1.0x the file per cluster",
      tier.length ? (bytesMet ? "met" : "not met") : "not measured",
      `${fmtRatio(Math.min(...tier.map(({ row }) => row.originFiles)))} to ${fmtRatio(Math.max(...tier.map(({ row }) => row.originFiles)))} in ${tier.length} rows (star, tree, chain)`,
    ],
    [
      "The last pod on the last node within 1.3x of one node's cold time (per-node NICs; with `cache.peers.fanout: 1`)",
      best.every(Boolean) ? (timeMet ? "met" : "not met") : "not measured",
      best.map((b) => (b ? `${b.row.label}${b.what ? ` (${b.what})` : ""}: ${fmtRatio(b.row.lastVsOneNode)}` : "")).join("; ") + defaultFanout(),
    ],
    [
      "Owner killed mid-fill: origin bytes under 2x, every pod still gets verified bytes",
      killed.length ? (worstKilled < 2 && killed.every(({ row }) => row.unexpectedFailures === 0) ? "met" : "not met") : "not measured",
      killed.length ? `origin ${fmtRatio(worstKilled)} at most; no pod failed besides the killed owner's own` : "",
    ],
  ];
}
