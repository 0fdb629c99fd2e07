// Benchmark: the cluster tier. Node caches (the compiled CLI) as node-1..node-8, each on
// its own loopback address, membership from a real EndpointSlice in its own test control
// plane (test/cluster/harness.ts; test/cluster/peer-caches.ts: identity required, real
// pod-bound tokens for clients and peers). Every run starts cold (new roots); 10 clients
// per node run curl of /v1/ensure (mount mode: the file is usable when it returns, sha256
// pinned so the cache verifies it) at the same moment, against a 256 MiB file from an
// origin that limits each connection. Rows in each round: one node alone (the baseline:
// one node's cold time), 4 and 8 nodes, 4 nodes with the tier off by policy, and 4 and 8
// nodes with the owner SIGKILLed once the origin has sent 40% of the file.
//   npx tsx bench/peers.ts [--size-mib 256] [--rate-mbps 60] [--clients 10] [--rounds 3]
// (BENCH_ROWS="4 nodes;8 nodes, owner killed" runs only those rows besides the baseline;
// --chart-only redraws docs/bench/peers.svg from bench/results/peers.json)
import { cpSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheKey, ensurePath, objectDir, OBJECT_FILE } from "../src/shared/protocol.js";
import { startCluster, type Cluster } from "../test/cluster/harness.js";
import { owners, PeerCaches } from "../test/cluster/peer-caches.js";
import { ensureTools } from "../test/cluster/tools.js";
import { cpuMs } from "./lib/cpu.js";
import { buildDist, load, machine, main, RESULTS_DIR, ROOT, save } from "./lib/env.js";
import { makeFile } from "./lib/files.js";
import { tierChart } from "./lib/nics-report.js";
import { startBenchOrigin, type BenchOrigin } from "./lib/origin.js";
import { run, start, tempDir } from "./lib/proc.js";
import { fmtMs, median, MiB } from "./lib/stats.js";

const TIER_ON = "enabled: true";
const CHART = join(ROOT, "docs", "bench", "peers.svg");

export interface PeersRun {
  label: string;
  nodes: number;
  clients: number;
  /** Bytes the origin sent during the run, over the file size. */
  originFiles: number;
  /** ms from the common start until each client's curl returned (successful ones), sorted. */
  clientMs: number[];
  lastMs: number;
  /** Clients whose curl failed (with the owner killed: its own node's clients). */
  failed: number;
  /** Fills completed by source, summed over the caches still running. */
  sources: { origin: number; peer: number };
  killed?: string;
  /** With the owner killed: when, ms after the clients were started. */
  killAtMs?: number;
  /** Each running cache's own fill (its "fill done" line: request to published file), ms, and where from. */
  fills: { node: string; ms: number; from: string }[];
  /** Peer fetches that failed, summed over the caches still running (cache_io_cache_peer_failures_total). */
  peerFailures: number;
  /** CPU seconds all caches used during the run over its wall seconds (2 on this machine: every core busy). */
  cacheCores: number;
}

interface Row {
  label: string;
  nodes: number;
  tier: boolean;
  kill: boolean;
}

const ROWS: Row[] = [
  { label: "1 node (baseline)", nodes: 1, tier: true, kill: false },
  { label: "4 nodes", nodes: 4, tier: true, kill: false },
  { label: "8 nodes", nodes: 8, tier: true, kill: false },
  { label: "4 nodes, tier off", nodes: 4, tier: false, kill: false },
  { label: "4 nodes, owner killed", nodes: 4, tier: true, kill: true },
  { label: "8 nodes, owner killed", nodes: 8, tier: true, kill: true },
];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** The last "fill done" line of a cache's log (this run's: each run starts the caches anew): ms and where from. */
function lastFill(log: string): { ms: number; from: string } {
  const line = log.split("\n").filter((l) => l.includes('"fill done"')).pop() ?? "";
  return { ms: Number(/"seconds":([\d.]+)/.exec(line)?.[1] ?? NaN) * 1000, from: /"from":"([^"]*)"/.exec(line)?.[1] ?? "none" };
}

/** SIGKILL the process group `pid` after `ms`, from a child process; resolves with when (Date.now()). */
async function killLater(pid: number, ms: number, log: string): Promise<number> {
  const code = `setTimeout(() => { try { process.kill(-${pid}, "SIGKILL"); } catch {} console.log(Date.now()); }, ${Math.round(ms)});`;
  const child = start(process.execPath, ["-e", code], { log });
  await new Promise((resolve) => child.proc.once("exit", resolve));
  return Number(readFileSync(log, "utf8").trim().split("\n").pop());
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

async function sources(h: PeerCaches): Promise<{ origin: number; peer: number }> {
  const name = "cache_io_cache_fill_sources_total";
  return { origin: await h.total(name, { source: "origin" }), peer: await h.total(name, { source: "peer" }) };
}

/** One cold run: fresh caches on `row.nodes` nodes, all members, `clients` curls per node at once. */
async function once(h: PeerCaches, origin: BenchOrigin, url: string, sha256: string, size: number, row: Row, clients: number, killAfterMs: number): Promise<PeersRun> {
  await Promise.all(h.running().map((i) => h.kill(i)));
  const members = range(row.nodes);
  h.setPolicy(row.tier ? TIER_ON : "enabled: false");
  await h.setMembers(members);
  await Promise.all(members.map((i) => h.start(i)));
  if (row.tier) await h.waitPeers(row.nodes);
  const headers = await Promise.all(members.map(async (i) => {
    const file = join(h.dir, `client-${i}.headers`);
    writeFileSync(file, `Authorization: Bearer ${await h.clientToken(i)}\n`, { mode: 0o600 });
    return file;
  }));
  const key = cacheKey(url);
  const owner = members.find((i) => h.nodes[i]!.name === owners(url, h.nodes.slice(0, row.nodes))[0])!;
  const cpuBefore = new Map(members.map((i) => [i, cpuMs(h.pid(i)!)]));
  const cpuUsed = () => h.running().reduce((sum, i) => sum + cpuMs(h.pid(i)!) - cpuBefore.get(i)!, 0);
  const before = (await origin.stats()).bytesSent;
  const t0 = performance.now();
  const wall0 = Date.now();
  // The owner is killed by a process of its own, started before the clients: spawning 80
  // curls blocks this event loop for seconds on a loaded machine, and so would a timer here.
  const killer = row.kill ? killLater(h.pid(owner)!, killAfterMs, join(h.dir, "killer.log")) : undefined;
  const done = await Promise.all(members.flatMap((i) => range(clients).map(async () => {
    try {
      await run("curl", ["-q", "--silent", "--show-error", "--fail", "-H", `@${headers[i]}`, "-o", "/dev/null", h.url(i) + ensurePath(key, url, sha256)], 600_000);
      const got = statSync(join(objectDir(h.root(i), key), OBJECT_FILE)).size;
      if (got !== size) throw new Error(`node-${i + 1}'s file has ${got} bytes, not ${size}`);
      return performance.now() - t0;
    } catch (err) {
      if (row.kill && i === owner) return NaN; // its node's cache is gone: so are its pods
      throw err;
    }
  })));
  const killAtMs = killer ? (await killer) - wall0 : NaN;
  if (killer) await h.kill(owner); // gone already: this only forgets it
  const wallMs = performance.now() - t0;
  const cacheCores = cpuUsed() / wallMs; // a killed owner's CPU drops out of the sum
  const originBytes = (await origin.stats()).bytesSent - before;
  const clientMs = done.filter(Number.isFinite).sort((a, b) => a - b);
  return {
    label: row.label,
    nodes: row.nodes,
    clients: row.nodes * clients,
    originFiles: originBytes / size,
    clientMs,
    lastMs: clientMs[clientMs.length - 1] ?? NaN,
    failed: done.length - clientMs.length,
    sources: await sources(h),
    cacheCores,
    peerFailures: await h.total("cache_io_cache_peer_failures_total"),
    fills: h.running().map((i) => ({ node: h.nodes[i]!.name, ...lastFill(h.log(i)) })),
    ...(killer ? { killed: h.nodes[owner]!.name, killAtMs } : {}),
  };
}

export interface PeersResult {
  sizeBytes: number;
  ratePerConnection: number;
  clientsPerNode: number;
  rounds: number;
  runs: PeersRun[];
  /** Per row: median origin files, median last client, and that over the 1-node baseline's. */
  rows: { label: string; originFiles: number; lastMs: number; lastVsOneNode: number; slowestFillMs: number; failed: number }[];
  clusterStartSeconds: number;
  /** /proc/loadavg before and after: the machine is shared. */
  loadBefore: string;
  loadAfter: string;
}

function chart(r: PeersResult): Promise<void> {
  return tierChart(r.rows, `Cold nodes, ${r.clientsPerNode} clients each, ${r.sizeBytes / MiB} MiB: the last client has the file (median of ${r.rounds})`, CHART, "client");
}

main(async () => {
  if (process.argv.includes("--chart-only")) {
    const saved = load<PeersResult>("peers");
    if (!saved) throw new Error("no bench/results/peers.json: run the benchmark first");
    return chart(saved.result);
  }
  const size = arg("size-mib", 256) * MiB;
  const rate = arg("rate-mbps", 60) * 1e6;
  const clients = arg("clients", 10);
  const rounds = arg("rounds", 3);
  await buildDist();
  // A private copy of the build (inside the repo, so node_modules resolves): a rebuild of
  // dist/ by another run on this machine cannot swap the code under the caches mid-benchmark.
  const cli = join(RESULTS_DIR, `.dist-${process.pid}`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  cpSync(join(ROOT, "dist"), cli, { recursive: true });
  const tools = ensureTools();
  if (!tools.ok) throw new Error(`no test control plane: ${tools.reason}`);
  const dir = await tempDir("peers");
  const file = join(dir, "model.bin");
  await makeFile(file, size);
  const origin = await startBenchOrigin(rate, { ranges: true });
  let cluster: Cluster | undefined;
  let h: PeerCaches | undefined;
  try {
    const { sha256 } = await origin.putFile("/models/model.bin", file);
    const url = origin.url("/models/model.bin");
    cluster = await startCluster(tools.bin, { log: (s) => process.stdout.write(`[cluster] ${s}\n`) });
    h = await PeerCaches.setup(cluster, { nodes: 8, prefix: "bench-peers", peers: TIER_ON, cli: join(cli, "cli", "main.js") });
    const runs: PeersRun[] = [];
    const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();
    const only = process.env.BENCH_ROWS?.split(";");
    for (let round = 0; round < rounds; round++) {
      let killAfterMs = NaN;
      for (const row of ROWS.filter((r) => !only || r === ROWS[0] || only.includes(r.label))) {
        const r = await once(h, origin, url, sha256, size, row, clients, killAfterMs);
        // the owner is killed at 30% of the one-node fill of this round: mid-fill, as the owner's fill is no faster with peers
        if (row === ROWS[0]) killAfterMs = 0.3 * r.fills[0]!.ms;
        runs.push(r);
        process.stdout.write(`round ${round + 1} ${r.label}: origin ${r.originFiles.toFixed(2)}x the file, last of ${r.clients - r.failed} clients ${fmtMs(r.lastMs)}, caches used ${r.cacheCores.toFixed(2)} cores, ${r.peerFailures} peer failures, fills ${JSON.stringify(r.sources)} (${r.fills.map((f) => `${f.node} ${fmtMs(f.ms)} from ${f.from}`).join(", ")})${r.killed ? `, killed ${r.killed} at ${fmtMs(r.killAtMs!)} (${r.failed} of its clients failed)` : ""}\n`);
      }
    }
    const base = median(runs.filter((r) => r.label === ROWS[0]!.label).map((r) => r.lastMs));
    const rows = ROWS.filter((row) => runs.some((r) => r.label === row.label)).map((row) => {
      const rs = runs.filter((r) => r.label === row.label);
      const lastMs = median(rs.map((r) => r.lastMs));
      const slowestFill = median(rs.map((r) => Math.max(...r.fills.map((f) => f.ms))));
      return { label: row.label, originFiles: median(rs.map((r) => r.originFiles)), lastMs, lastVsOneNode: lastMs / base, slowestFillMs: slowestFill, failed: rs.reduce((a, r) => a + r.failed, 0) };
    });
    const result: PeersResult = { sizeBytes: size, ratePerConnection: rate, clientsPerNode: clients, rounds, runs, rows, clusterStartSeconds: cluster.startSeconds, loadBefore, loadAfter: readFileSync("/proc/loadavg", "utf8").trim() };
    for (const r of rows) process.stdout.write(`${r.label}: origin ${r.originFiles.toFixed(2)}x, last client ${fmtMs(r.lastMs)} (${r.lastVsOneNode.toFixed(2)}x one node)\n`);
    const saved = save({ name: "peers", finishedAt: new Date().toISOString(), command: process.argv.slice(1).join(" "), machine: await machine(), settings: { size, rate, clients, rounds }, result });
    await chart(result);
    process.stdout.write(`raw results in ${saved}; chart ${CHART}\n`);
  } finally {
    await h?.close();
    await cluster?.stop();
    await origin.stop();
    rmSync(cli, { recursive: true, force: true });
  }
});
