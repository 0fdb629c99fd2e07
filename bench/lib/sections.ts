// One Markdown section per benchmark, from its saved results: what was run, with
// which command, and the tables of medians and ratios.
import type { ManyNodesResult } from "../many-nodes.js";
import type { ManyPodsResult } from "../many-pods.js";
import type { ServingResult } from "../serving.js";
import type { Method, TimeToDataResult } from "../time-to-data.js";
import type { WebhookResult } from "../webhook.js";
import type { Saved } from "./env.js";
import { fmtBytes, fmtMs, fmtNum, fmtRatio, median, table } from "./stats.js";

export const METHOD_LABELS: Record<Method, string> = {
  origin: "(a) straight from the origin",
  nginx: "(b) copy from nginx that has the file",
  "copy-warm": "(c) cache-io `copy` mode, warm node",
  "mount-warm": "(d) cache-io `mount` mode, warm node",
  "mount-warm-small": "(d) the same with an 8 MiB file",
  "mount-cold": "(e) cache-io `mount` mode, cold node",
  "copy-cold": "(e) cache-io `copy` mode, cold node",
};

/** Methods whose time is proportional to the file size (the others are a round trip). */
const SIZE_BOUND = new Set<Method>(["origin", "nginx", "copy-warm", "mount-cold", "copy-cold"]);
export const SEED_BYTES = 3e9;

const header = (title: string, command: string, finishedAt: string) =>
  `## ${title}\n\nCommand: \`${command}\` (this run finished ${finishedAt}).\n`;

export function timeToDataSection(s: Saved<TimeToDataResult>): string {
  const r = s.result;
  const scale = SEED_BYTES / r.sizeBytes;
  const rows = r.methods.map((m) => [
    METHOD_LABELS[m.method],
    fmtMs(m.medianMs),
    m.ms.map(fmtMs).join(", "),
    fmtRatio(m.vsOrigin),
    SIZE_BOUND.has(m.method) ? fmtMs(m.medianMs * scale) : "same (size-independent)",
  ]);
  const seed = table(
    ["3 GB file into a pod (the seed's measurement)", "time"],
    [["Azure Files share", "51–60 s"], ["standard Blob storage", "57–69 s"], ["premium Blob storage", "20–27 s"], ["nginx DaemonSet on the node, file downloaded beforehand", "8–20 s"]],
  );
  return [
    header("1. Time to data (the seed's experiment)", s.command, s.finishedAt),
    `A ${fmtBytes(r.sizeBytes)} file behind an origin throttled to ${r.rate / 1e6} MB/s per connection (the Azure Files share limit the seed quotes). ` +
      `Each time runs from starting the pod's download until the file is complete at the path the app reads. ` +
      `${s.result.methods[0]?.ms.length ?? 0} runs per method; the medians and each run are shown. ` +
      `(a) and (b) are \`curl -o FILE URL\`; (c)–(e) run the exact curl arguments \`decide()\` writes into the pod's init container, ` +
      "with `$(NODE_IP)` replaced by 127.0.0.1 as the kubelet would; in copy mode the init container's `/cache-io/` emptyDir is a temp directory. " +
      `A cold node is a new cache process on an empty root. Every method reads a file that is in the page cache. ` +
      `Starting curl and one loopback round trip alone (curl of \`/healthz\`) takes ${fmtMs(r.curlFloorMs)} here, which bounds (d) from below.\n`,
    table(["method", "median", "runs", "vs (a)", `scaled to 3 GB (x${scale.toFixed(2)})`], rows),
    "",
    "The seed's numbers, for the shape:\n",
    seed,
    "",
    "![time to data per method](bench/time-to-data.svg)\n",
  ].join("\n");
}

export function manyPodsSection(s: Saved<ManyPodsResult>): string {
  const r = s.result;
  const rows = r.counts.map((c) => [
    String(c.pods),
    `${c.originFiles.toFixed(2)}x (${fmtBytes(c.originFiles * r.sizeBytes)})`,
    `${c.baselineFiles}x`,
    fmtMs(c.lastMs),
    fmtRatio(c.lastVsDirect),
    fmtMs(c.fillMs),
    fmtMs(c.floorMs),
    fmtBytes(c.cacheHwmBytes),
    String(c.runs.reduce((n, x) => n + x.retries, 0)),
  ]);
  return [
    header("2. Many pods, one cold node", s.command, s.finishedAt),
    `A ${fmtBytes(r.sizeBytes)} file, origin at ${r.rate / 1e6} MB/s. N pods start their init containers (mount mode) at the same moment against one ` +
      `new cache process. Origin bytes come from the origin's own counter; "one transfer" is a plain curl from the origin in the same run ` +
      `(median ${fmtMs(r.directMedianMs)}). ${r.counts[0]?.runs.length ?? 0} runs per pod count, medians shown; peak RSS is the highest VmHWM of the cache process; ` +
      "curl retries are ensure requests the cache answered beyond one per pod (its hits + misses counters): a pod that needed its init container's `--retry`. " +
      "\"The cache's fill\" is the cache's own log of the origin fetch (request to published, fsynced file); \"N curls of /healthz\" starts as many curls " +
      "against the same cache at once and waits for the last: the cost of starting N processes on this 2-core machine, which is in \"last pod\" too.\n",
    table(["pods", "origin bytes (cache-io)", "origin bytes, every pod fetching", "last pod has it", "vs one transfer", "the cache's fill", "N curls of /healthz", "cache peak RSS", "curl retries (all runs)"], rows),
    "",
    "![origin bytes against pod count](bench/origin-bytes.svg)\n",
  ].join("\n");
}

export function manyNodesSection(s: Saved<ManyNodesResult>): string {
  const r = s.result;
  return [
    header("3. Many nodes", s.command, s.finishedAt),
    `${r.nodes} cache processes (one per simulated node, each its own root and port), ${r.pods} pods spread round-robin over them, all cold and ` +
      `starting at once; a ${fmtBytes(r.sizeBytes)} file, origin at ${r.rate / 1e6} MB/s per connection. Without a cache each pod fetches the file ` +
      `itself, so the baseline is one file per pod. ${r.runs.length} runs, medians shown.\n`,
    table(
      ["nodes", "pods", "origin bytes (cache-io)", "origin bytes, every pod fetching", "cache-io / baseline", "last pod has it", "vs one transfer", "each cache's fill", "peak RSS per cache"],
      [[
        String(r.nodes),
        String(r.pods),
        `${r.originFiles.toFixed(2)}x`,
        `${r.baselineFiles}x`,
        fmtRatio(r.vsBaseline),
        fmtMs(r.lastMs),
        fmtRatio(r.lastVsDirect),
        fmtMs(median(r.runs.flatMap((x) => x.fillMs ?? []))),
        fmtBytes(r.cacheHwmBytes),
      ]],
    ),
    "",
    `One transfer alone takes ${fmtMs(median(r.directMs))}. Here the ${r.nodes} "nodes" share 2 cores and one disk, so their concurrent fills ` +
      "(each hashing, writing and fsyncing its own copy) slow each other down; on real nodes each has its own.\n",
  ].join("\n");
}

export function servingSection(s: Saved<ServingResult>): string {
  const r = s.result;
  const rows = r.points.map((p) => [
    String(p.clients),
    fmtNum(p.cacheMedian),
    fmtNum(p.nginxMedian),
    fmtRatio(p.ratio),
    p.cacheMBps.map((x) => fmtNum(x)).join(", "),
    p.nginxMBps.map((x) => fmtNum(x)).join(", "),
    `${fmtNum(p.cacheCpuMsPerGiB)} / ${fmtNum(p.nginxCpuMsPerGiB)} (${fmtRatio(p.cacheCpuMsPerGiB / p.nginxCpuMsPerGiB)})`,
  ]);
  const m = r.cacheRss;
  return [
    header("4. Serving a cached file", s.command, s.finishedAt),
    `One cached ${fmtBytes(r.sizeBytes)} file fetched whole by concurrent \`curl -o /dev/null\` clients from cache-io's \`/v1/objects/\` ` +
      "and from nginx (Debian's, `sendfile on`, 2 workers) serving the same bytes; aggregate MB/s (10^6 bytes), medians of " +
      `${r.points[0]?.cacheMBps.length ?? 0} alternating runs. Server CPU is read from /proc (utime + stime; nginx: master and workers) around each run.\n`,
    table(["clients", "cache-io MB/s", "nginx MB/s", "cache-io / nginx", "cache-io runs", "nginx runs", "server CPU ms per GiB sent: cache-io / nginx"], rows),
    "",
    `Memory: the cache process served ${fmtBytes(m.servedBytes)} (${(m.servedBytes / r.sizeBytes).toFixed(0)} times the file) with RSS between ` +
      `${fmtBytes(m.min)} and ${fmtBytes(m.max)} (${fmtBytes(m.before)} before; peak since start ${fmtBytes(m.hwm)}): it streams, it does not buffer the ${fmtBytes(r.sizeBytes)} file.\n`,
  ].join("\n");
}

export function webhookSection(s: Saved<WebhookResult>): string {
  const r = s.result;
  const st = s.settings as { seconds?: number; rounds?: number; connections?: number; halfConnections?: number; logLevel?: string };
  const row = (name: string, x: WebhookResult["peak"]["webhook"]) => [name, fmtNum(x.reviewsPerSec), `${x.p50} ms`, `${x.p99} ms`, `${x.p999} ms`, fmtBytes(x.rssMaxBytes)];
  return [
    header("5. The webhook", s.command, s.finishedAt),
    `autocannon (programmatic, in the benchmark process) POSTs a realistic annotated pod's AdmissionReview (\`examples/admission-review.json\`, ` +
      `${r.requestBytes} bytes) over HTTPS to \`cache-io webhook\` (the compiled CLI, LOG_LEVEL=${st.logLevel ?? "info"}, so one log line per review as shipped) and to a bare ` +
      `\`node:https\` server (\`bench/lib/bare-https.ts\`: same cert, key and TLS floor) that reads the body and answers the webhook's own ` +
      `${r.responseBytes}-byte response. A third server, "review() only", is the same bare server running \`review()\` on each parsed body: ` +
      `the webhook's real work without express, logging or metrics. Every response is checked byte for byte. ${st.rounds ?? "?"} runs of ${st.seconds ?? "?"} s per server, ` +
      `alternating, ${st.connections ?? "?"} connections at peak; medians shown. TLS is verified against the generated CA: autocannon forces ` +
      "`rejectUnauthorized: false`, so the CA is passed in `tlsOptions` and the benchmark counts the connections whose chain verified " +
      "(Node calls `checkServerIdentity` only then) and refuses to report unless every connection did.\n",
    "At peak (as fast as each server answers):\n",
    table(["server", "reviews/s", "p50", "p99", "p99.9", "RSS under load"], [row("cache-io webhook", r.peak.webhook), row("review() only", r.peak.reviewOnly), row("bare node:https", r.peak.bare)]),
    "",
    `Webhook / bare: **${fmtRatio(r.peak.ratio)}** the reviews/s; review() only / bare: ${fmtRatio(r.peak.reviewOnlyRatio)}; ` +
      `webhook / review() only: ${fmtRatio(r.peak.webhook.reviewsPerSec / r.peak.reviewOnly.reviewsPerSec)}. autocannon records whole milliseconds.\n`,
    `At half the webhook's peak (${fmtNum(r.half.rate)} reviews/s offered to each server, autocannon \`overallRate\`, ${st.halfConnections ?? "?"} connections):\n`,
    table(["server", "reviews/s", "p50", "p99", "p99.9", "RSS under load"], [row("cache-io webhook", r.half.webhook), row("review() only", r.half.reviewOnly), row("bare node:https", r.half.bare)]),
    "",
    `autocannon's rate limit releases each second's quota as fast as the connections allow, then idles, so "half the rate" is bursts at full ` +
      "speed for about half of each second: these percentiles are pessimistic for a smooth arrival rate.\n",
    `The pure mutation alone (same review, default policy, in-process after a warm-up, median of ${r.cost.runs} runs of ${r.cost.iterations} calls): ` +
      `\`review()\` ${r.cost.reviewUs.toFixed(1)} µs, \`decide()\` ${r.cost.decideUs.toFixed(1)} µs per call. ` +
      `The webhook process's peak RSS over the whole benchmark: ${fmtBytes(r.webhookHwmBytes)}.\n`,
  ].join("\n");
}
