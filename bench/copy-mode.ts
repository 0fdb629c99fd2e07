// Cold copy mode: a copy-mode pod's init container (the exact curl arguments decide()
// writes, run with real curl, $(NODE_IP) -> 127.0.0.1, the emptyDir a temp dir) against
// a new node cache, timed against that cache's own fill of the file (its "fill done" log
// line: first request to a verified, synced, published file). Goal: the pod's copy ends
// within 1.1x of the fill, i.e. it streams while the file fills (the injected curl runs
// the ensure and the object side by side, --parallel). Also run: the same pod with its
// transfers one after the other (as injected before: the copy starts when the fill has
// ended), and a mount-mode pod (ensure only) for the floor. Variants alternate within
// each round; medians.
//   npx tsx bench/copy-mode.ts [--size-mib 512] [--rounds 3] [--rate-mbps 60]
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startCacheProc } from "./lib/cache.js";
import { buildDist, machine, main, save } from "./lib/env.js";
import { makeFile } from "./lib/files.js";
import { startBenchOrigin } from "./lib/origin.js";
import { initPod, runInit, type InitPod } from "./lib/pod.js";
import { removeTemp, sleep, tempDir } from "./lib/proc.js";
import { median, MiB } from "./lib/stats.js";

type Variant = "copy" | "copy, ensure then object" | "mount";
const VARIANTS: Variant[] = ["copy", "copy, ensure then object", "mount"];

interface Sample {
  podMs: number;
  fillMs: number;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** The init container as it was before its transfers ran side by side: the ensure, and only then the object (the copy starts when the fill has ended). */
function sequential(pod: InitPod): InitPod {
  const args = [...pod.args];
  const i = args.indexOf("--parallel");
  if (i < 0 || args[i + 1] !== "--parallel-immediate" || args[i + 2] !== "--parallel-max") throw new Error(`the injected arguments have no --parallel options: ${args.join(" ")}`);
  args.splice(i, 4);
  return { ...pod, args };
}

/** The cache's own fill time, from its "fill done" log line (written right after the publish). */
async function fillMs(log: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const line = readFileSync(log, "utf8").split("\n").find((l) => l.includes('"fill done"'));
    if (line) return (JSON.parse(line) as { seconds: number }).seconds * 1000;
    await sleep(50);
  }
  throw new Error(`the cache logged no "fill done"; see ${log}`);
}

async function once(variant: Variant, url: string, sha256: string, size: number): Promise<Sample> {
  const cache = await startCacheProc("copy-mode");
  const emptyDir = join(cache.root, "..", "emptydir");
  mkdirSync(emptyDir);
  try {
    const copy = initPod(cache.policy, url, sha256, variant === "mount" ? "mount" : "copy", emptyDir);
    const podMs = await runInit(variant === "copy, ensure then object" ? sequential(copy) : copy, size);
    return { podMs, fillMs: await fillMs(cache.child.log) };
  } finally {
    await cache.child.stop();
    await removeTemp(join(cache.root, ".."));
  }
}

main(async () => {
  const size = arg("size-mib", 512) * MiB;
  const rounds = arg("rounds", 3);
  const rate = arg("rate-mbps", 60) * 1e6;
  await buildDist();
  const dir = await tempDir("copy-mode");
  const origin = await startBenchOrigin(rate, { ranges: true });
  try {
    const file = join(dir, "model.bin");
    await makeFile(file, size);
    const { sha256 } = await origin.putFile("/models/model.bin", file);
    const url = origin.url("/models/model.bin");
    const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();
    const samples = Object.fromEntries(VARIANTS.map((v) => [v, [] as Sample[]])) as Record<Variant, Sample[]>;
    for (let round = 0; round < rounds; round++) {
      const order = [...VARIANTS.slice(round % VARIANTS.length), ...VARIANTS.slice(0, round % VARIANTS.length)];
      for (const v of order) {
        const s = await once(v, url, sha256, size);
        samples[v].push(s);
        process.stdout.write(`round ${round + 1} ${v}: pod ${(s.podMs / 1000).toFixed(2)} s, fill ${(s.fillMs / 1000).toFixed(2)} s, ${(s.podMs / s.fillMs).toFixed(2)}x\n`);
      }
    }
    const summary = Object.fromEntries(
      VARIANTS.map((v) => {
        const pod = median(samples[v].map((s) => s.podMs));
        const fill = median(samples[v].map((s) => s.fillMs));
        return [v, { podSeconds: +(pod / 1000).toFixed(2), fillSeconds: +(fill / 1000).toFixed(2), podVsFill: +median(samples[v].map((s) => s.podMs / s.fillMs)).toFixed(2), runs: samples[v] }];
      }),
    );
    const result = { sizeBytes: size, rounds, ratePerConnection: rate, variants: summary, loadBefore, loadAfter: readFileSync("/proc/loadavg", "utf8").trim() };
    console.log(JSON.stringify({ ...result, variants: Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, { ...v, runs: undefined }])) }, null, 2));
    save({ name: "copy-mode", finishedAt: new Date().toISOString(), command: process.argv.slice(1).join(" "), machine: await machine(), settings: { size, rounds, rate }, result });
  } finally {
    await origin.stop();
    await removeTemp(dir);
  }
});
