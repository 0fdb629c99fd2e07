// Cold fill of one large file: cache-io (parallel ranged parts, sha256 verified, file
// synced) against one curl stream and aria2c -x16 -s16 -k8M on the same loopback
// origin, (a) the project's origin limited per connection (not in total) and (b) an
// unthrottled origin, with CPU seconds per GiB (the cache's: all its threads; its main
// thread's apart). The unthrottled origin is Debian's nginx (sendfile): the project's
// Node origin needs about a core per GB/s itself, which on this 2-core machine is taken
// from the client being measured (BENCH_UNTHROTTLED_ORIGIN=node measures it anyway).
// Methods alternate within each round; medians of the rounds.
//   npx tsx bench/cold-fill.ts [--size-mib 1024] [--rounds 3] [--rate-mbps 60]
// (experiments: BENCH_PARTS="{concurrency: 16}", BENCH_ONLY=cache-io, BENCH_UNTHROTTLED_ONLY=1)
import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import { createReadStream, linkSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startCacheProc } from "./lib/cache.js";
import { cpuMs } from "./lib/cpu.js";
import { buildDist, machine, main, save } from "./lib/env.js";
import { makeFile } from "./lib/files.js";
import { startNginx } from "./lib/nginx.js";
import { startBenchOrigin } from "./lib/origin.js";
import { removeTemp, run, tempDir } from "./lib/proc.js";
import { GiB, MiB, median } from "./lib/stats.js";
import { cacheKey, ensurePath } from "../src/shared/protocol.js";

interface Sample {
  ms: number;
  cpuMs: number;
  /** cache-io only: its main thread's share of cpuMs. */
  mainCpuMs?: number;
}

/** Where a scenario fetches the file from. */
interface Served {
  url: string;
  stop(): Promise<void>;
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

/** CPU ms of a process's main thread (its thread id is its pid). */
function mainThreadCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function once(method: Method, url: string, sha256: string, out: string): Promise<Sample> {
  if (method === "curl") return timed("curl", ["-sSf", "-o", join(out, "curl.bin"), url]);
  if (method === "aria2c") {
    return timed("aria2c", ["-q", "-x16", "-s16", "-k8M", "--file-allocation=none", "--allow-overwrite=true", `--checksum=sha-256=${sha256}`, "-d", out, "-o", "aria2.bin", url]);
  }
  const cache = await startCacheProc("cold-fill");
  try {
    const before = cpuMs(cache.pid);
    const mainBefore = mainThreadCpuMs(cache.pid);
    const r = await run("curl", ["-sSf", "-o", "/dev/null", cache.url + ensurePath(cacheKey(url), url, sha256)], 600_000);
    const used = cpuMs(cache.pid) - before;
    const main = mainThreadCpuMs(cache.pid) - mainBefore;
    const log = readFileSync(cache.child.log, "utf8");
    if (!log.includes('"fill done"')) throw new Error(`cache-io did not finish the fill; log ${cache.child.log}`);
    return { ms: r.ms, cpuMs: used, mainCpuMs: main };
  } finally {
    await cache.child.stop();
    await rm(cache.root, { recursive: true, force: true });
  }
}

/** The project's origin (test/support/origin.ts in its own process), `rate` bytes/s per connection (0: unthrottled), ranges on. */
async function nodeOrigin(rate: number, file: string): Promise<Served> {
  const origin = await startBenchOrigin(rate, { ranges: true });
  await origin.putFile("/big.bin", file);
  return { url: origin.url("/big.bin"), stop: () => origin.stop() };
}

/** Debian's nginx serving the file (sendfile; ranges, a strong ETag and Last-Modified). */
async function nginxOrigin(file: string, dir: string): Promise<Served> {
  const root = join(dir, "www");
  mkdirSync(root);
  linkSync(file, join(root, "big.bin"));
  const nginx = await startNginx(root);
  return { url: nginx.url("big.bin"), stop: () => nginx.child.stop() };
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

async function scenario(label: string, origin: Served, sha256: string, size: number, rounds: number): Promise<Record<Method, Sample[]>> {
  const out = await tempDir("cold-fill-out");
  try {
    const samples: Record<Method, Sample[]> = { "cache-io": [], curl: [], aria2c: [] };
    const methods = process.env.BENCH_ONLY ? METHODS.filter((m) => m === process.env.BENCH_ONLY) : METHODS;
    for (let round = 0; round < rounds; round++) {
      const order = [...methods.slice(round % methods.length), ...methods.slice(0, round % methods.length)];
      for (const m of order) {
        const s = await once(m, origin.url, sha256, out);
        samples[m].push(s);
        const main = s.mainCpuMs === undefined ? "" : ` (main thread ${(s.mainCpuMs / 1000).toFixed(2)} s)`;
        process.stdout.write(`${label} round ${round + 1} ${m}: ${(s.ms / 1000).toFixed(2)} s, ${((size / 1e6) / (s.ms / 1000)).toFixed(0)} MB/s, CPU ${(s.cpuMs / 1000).toFixed(2)} s${main}\n`);
        await rm(join(out, "curl.bin"), { force: true });
        await rm(join(out, "aria2.bin"), { force: true });
      }
    }
    return samples;
  } finally {
    await removeTemp(out);
  }
}

function summary(samples: Record<Method, Sample[]>, size: number) {
  const row = (m: Method) => {
    const ms = median(samples[m].map((s) => s.ms));
    const perGiB = (xs: number[]) => +(median(xs) / 1000 / (size / GiB)).toFixed(2);
    const mains = samples[m].flatMap((s) => (s.mainCpuMs === undefined ? [] : [s.mainCpuMs]));
    return {
      seconds: +(ms / 1000).toFixed(2),
      mbps: +(size / 1e6 / (ms / 1000)).toFixed(0),
      cpuSecondsPerGiB: perGiB(samples[m].map((s) => s.cpuMs)),
      ...(mains.length ? { mainThreadCpuSecondsPerGiB: perGiB(mains) } : {}),
      runs: samples[m].map((s) => +(s.ms / 1000).toFixed(2)),
    };
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
  const sha256 = await sha256Of(file);
  const measure = async (label: string, start: () => Promise<Served>) => {
    const origin = await start();
    try {
      return summary(await scenario(label, origin, sha256, size, rounds), size);
    } finally {
      await origin.stop();
    }
  };
  const unthrottledOrigin = process.env.BENCH_UNTHROTTLED_ORIGIN === "node" ? "node" : "nginx";
  const throttled = process.env.BENCH_UNTHROTTLED_ONLY ? null : await measure("throttled", () => nodeOrigin(rate, file));
  const unthrottled = await measure(`unthrottled (${unthrottledOrigin})`, () => (unthrottledOrigin === "node" ? nodeOrigin(0, file) : nginxOrigin(file, dir)));
  const loadAfter = readFileSync("/proc/loadavg", "utf8").trim();
  const result = { sizeBytes: size, rounds, ratePerConnection: rate, throttled, unthrottled, unthrottledOrigin, loadBefore, loadAfter };
  console.log(JSON.stringify(result, null, 2));
  save({ name: "cold-fill", finishedAt: new Date().toISOString(), command: process.argv.slice(1).join(" "), machine: await machine(), settings: { size, rounds, rate }, result });
});
