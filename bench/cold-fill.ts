// Cold fill of one large file: cache-io (parallel ranged parts, sha256 verified, file
// synced) against one curl stream and aria2c -x16 -s16 -k8M on the same loopback
// origin, (a) limited per connection (not in total) and (b) unthrottled, with CPU
// seconds per GiB. Methods alternate within each round; medians of the rounds.
//   npx tsx bench/cold-fill.ts [--size-mib 1024] [--rounds 3] [--rate-mbps 60]
// (experiments: BENCH_PARTS="{concurrency: 16}", BENCH_ONLY=cache-io, BENCH_UNTHROTTLED_ONLY=1)
import { rm } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startCacheProc } from "./lib/cache.js";
import { cpuMs } from "./lib/cpu.js";
import { buildDist, machine, main, save } from "./lib/env.js";
import { makeFile } from "./lib/files.js";
import { startBenchOrigin, type BenchOrigin } from "./lib/origin.js";
import { run, tempDir } from "./lib/proc.js";
import { GiB, MiB, median } from "./lib/stats.js";
import { cacheKey, ensurePath } from "../src/shared/protocol.js";

interface Sample {
  ms: number;
  cpuMs: number;
}
type Method = "cache-io" | "curl" | "aria2c";
const METHODS: Method[] = ["cache-io", "curl", "aria2c"];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Run a command through /usr/bin/time: wall ms and the CPU ms it (and its children) used. */
async function timed(cmd: string, args: string[]): Promise<Sample> {
  const r = await run("/usr/bin/time", ["-f", "CPU %U %S", cmd, ...args], 600_000);
  const m = /CPU ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  return { ms: r.ms, cpuMs: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN };
}

async function once(method: Method, origin: BenchOrigin, path: string, sha256: string, out: string): Promise<Sample> {
  const url = origin.url(path);
  if (method === "curl") return timed("curl", ["-sSf", "-o", join(out, "curl.bin"), url]);
  if (method === "aria2c") {
    return timed("aria2c", ["-q", "-x16", "-s16", "-k8M", "--file-allocation=none", "--allow-overwrite=true", `--checksum=sha-256=${sha256}`, "-d", out, "-o", "aria2.bin", url]);
  }
  const cache = await startCacheProc("cold-fill");
  try {
    const before = cpuMs(cache.pid);
    const r = await run("curl", ["-sSf", "-o", "/dev/null", cache.url + ensurePath(cacheKey(url), url, sha256)], 600_000);
    const used = cpuMs(cache.pid) - before;
    const log = readFileSync(cache.child.log, "utf8");
    if (!log.includes('"fill done"')) throw new Error(`cache-io did not finish the fill; log ${cache.child.log}`);
    return { ms: r.ms, cpuMs: used };
  } finally {
    await cache.child.stop();
    await rm(cache.root, { recursive: true, force: true });
  }
}

async function scenario(label: string, rate: number, file: string, size: number, rounds: number): Promise<Record<Method, Sample[]>> {
  const origin = await startBenchOrigin(rate, { ranges: true });
  const out = await tempDir("cold-fill-out");
  try {
    const { sha256 } = await origin.putFile("/big.bin", file);
    const samples: Record<Method, Sample[]> = { "cache-io": [], curl: [], aria2c: [] };
    const methods = process.env.BENCH_ONLY ? METHODS.filter((m) => m === process.env.BENCH_ONLY) : METHODS;
    for (let round = 0; round < rounds; round++) {
      const order = [...methods.slice(round % methods.length), ...methods.slice(0, round % methods.length)];
      for (const m of order) {
        const s = await once(m, origin, "/big.bin", sha256, out);
        samples[m].push(s);
        process.stdout.write(`${label} round ${round + 1} ${m}: ${(s.ms / 1000).toFixed(2)} s, ${((size / 1e6) / (s.ms / 1000)).toFixed(0)} MB/s, CPU ${(s.cpuMs / 1000).toFixed(2)} s\n`);
        await rm(join(out, "curl.bin"), { force: true });
        await rm(join(out, "aria2.bin"), { force: true });
      }
    }
    return samples;
  } finally {
    await origin.stop();
  }
}

function summary(samples: Record<Method, Sample[]>, size: number) {
  const row = (m: Method) => {
    const ms = median(samples[m].map((s) => s.ms));
    return { seconds: +(ms / 1000).toFixed(2), mbps: +(size / 1e6 / (ms / 1000)).toFixed(0), cpuSecondsPerGiB: +(median(samples[m].map((s) => s.cpuMs)) / 1000 / (size / GiB)).toFixed(2) };
  };
  const r = Object.fromEntries(METHODS.map((m) => [m, row(m)])) as Record<Method, ReturnType<typeof row>>;
  return { ...r, cacheVsCurl: +(r.curl.seconds / r["cache-io"].seconds).toFixed(2), cacheVsAria2: +(r.aria2c.seconds / r["cache-io"].seconds).toFixed(2) };
}

main(async () => {
  const size = arg("size-mib", 1024) * MiB;
  const rounds = arg("rounds", 3);
  const rate = arg("rate-mbps", 60) * 1e6;
  await buildDist();
  const dir = await tempDir("cold-fill");
  const file = join(dir, "big.bin");
  await makeFile(file, size);
  const loadBefore = readFileSync("/proc/loadavg", "utf8").trim();
  const throttled = process.env.BENCH_UNTHROTTLED_ONLY ? null : summary(await scenario("throttled", rate, file, size, rounds), size);
  const unthrottled = summary(await scenario("unthrottled", 0, file, size, rounds), size);
  const loadAfter = readFileSync("/proc/loadavg", "utf8").trim();
  const result = { sizeBytes: size, rounds, ratePerConnection: rate, throttled, unthrottled, loadBefore, loadAfter };
  console.log(JSON.stringify(result, null, 2));
  save({ name: "cold-fill", finishedAt: new Date().toISOString(), command: process.argv.slice(1).join(" "), machine: await machine(), settings: { size, rounds, rate }, result });
});
