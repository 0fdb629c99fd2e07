// Memory under slow readers: N clients ask the cache for a cached large file over
// /v1/objects, take the first bytes and never read again. Measures the cache's RSS
// before, while they hang on (peak), and after cache.sendTimeout has cut them; counts
// served and refused (503) clients; checks a well-behaved client is served meanwhile.
// Clients come from several loopback addresses (127.0.0.2...), like pods of one node.
// Run: npx tsx bench/slow-readers.ts [--clients 300] [--size-mib 256] [--addresses 10]
//        [--cli dist/cli/main.js] [--send-timeout 20s] [--json]
// (--cli of an older build measures "before": `git worktree add` it and build there.)
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { cacheKey, objectPath } from "../src/shared/protocol.js";
import { pseudoRandom, startOrigin } from "../test/support/origin.js";
import { CLI } from "./lib/env.js";
import { start, tempDir, waitForLog } from "./lib/proc.js";
import { memory, sampleRss } from "./lib/rss.js";

const MIB = 2 ** 20;

const { values: a } = parseArgs({
  options: {
    clients: { type: "string", default: "300" },
    "size-mib": { type: "string", default: "256" },
    addresses: { type: "string", default: "10" },
    cli: { type: "string", default: CLI },
    "send-timeout": { type: "string", default: "20s" },
    json: { type: "boolean", default: false },
  },
});
const clients = Number(a.clients);
const size = Number(a["size-mib"]) * MIB;
const addresses = Number(a.addresses);

/** One slow reader: the status line and the first bytes, then no more reading. */
function slowReader(port: number, path: string, localAddress: string): Promise<{ socket: Socket; status: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress });
    socket.once("error", reject);
    socket.once("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: cache\r\n\r\n`));
    socket.once("data", (first: Buffer) => {
      socket.pause();
      resolve({ socket, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(first.toString("latin1", 0, 20))?.[1] ?? 0) });
    });
  });
}

/** A normal client: the whole file; its sha256 and time. */
function fullRead(port: number, path: string): Promise<{ status: number; sha256: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      const hash = createHash("sha256");
      res.on("data", (d: Buffer) => hash.update(d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, sha256: hash.digest("hex"), ms: Date.now() - t0 }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const origin = await startOrigin();
  const content = pseudoRandom(size, 7);
  const { sha256 } = origin.put("/big.bin", content);
  const dir = await tempDir("slow-readers");
  const policyFile = join(dir, "policy.yaml");
  writeFileSync(policyFile, `identity: {mode: "off"}\norigins: {allowPrivate: ["127.0.0.1"]}\ncache: {diskBudget: 4Gi, sendTimeout: ${a["send-timeout"]}}\n`);
  const cache = start(process.execPath, [a.cli, "cache", "--host", "127.0.0.1", "--port", "0", "--root", join(dir, "root"), "--policy", policyFile], { log: join(dir, "cache.log") });
  const port = Number((await waitForLog(cache, /"port":(\d+)[^\n]*"cache listening"/))[1]);
  const url = origin.url("/big.bin");
  const path = objectPath(cacheKey(url), url);
  const warm = await fullRead(port, path); // fill, then one full read: the steady state
  if (warm.sha256 !== sha256) throw new Error("the warm-up read got other bytes");
  await sleep(1000);
  const before = memory(cache.pid).rss;

  const sampler = sampleRss(cache.pid, 50);
  const t0 = Date.now();
  const readers = await Promise.all(
    Array.from({ length: clients }, (_, i) => slowReader(port, path, `127.0.0.${2 + (i % addresses)}`).catch(() => ({ socket: undefined, status: -1 }))),
  );
  await sleep(3000); // let every stalled download fill its socket buffers
  const during = memory(cache.pid).rss;
  const other = await fullRead(port, path); // a well-behaved client meanwhile
  const served = readers.filter((r) => r.status === 200).length;
  const refused = readers.filter((r) => r.status === 503).length;
  // Wait for the send timeout to cut the stalled downloads (the old code never does).
  const cutBy = Date.now() + 120_000;
  let after = memory(cache.pid).rss;
  const stats = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  for (;;) {
    const m = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const sentNow = Number(/^cache_io_cache_served_bytes_total (\d+)/m.exec(m)?.[1] ?? 0);
    await sleep(2000);
    const m2 = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    if (Number(/^cache_io_cache_served_bytes_total (\d+)/m.exec(m2)?.[1] ?? 0) > sentNow || Date.now() > cutBy) break;
  }
  await sleep(2000);
  after = memory(cache.pid).rss;
  const peak = sampler.stop();
  for (const r of readers) r.socket?.destroy();
  const result = {
    cli: a.cli,
    clients,
    addresses,
    fileMiB: size / MIB,
    served,
    refused,
    otherClient: { status: other.status, correct: other.sha256 === sha256, ms: other.ms },
    rssMiB: { before: +(before / MIB).toFixed(1), during: +(during / MIB).toFixed(1), peak: +(peak.max / MIB).toFixed(1), afterCut: +(after / MIB).toFixed(1) },
    growthMiB: +((peak.max - before) / MIB).toFixed(1),
    elapsedS: +((Date.now() - t0) / 1000).toFixed(1),
    refusedMetric: stats.split("\n").filter((l) => l.startsWith("cache_io_cache_downloads_refused_total{")),
  };
  process.stdout.write(a.json ? `${JSON.stringify(result)}\n` : `${JSON.stringify(result, null, 2)}\n`);
  await cache.stop();
  await origin.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
