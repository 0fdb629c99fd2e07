// The fills part of docs/BENCHMARKS.md, from bench/results/cold-fill.json and
// copy-mode.json: a section with the tables, and the rows of the goals table.
import { load, ROOT, type Saved } from "./env.js";
import { fmtBytes, fmtRatio, table } from "./stats.js";

interface Row {
  seconds: number;
  mbps: number;
  cpuSecondsPerGiB: number;
  mainThreadCpuSecondsPerGiB?: number;
  runs?: number[];
}
type Scenario = Record<"cache-io" | "curl" | "aria2c", Row> & { cacheVsCurl: number; cacheVsAria2: number };
interface ColdFill {
  sizeBytes: number;
  rounds: number;
  ratePerConnection: number;
  throttled: Scenario | null;
  unthrottled: Scenario;
  unthrottledOrigin?: string;
  loadBefore: string;
  loadAfter: string;
}
interface CopyVariant {
  podSeconds: number;
  fillSeconds: number;
  podVsFill: number;
}
interface CopyMode {
  sizeBytes: number;
  rounds: number;
  ratePerConnection: number;
  variants: Record<string, CopyVariant>;
  loadBefore: string;
  loadAfter: string;
}

type Status = "met" | "not met" | "not measured";

/** The command as typed in the repository (the saved one has the script's absolute path). */
const command = (s: Saved<unknown>) => `npx tsx ${s.command.replace(ROOT, "")}`;

const runs = (r: Row) => (r.runs ? ` (${r.runs.map((x) => x.toFixed(2)).join(", ")})` : "");
const cell = (r: Row) => `${r.seconds.toFixed(2)} s, ${r.mbps} MB/s${runs(r)}`;
const cpu = (r: Row) => `${r.cpuSecondsPerGiB.toFixed(2)}${r.mainThreadCpuSecondsPerGiB !== undefined ? ` (main thread ${r.mainThreadCpuSecondsPerGiB.toFixed(2)})` : ""}`;

function coldFill(s: Saved<ColdFill>): string {
  const r = s.result;
  const rows: string[][] = [];
  const add = (label: string, x: Scenario | null) => {
    if (x) rows.push([label, cell(x["cache-io"]), cell(x.curl), cell(x.aria2c), fmtRatio(x.cacheVsCurl), fmtRatio(x.cacheVsAria2), `${cpu(x["cache-io"])} / ${cpu(x.curl)} / ${cpu(x.aria2c)}`]);
  };
  add(`project origin, ${r.ratePerConnection / 1e6} MB/s per connection`, r.throttled);
  add(`unthrottled (${r.unthrottledOrigin ?? "node"} origin)`, r.unthrottled);
  return [
    "## 6. Cold fill of one large file\n",
    `Command: \`${command(s)}\` (this run finished ${s.finishedAt}; load average ${r.loadBefore.split(" ").slice(0, 3).join(" ")} before, ${r.loadAfter.split(" ").slice(0, 3).join(" ")} after).\n`,
    `A ${fmtBytes(r.sizeBytes)} file, ${r.rounds} rounds, the three methods alternating within each round; medians, each run in brackets. ` +
      "cache-io: a new cache process on an empty root per run, timed by a `curl` of `/v1/ensure?sha256=...` (so the sha256 is verified and the file synced and published; parallel ranged parts, policy defaults). " +
      "curl: one stream to a file (no verification, no fsync). aria2c: `-x16 -s16 -k8M --checksum=sha-256=...`. " +
      "CPU: the cache process (all threads; its main thread in brackets) from /proc, curl and aria2c from `/usr/bin/time`. " +
      "The unthrottled origin is nginx (sendfile): the project's Node origin needs about a core per GB/s of its own, which on this 2-core machine it takes from the client under test.\n",
    table(["origin", "cache-io", "one curl stream", "aria2c -x16 -s16", "cache-io vs curl", "vs aria2c", "CPU s per GiB: cache-io / curl / aria2c"], rows),
    "",
  ].join("\n");
}

function copyMode(s: Saved<CopyMode>): string {
  const r = s.result;
  const label: Record<string, string> = {
    copy: "copy mode, the init container as injected (ensure and object side by side, curl --parallel)",
    "copy, ensure then object": "copy mode, ensure and only then the object (as injected before)",
    "copy, object first": "copy mode, the object URL before the ensure URL",
    mount: "mount mode (ensure only), for the floor",
  };
  const rows = Object.entries(r.variants).map(([k, v]) => [label[k] ?? k, `${v.podSeconds.toFixed(2)} s`, `${v.fillSeconds.toFixed(2)} s`, fmtRatio(v.podVsFill)]);
  return [
    "## 7. Copy mode, cold node\n",
    `Command: \`${command(s)}\` (this run finished ${s.finishedAt}; load average ${r.loadBefore.split(" ").slice(0, 3).join(" ")} before).\n`,
    `A ${fmtBytes(r.sizeBytes)} file behind the project's origin at ${r.ratePerConnection / 1e6} MB/s per connection (ranges on). Each run: a new cache, then a pod's init container ` +
      "(the exact curl arguments `decide()` writes, real curl, its emptyDir a temp dir) from start to exit, against the cache's own fill of the file " +
      `(its \"fill done\" log line: first request to a verified, synced, published file). ${r.rounds} rounds, variants alternating; medians (pod / fill: the median of each run's ratio). ` +
      "A download of a filling file starts streaming after 1 s (STREAM_AFTER_MS) and holds its last byte until the file is verified.\n",
    table(["pod", "pod's init container", "the cache's fill", "pod / fill"], rows),
    "",
  ].join("\n");
}

/** The fills sections (6, 7) of the page; empty when neither benchmark has run (their findings are in bench/findings.md). */
export function fillsSection(): string {
  const cf = load<ColdFill>("cold-fill");
  const cm = load<CopyMode>("copy-mode");
  if (!cf && !cm) return "";
  return [cf ? coldFill(cf) : "", cm ? copyMode(cm) : "", "Where a fill's CPU goes, what was tried and what is left: the findings at the end of this page (\"Cold fill: where a fill's CPU goes\").\n"].join("\n");
}

/** Rows of the goals table for issue 12's fill goals. */
export function fillsGoals(): [string, Status, string][] {
  const cf = load<ColdFill>("cold-fill")?.result;
  const cm = load<CopyMode>("copy-mode")?.result;
  const t = cf?.throttled;
  const u = cf?.unthrottled;
  const copy = cm?.variants.copy;
  return [
    [
      "Cold fill, origin limited per connection: at least 6x one curl stream and no slower than aria2c -x16 -s16",
      t ? (t.cacheVsCurl >= 6 && t.cacheVsAria2 >= 1 ? "met" : "not met") : "not measured",
      t ? `${fmtRatio(t.cacheVsCurl)} curl, ${fmtRatio(t.cacheVsAria2)} aria2c (${fmtBytes(cf!.sizeBytes)})` : "",
    ],
    [
      "Cold fill, unthrottled loopback origin: at least 0.9x one curl stream",
      u ? (u.cacheVsCurl >= 0.9 ? "met" : "not met") : "not measured",
      u ? `${fmtRatio(u.cacheVsCurl)}; CPU s per GiB ${u["cache-io"].cpuSecondsPerGiB} / curl ${u.curl.cpuSecondsPerGiB} / aria2c ${u.aria2c.cpuSecondsPerGiB}` : "",
    ],
    [
      "Copy mode, cold: the pod's copy within 1.1x of the fill",
      copy ? (copy.podVsFill <= 1.1 ? "met" : "not met") : "not measured",
      copy ? `${fmtRatio(copy.podVsFill)} as injected; ensure, then the object: ${fmtRatio(cm!.variants["copy, ensure then object"]?.podVsFill ?? cm!.variants["copy, object first"]?.podVsFill ?? NaN)}` : "",
    ],
  ];
}
