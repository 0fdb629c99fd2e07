// Benchmark 4: serving speed of one cached large file, cache-io /v1/objects/ against
// nginx (sendfile on), 1 and N concurrent curl clients; the cache's RSS is sampled
// while it serves many times its own size.
// Run: npx tsx bench/serving.ts
import { linkSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { startCacheProc, type CacheProc } from "./lib/cache.js";
import { buildDist, isMain, main } from "./lib/env.js";
import { finish } from "./lib/finish.js";
import { withServedFile, type Served } from "./lib/fixture.js";
import { startNginx, type Nginx } from "./lib/nginx.js";
import { initPod, runInit } from "./lib/pod.js";
import { run } from "./lib/proc.js";
import { cpuMs } from "./lib/cpu.js";
import { sampleRss } from "./lib/rss.js";
import { fmtBytes, GiB, median, ratio } from "./lib/stats.js";

export interface ServingSettings {
  sizeBytes: number;
  clients: number[];
  rounds: number;
}

export const SERVING_DEFAULTS: ServingSettings = { sizeBytes: 1 * GiB, clients: [1, 8], rounds: 3 };

export interface ServingPoint {
  clients: number;
  /** Aggregate MB/s (1e6 bytes) of each round. */
  cacheMBps: number[];
  nginxMBps: number[];
  cacheMedian: number;
  nginxMedian: number;
  /** cache-io / nginx. */
  ratio: number;
  /** Median CPU milliseconds each server spent per GiB it sent. */
  cacheCpuMsPerGiB: number;
  nginxCpuMsPerGiB: number;
}

export interface ServingResult {
  sizeBytes: number;
  points: ServingPoint[];
  /** The cache's RSS over every cache-io serving run: lowest, highest, and its peak since start. */
  cacheRss: { before: number; min: number; max: number; hwm: number; servedBytes: number };
}

/** `clients` concurrent curls each fetching the whole file to /dev/null; aggregate MB/s. */
async function fetchAll(url: string, clients: number, size: number): Promise<number> {
  const t0 = performance.now();
  const outs = await Promise.all(
    Array.from({ length: clients }, () => run("curl", ["-q", "--silent", "--show-error", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url], 600_000)),
  );
  const ms = performance.now() - t0;
  for (const o of outs) if (Number(o.stdout) !== size) throw new Error(`a client got ${o.stdout} bytes of ${url}, not ${size}`);
  return (clients * size) / 1e6 / (ms / 1000);
}

interface Server {
  url: string;
  pid: number;
}

/** One fetchAll against `server`: aggregate MB/s and the server's CPU ms per GiB sent. */
async function timed(server: Server, clients: number, size: number): Promise<[number, number]> {
  const cpu0 = cpuMs(server.pid);
  const mbps = await fetchAll(server.url, clients, size);
  return [mbps, (cpuMs(server.pid) - cpu0) / ((clients * size) / GiB)];
}

async function points(cache: Server, nginx: Server, size: number, settings: ServingSettings): Promise<ServingPoint[]> {
  const out: ServingPoint[] = [];
  for (const clients of settings.clients) {
    const runs = { cache: [] as [number, number][], nginx: [] as [number, number][] };
    for (let round = 0; round < settings.rounds; round++) {
      const order = round % 2 ? (["nginx", "cache"] as const) : (["cache", "nginx"] as const);
      for (const who of order) runs[who].push(await timed(who === "cache" ? cache : nginx, clients, size));
      process.stdout.write(`  ${clients} client(s), round ${round + 1}: cache-io ${runs.cache.at(-1)![0].toFixed(0)} MB/s, nginx ${runs.nginx.at(-1)![0].toFixed(0)} MB/s\n`);
    }
    const cacheMBps = runs.cache.map((r) => r[0]);
    const nginxMBps = runs.nginx.map((r) => r[0]);
    const [c, n] = [median(cacheMBps), median(nginxMBps)];
    out.push({
      clients,
      cacheMBps,
      nginxMBps,
      cacheMedian: c,
      nginxMedian: n,
      ratio: ratio(c, n),
      cacheCpuMsPerGiB: median(runs.cache.map((r) => r[1])),
      nginxCpuMsPerGiB: median(runs.nginx.map((r) => r[1])),
    });
  }
  return out;
}

async function measure(s: Served, cache: CacheProc, nginx: Nginx, settings: ServingSettings): Promise<ServingResult> {
  const pod = initPod(cache.policy, s.url(), s.sha256, "copy", join(s.dir, "unused"));
  const objectUrl = pod.args.find((a) => a.includes("/v1/objects/"));
  if (!objectUrl) throw new Error("copy-mode init container has no /v1/objects/ URL");
  const before = sampleRss(cache.pid).stop().max;
  const rss = sampleRss(cache.pid, 20);
  const servers = { cache: { url: objectUrl, pid: cache.pid }, nginx: { url: nginx.url("model.bin"), pid: nginx.child.pid } };
  const result = await points(servers.cache, servers.nginx, s.size, settings).finally(() => rss.stop());
  const mem = rss.stop();
  const servedBytes = settings.rounds * settings.clients.reduce((a, c) => a + c, 0) * s.size;
  return { sizeBytes: s.size, points: result, cacheRss: { before, min: mem.min, max: mem.max, hwm: mem.hwm, servedBytes } };
}

export async function benchServing(settings: ServingSettings = SERVING_DEFAULTS): Promise<ServingResult> {
  // The origin is fast here: only serving is measured, the fill is setup.
  return withServedFile("serving", settings.sizeBytes, 2e9, async (s) => {
    const root = join(s.dir, "nginx-root");
    mkdirSync(root);
    linkSync(s.file, join(root, "model.bin"));
    const [cache, nginx] = [await startCacheProc("serving"), await startNginx(root)];
    try {
      await runInit(initPod(cache.policy, s.url(), s.sha256, "mount", s.dir), s.size);
      process.stdout.write(`serving: ${fmtBytes(s.size)} cached; clients ${settings.clients.join(", ")}, ${settings.rounds} rounds\n`);
      return await measure(s, cache, nginx, settings);
    } finally {
      await Promise.all([cache.child.stop(), nginx.child.stop()]);
    }
  });
}

if (isMain(import.meta.url)) {
  main(async () => {
    await buildDist();
    const result = await benchServing();
    await finish("serving", SERVING_DEFAULTS, result);
    for (const p of result.points) process.stdout.write(`${p.clients} client(s): ${p.ratio.toFixed(2)}x nginx\n`);
  });
}
