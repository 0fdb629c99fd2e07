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

/** Kept by hand: what the profiles of the fills say (issue 12). */
const FINDINGS = `### Where a fill's CPU goes, and what is left

- CPU of one unthrottled 1 GiB fill per thread (\`/proc/<pid>/task/*/stat\`, 8 parts): main thread 1.0–1.2 s, the sha256
  worker 0.6 s, libuv's threads (the writes) 0.3 s, V8's helper threads (concurrent GC) 0.1–0.9 s. One curl stream uses
  0.7–1.1 s in all, so on 2 cores the fill cannot reach curl's wall time while its main thread alone costs about as much.
- Done: hashing left the main thread (\`src/cache/fills/hash.ts\`: worker threads read the temp file back from the page
  cache up to the written prefix; +0.1 s of reads per GiB, about -0.55 s on the main thread; parts that land out of order
  no longer cost a catch-up on the main thread). Test: \`test/cache/fill-hash.test.ts\` (event loop utilization under 0.3
  while 256 MiB are hashed; inline hashing measured 0.99).
- Tried and dropped (interleaved A/B runs, CPU per thread): copying the chunks into pooled 1 MiB write buffers (the
  single 1 MiB \`write\`s cost libuv 1.05 s per GiB against 0.25 s for \`writev\` of the 64 KiB chunks); copying into
  pooled 64 KiB slabs (no change: the garbage is node:http's own); batches of 2–4 MiB (more system time than 0.25–1 MiB).
- What is left on the main thread is node:http: every 64 KiB socket read is a new ArrayBuffer, and its HTTP parser copies
  each body chunk once more into another one (every body chunk has its own exact-size ArrayBuffer, also the first one
  after the headers), so a 1 GiB fill churns 2 GiB of short-lived buffers; \`--trace-gc\` shows about 60 mark-compacts per
  GiB "requested" by external memory. The fix is in the origin client (\`src/cache/origin.ts\`): read the body of a
  Content-Length response straight from the socket into a reused buffer (\`net.connect({onread})\`) after a small
  response-head parser. A raw-socket micro here used 0.11–0.15 s of user CPU per GiB against 0.23–0.30 s for node:http.
- Parts on a fast link cost CPU: the same fill with \`concurrency: 2\` used 2.05 CPU s per GiB (GC helpers 0.1 s), with 8
  2.7–3.0 s. Opening parts progressively (start with 2, add one while the connections are slower than, say,
  100 MB/s each) would keep 8 for throttled origins and few for fast ones (\`src/cache/fills/ranged.ts\`).
- Spread on this shared machine (build of these changes, 1 GiB, medians of 3, the same day): throttled cache-io / curl /
  aria2c 3.19 / 17.93 / 3.63 s (5.6x, 1.14x; load 6-9), 8.29 / 17.92 / 10.89 s (2.2x, 1.3x; load 12-16: the 8 parts
  do not get their 60 MB/s each without CPU), 2.58 / 17.91 / 4.04 s (6.9x, 1.57x; load 5-7); unthrottled 0.50x, 0.56x,
  0.67x curl, and 0.58x with \`concurrency: 2\` (2.25 CPU s per GiB). Before these changes (build 37b2968, quieter
  machine): 7.0x and 1.45x throttled, 0.47x unthrottled from the Node origin.
- The unthrottled origin is nginx: the project's Node origin uses 1.1 CPU s per GiB it serves, taken from the client.
- Copy mode: the injected init container ran \`/v1/ensure\` and only then \`/v1/objects\`, so its copy started when the
  fill had ended. Now curl runs them side by side (\`--parallel\`, \`src/webhook/init-container.ts\`): the copy streams
  while the file fills and the ensure beside it shows progress and fails loudly.
`;

/** The fills sections (6, 7) of the page and their findings; empty when neither benchmark has run. */
export function fillsSection(): string {
  const cf = load<ColdFill>("cold-fill");
  const cm = load<CopyMode>("copy-mode");
  if (!cf && !cm) return "";
  return [cf ? coldFill(cf) : "", cm ? copyMode(cm) : "", FINDINGS].join("\n");
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
