// Benchmark: the cluster tier on per-node NICs. Each node is a network namespace with a
// veth to one bridge, both directions of its link limited by tbf (bench/lib/netns.ts); its
// node cache runs in it (bench/lib/nic-caches.ts: identity required, pod-bound tokens,
// membership from a real IPv4 EndpointSlice). The origin (limit per connection, so 8 parts
// outrun one NIC) and the test control plane listen on the host's bridge address. Every
// run starts cold; 10 pods per node run the injected init container's curl in the node's
// namespace at the same moment (bench/lib/pods-child.ts). Rows: 1 node (one node's cold
// time), 4 and 8 nodes with the tier as a star (fanout 64: every node asks the owner), a
// tree (fanout 2) and a chain (fanout 1), 8 nodes with the tier off, 8 nodes with the
// owner SIGKILLed mid-fill (star and tree); chain and tree with 2 parts at once (and, when
// BENCH_ROWS names them, with 2 parts of 4 MiB at once).
//   npx tsx bench/peers-nics.ts [--size-mib 128] [--nic-mbps 20] [--rate-mbps 10] [--clients 10] [--rounds 2]
//   npx tsx bench/peers-nics.ts --clean   (removes a dead run's namespaces and bridge)
// BENCH_ROWS="8 nodes, star;8 nodes, tree" runs only those rows besides the baseline;
// --chart-only redraws docs/bench/peers-nics.svg from bench/results/peers-nics.json, --table
// prints its rows as docs/bench-peers.md's table.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parsePolicy } from "../src/policy/load.js";
import { startCluster, type Cluster } from "../test/cluster/harness.js";
import { owners } from "../test/cluster/peer-caches.js";
import { ensureTools } from "../test/cluster/tools.js";
import { load, machine, main, RESULTS_DIR, ROOT, save } from "./lib/env.js";
import { makeFile } from "./lib/files.js";
import { NicCaches } from "./lib/nic-caches.js";
import { createNics, footprint, removeLeftovers, type Nics } from "./lib/netns.js";
import { chart, type NicsResult, type NicsRow, type NicsRun, summarize, table } from "./lib/nics-report.js";
import { startOriginAt } from "./lib/origin-at.js";
import type { BenchOrigin } from "./lib/origin.js";
import { run, tempDir } from "./lib/proc.js";
import { fmtMs, MiB } from "./lib/stats.js";
import { busyMs, clientArgs, lastFill, runPods } from "./lib/nics-run.js";

const STAR = 64;
const ROWS: NicsRow[] = [
  { label: "1 node (baseline)", nodes: 1, tier: true, kill: false, fanout: STAR },
  { label: "4 nodes, star", nodes: 4, tier: true, kill: false, fanout: STAR },
  { label: "8 nodes, star", nodes: 8, tier: true, kill: false, fanout: STAR },
  { label: "4 nodes, tree", nodes: 4, tier: true, kill: false, fanout: 2 },
  { label: "8 nodes, tree", nodes: 8, tier: true, kill: false, fanout: 2 },
  { label: "4 nodes, chain", nodes: 4, tier: true, kill: false, fanout: 1 },
  { label: "8 nodes, chain", nodes: 8, tier: true, kill: false, fanout: 1 },
  // 2 parts at once (2 x the per-connection rate = the NIC): the owner's prefix grows at line rate, not in 16 MiB steps
  { label: "8 nodes, chain, 2 parts at once", nodes: 8, tier: true, kill: false, fanout: 1, parts: "concurrency: 2" },
  { label: "8 nodes, tree, 2 parts at once", nodes: 8, tier: true, kill: false, fanout: 2, parts: "concurrency: 2" },
  // not in the default run (BENCH_ROWS): smaller parts, so the prefix a peer can stream lags less
  { label: "8 nodes, chain, 2 parts of 4 MiB at once", nodes: 8, tier: true, kill: false, fanout: 1, parts: "size: 4Mi, concurrency: 2", extra: true },
  { label: "8 nodes, tree, 2 parts of 4 MiB at once", nodes: 8, tier: true, kill: false, fanout: 2, parts: "size: 4Mi, concurrency: 2", extra: true },
  // not in the default run (BENCH_ROWS): the owner's bytes in flight scaled with the file (8 x 1 MiB of 128 MiB, 6%; the
  // defaults' 8 x 16 MiB are 4% of a 3 GB file but all of this 128 MiB one)
  { label: "4 nodes, chain, 8 parts of 1 MiB", nodes: 4, tier: true, kill: false, fanout: 1, parts: "size: 1Mi, minFileSize: 1Mi", extra: true },
  { label: "8 nodes, chain, 8 parts of 1 MiB", nodes: 8, tier: true, kill: false, fanout: 1, parts: "size: 1Mi, minFileSize: 1Mi", extra: true },
  { label: "8 nodes, tree, 8 parts of 1 MiB", nodes: 8, tier: true, kill: false, fanout: 2, parts: "size: 1Mi, minFileSize: 1Mi", extra: true },
  { label: "8 nodes, fanout 3 (the default), 8 parts of 1 MiB", nodes: 8, tier: true, kill: false, fanout: 3, parts: "size: 1Mi, minFileSize: 1Mi", extra: true },
  { label: "8 nodes, tier off", nodes: 8, tier: false, kill: false, fanout: STAR },
  { label: "8 nodes, star, owner killed", nodes: 8, tier: true, kill: true, fanout: STAR },
  { label: "8 nodes, tree, owner killed", nodes: 8, tier: true, kill: true, fanout: 2 },
];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const loadavg = () => readFileSync("/proc/loadavg", "utf8").trim();

/** One cold run: fresh caches on `row.nodes` nodes, all members, `clients` pods per node at once. */
async function once(h: NicCaches, origin: BenchOrigin, url: string, sha256: string, size: number, row: NicsRow, clients: number, killAfterMs: number): Promise<NicsRun> {
  await Promise.all(h.running().map((i) => h.kill(i)));
  const members = range(row.nodes);
  const peers = row.tier ? `enabled: true, fanout: ${row.fanout}` : "enabled: false";
  h.setPolicy(peers, row.parts);
  const parsed = parsePolicy(readFileSync(join(h.dir, "policy.yaml"), "utf8"));
  if (!parsed.ok) throw new Error(`the benchmark's policy does not load: ${JSON.stringify(parsed)}`);
  await h.setMembers(members);
  await Promise.all(members.map((i) => h.start(i)));
  if (row.tier) await h.waitPeers(row.nodes);
  const pods = await Promise.all(members.map(async (i) => clientArgs(parsed.policy, url, sha256, h.nodes[i]!.ip, await h.clientTokenFile(i))));
  const owner = members.find((i) => h.nodes[i]!.name === owners(url, h.nodes.slice(0, row.nodes))[0])!;
  const before = { origin: (await origin.stats()).bytesSent, busy: 0, load: loadavg() };
  let cpu0 = new Map<number, number>();
  let killAtMs: number | undefined;
  const r = await runPods(h, members, pods, clients, size, {
    onGo: (t0) => {
      // CPU from the start of the pods on (the pods' processes are started and waiting by then)
      before.busy = busyMs();
      cpu0 = new Map(members.map((i) => [i, h.cpu(i)]));
      if (!row.kill) return;
      setTimeout(() => {
        killAtMs = Date.now() - t0;
        try {
          process.kill(-h.pid(owner)!, "SIGKILL");
        } catch {
          // gone already
        }
      }, killAfterMs);
    },
    expectFail: row.kill ? owner : undefined,
  });
  if (row.kill) await h.kill(owner); // gone already: this only forgets it
  const wallMs = r.wallMs;
  const cacheCores = h.running().reduce((sum, i) => sum + h.cpu(i) - cpu0.get(i)!, 0) / wallMs;
  const machineCores = (busyMs() - before.busy) / wallMs;
  const originBytes = (await origin.stats()).bytesSent - before.origin;
  const name = "cache_io_cache_fill_sources_total";
  return {
    label: row.label, nodes: row.nodes, clients: row.nodes * clients, originFiles: originBytes / size,
    clientMs: r.clientMs, lastMs: r.clientMs[r.clientMs.length - 1] ?? NaN, failed: r.failed, errors: r.errors.slice(0, 3),
    perNodeLastMs: r.perNodeLastMs,
    sources: { origin: await h.total(name, { source: "origin" }), peer: await h.total(name, { source: "peer" }) },
    peerFailures: await h.total("cache_io_cache_peer_failures_total"),
    fills: h.running().map((i) => ({ node: h.nodes[i]!.name, ...lastFill(h.log(i)) })),
    cacheCores, machineCores, loadBefore: before.load, loadAfter: loadavg(),
    ...(row.kill ? { killed: h.nodes[owner]!.name, killAtMs } : {}),
  };
}

/** `git archive HEAD` of what the build needs into `dir`, compiled there; returns the commit. */
async function buildCommitted(dir: string): Promise<string> {
  const commit = (await run("git", ["rev-parse", "HEAD"], 30_000, ROOT)).stdout.trim();
  process.stdout.write(`building ${commit.slice(0, 7)} (the committed src/) into ${dir}...\n`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tar = join(dir, "src.tar");
  await run("git", ["archive", "-o", tar, "HEAD", "src", "tsconfig.json", "tsconfig.build.json", "package.json"], 60_000, ROOT);
  await run("tar", ["-xf", tar, "-C", dir], 60_000);
  await run(join(ROOT, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.build.json"], 300_000, dir);
  return commit;
}

async function bench(): Promise<void> {
  const size = arg("size-mib", 128) * MiB;
  const nic = arg("nic-mbps", 20) * 1e6;
  const rate = arg("rate-mbps", 10) * 1e6;
  const clients = arg("clients", 10);
  const rounds = arg("rounds", 2);
  const only = process.env.BENCH_ROWS?.split(";");
  const rows = ROWS.filter((r) => r === ROWS[0] || (only ? only.includes(r.label) : !r.extra));
  const maxNodes = Math.max(...rows.map((r) => r.nodes));
  // The committed code, built apart (inside the repo, so node_modules resolves): other
  // engineers' uncommitted edits and rebuilds of dist/ cannot change what is measured.
  const cli = join(RESULTS_DIR, `.build-${process.pid}`);
  const commit = await buildCommitted(cli);
  const tools = ensureTools();
  if (!tools.ok) throw new Error(`no test control plane: ${tools.reason}`);
  const dir = await tempDir("peers-nics");
  const file = join(dir, "model.bin");
  await makeFile(file, size);
  const footprintBefore = footprint();
  // Ctrl-C (bench/lib/proc.ts exits on it): the finally below never runs, so the dirs go here.
  const dirs = () => [cli, dir, h?.objects.dir].forEach((d) => d && rmSync(d, { recursive: true, force: true }));
  process.once("exit", dirs);
  let nics: Nics | undefined;
  let origin: BenchOrigin | undefined;
  let cluster: Cluster | undefined;
  let h: NicCaches | undefined;
  try {
    nics = await createNics(maxNodes, nic);
    origin = await startOriginAt(nics.hostIp, rate, { ranges: true });
    const { sha256 } = await origin.putFile("/models/model.bin", file);
    const url = origin.url("/models/model.bin");
    cluster = await startCluster(tools.bin, { apiAddress: nics.hostIp, log: (s) => process.stdout.write(`[cluster] ${s}\n`) });
    h = await NicCaches.setup(cluster, nics, { prefix: "bench-nics", cli: join(cli, "dist", "cli", "main.js"), dir: join(dir, "nodes") });
    const runs: NicsRun[] = [];
    const loadBefore = loadavg();
    for (let round = 0; round < rounds; round++) {
      let killAfterMs = NaN;
      for (const row of rows) {
        const r = await once(h, origin, url, sha256, size, row, clients, killAfterMs);
        // the owner is killed at 30% of this round's one-node fill: mid-fill (the owner's fill is no faster with peers)
        if (row === ROWS[0]) killAfterMs = 0.3 * r.fills[0]!.ms;
        runs.push(r);
        process.stdout.write(`round ${round + 1} ${r.label}: origin ${r.originFiles.toFixed(2)}x, last of ${r.clients - r.failed} pods ${fmtMs(r.lastMs)}, caches ${r.cacheCores.toFixed(2)} cores, machine ${r.machineCores.toFixed(2)} cores (load ${r.loadBefore.split(" ")[0]} -> ${r.loadAfter.split(" ")[0]}), ${r.peerFailures} peer failures, fills ${JSON.stringify(r.sources)} (${r.fills.map((f) => `${f.node} ${fmtMs(f.ms)} from ${f.from}`).join(", ")})${r.killed ? `, killed ${r.killed} at ${fmtMs(r.killAtMs ?? NaN)}` : ""}${r.errors.length ? `; errors: ${r.errors.join(" | ")}` : ""}\n`);
      }
    }
    const result: NicsResult = {
      sizeBytes: size, nicBytesPerSecond: nic, ratePerConnection: rate, clientsPerNode: clients, rounds, runs,
      rows: summarize(ROWS, runs), clusterStartSeconds: cluster.startSeconds, loadBefore, loadAfter: loadavg(), footprintBefore, footprintAfter: [],
    };
    await h.close();
    h = undefined;
    await cluster.stop();
    cluster = undefined;
    await origin.stop();
    origin = undefined;
    await nics.remove();
    nics = undefined;
    result.footprintAfter = footprint();
    for (const r of result.rows) process.stdout.write(`${r.label}: origin ${r.originFiles.toFixed(2)}x, last pod ${fmtMs(r.lastMs)} (${r.lastVsOneNode.toFixed(2)}x one node)\n`);
    const saved = save({ name: "peers-nics", finishedAt: new Date().toISOString(), command: process.argv.slice(1).join(" "), machine: await machine(), settings: { size, nic, rate, clients, rounds, commit }, result });
    await chart(result);
    process.stdout.write(`raw results in ${saved}; left on the host: ${result.footprintAfter.length ? result.footprintAfter.join(", ") : "nothing"}\n`);
  } finally {
    await h?.close().catch(() => undefined);
    await cluster?.stop();
    await origin?.stop();
    await nics?.remove();
    process.removeListener("exit", dirs);
    dirs();
  }
}

main(async () => {
  if (process.argv.includes("--clean")) {
    const removed = removeLeftovers();
    process.stdout.write(removed.length ? `removed ${removed.join(", ")}\n` : "nothing left from earlier runs\n");
    return;
  }
  if (process.argv.includes("--chart-only") || process.argv.includes("--table")) {
    const saved = load<NicsResult>("peers-nics");
    if (!saved) throw new Error("no bench/results/peers-nics.json: run the benchmark first");
    if (process.argv.includes("--table")) return void process.stdout.write(`${table(saved.result)}\n`);
    return chart(saved.result);
  }
  await bench();
});
