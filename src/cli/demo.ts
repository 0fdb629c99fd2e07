// `cache-io demo`: the whole path on one machine, for a newcomer. A throttled local
// origin, the node cache on a temp root, pods annotated and injected through the real
// decide(), their init command run with real curl as the kubelet would, and the file
// the app would see read in place and checked.
import type { V1Pod } from "@kubernetes/client-node";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startCache } from "../cache/index.js";
import { hostPathOf, runInitContainer } from "../cache/kubelet.js";
import { parsePolicy } from "../policy/load.js";
import type { Policy } from "../policy/schema.js";
import { logger } from "../shared/log.js";
import { ANNOTATION, RESERVED } from "../shared/protocol.js";
import { decide } from "../webhook/decide.js";

export interface DemoOptions {
  sizeMib?: string;
  originRateMbps?: string;
  keep?: boolean;
}

const say = (line = "") => process.stdout.write(`${line}\n`);

function positive(value: string | undefined, flag: string, fallback: number): number {
  const n = Number(value ?? fallback);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} ${JSON.stringify(value)} must be a positive number`);
  return n;
}

/** Write `bytes` random bytes to `path`; returns their sha256. */
async function makeFile(path: string, bytes: number): Promise<string> {
  const hash = createHash("sha256");
  const out = createWriteStream(path);
  for (let left = bytes; left > 0; left -= 2 ** 20) {
    const chunk = randomBytes(Math.min(left, 2 ** 20));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => {
    out.once("error", reject);
    out.end(() => resolve());
  });
  return hash.digest("hex");
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 2 ** 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** A minimal origin: one file, throttled to `rate` bytes/s, with ETag and Last-Modified. */
async function startDemoOrigin(file: string, size: number, sha256: string, rate: number): Promise<{ server: Server; url: string; gets: () => number }> {
  let gets = 0;
  const headers = { "content-length": size, etag: `"${sha256.slice(0, 16)}"`, "last-modified": new Date().toUTCString(), "content-type": "application/octet-stream" };
  const server = createServer(async (req, res) => {
    if (req.url !== "/models/model.bin") return void res.writeHead(404).end("not found\n");
    if (req.headers["if-none-match"] === headers.etag) return void res.writeHead(304, headers).end();
    res.writeHead(200, headers);
    if (req.method === "HEAD") return void res.end();
    gets++;
    const started = Date.now();
    let sent = 0;
    for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) {
      sent += (chunk as Buffer).length;
      const due = started + (sent / rate) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      if (res.destroyed) return;
      if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
    }
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/model.bin`, gets: () => gets };
}

function inject(name: string, files: string, policy: Policy, mode: "mount" | "copy"): V1Pod {
  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", annotations: { [ANNOTATION.files]: files, [ANNOTATION.mode]: mode } },
    spec: { containers: [{ name: "app", image: "registry.example/app:1", command: ["/app/serve", "--model", "/cache/model.bin"] }] },
  };
  const d = decide(pod, policy, { namespace: "default", copyOnly: false });
  if (d.action !== "mutate") throw new Error(`the webhook did not inject the demo pod: ${"message" in d ? d.message : d.reason}`);
  return d.pod;
}

function describeInjection(pod: V1Pod): void {
  const init = pod.spec?.initContainers?.find((c) => c.name === RESERVED.initContainer);
  say(`  webhook injected init container ${init?.name} (${init?.image}), no shell:`);
  say(`    ${[...(init?.command ?? []), ...(init?.args ?? [])].join(" ")}`);
  for (const v of pod.spec?.volumes ?? []) say(`  volume ${v.name}: ${v.hostPath ? `hostPath ${v.hostPath.path} (${v.hostPath.type})` : "emptyDir"}`);
  for (const m of pod.spec?.containers[0]?.volumeMounts ?? []) say(`  app mounts ${m.name} at ${m.mountPath}${m.subPath ? ` (subPath ${m.subPath})` : ""}, readOnly`);
}

interface Step {
  title: string;
  seconds: number;
}

/** Inject a pod, run its init container like the kubelet, and check the file the app would see. */
async function runPod(title: string, pod: V1Pod, sha256: string, emptyDir?: string): Promise<Step> {
  say(`\n== ${title}`);
  describeInjection(pod);
  const init = pod.spec!.initContainers!.find((c) => c.name === RESERVED.initContainer)!;
  say(`  running it with $(NODE_IP) = 127.0.0.1 (as the kubelet expands it)${emptyDir ? `, /cache-io = ${emptyDir}` : ""}:`);
  const run = await runInitContainer(init, {
    fieldValues: { "status.hostIP": "127.0.0.1" },
    mounts: emptyDir ? { [RESERVED.copyDir]: emptyDir } : {},
    onStdout: (text) => text.split("\n").filter(Boolean).forEach((l) => say(`    [cache-io-fetch] ${l}`)),
  });
  if (run.code !== 0) throw new Error(`the init container failed (exit ${run.code}): ${run.stderr.trim()}`);
  const seen = hostPathOf(pod, "app", "/cache/model.bin", emptyDir ? { [RESERVED.copyVolume]: emptyDir } : {});
  const size = (await stat(seen)).size;
  const ok = (await sha256Of(seen)) === sha256;
  say(`  init container done in ${(run.ms / 1000).toFixed(2)} s; the app's /cache/model.bin is ${seen} on the node`);
  say(`  read in place: ${(size / 2 ** 20).toFixed(1)} MiB, sha256 ${ok ? "matches the origin's" : "DOES NOT MATCH"}`);
  if (!ok) throw new Error(`the file at ${seen} does not have the origin's sha256`);
  return { title, seconds: run.ms / 1000 };
}

export async function run(opts: DemoOptions): Promise<void> {
  const sizeMib = positive(opts.sizeMib, "--size-mib", 256);
  const rateMbps = positive(opts.originRateMbps, "--origin-rate-mbps", 60);
  const work = await mkdtemp(join(tmpdir(), "cache-io-demo-"));
  const root = join(work, "node-cache");
  const log = logger("cache");
  log.level = process.env.LOG_LEVEL ?? "warn";
  const closers: (() => Promise<void>)[] = [];
  try {
    await mkdir(join(work, "origin"));
    say(`cache-io demo in ${work}`);
    say(`making a ${sizeMib} MiB file for the origin...`);
    const sha256 = await makeFile(join(work, "origin", "model.bin"), Math.round(sizeMib * 2 ** 20));
    const origin = await startDemoOrigin(join(work, "origin", "model.bin"), Math.round(sizeMib * 2 ** 20), sha256, rateMbps * 1e6);
    closers.push(() => new Promise((r) => origin.server.close(() => r())));
    say(`origin: ${origin.url}, throttled to ${rateMbps} MB/s, sha256 ${sha256}`);

    // No API server runs here to issue and verify pod tokens, so the demo turns identity off
    // (the default, required, would have the cache answer 503: it cannot verify tokens).
    const parsed = parsePolicy(`identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {root: ${JSON.stringify(root)}}`);
    if (!parsed.ok) throw new Error(parsed.errors.join("; "));
    const cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => parsed.policy, log });
    closers.unshift(() => cache.close(1000));
    const policy: Policy = { ...parsed.policy, cache: { ...parsed.policy.cache, port: cache.port } };
    say(`node cache: ${cache.url}, root ${root} (policy: origins.allowPrivate lets it fetch from the loopback origin;`);
    say(`  identity.mode off: no API server here to issue pod tokens; in a cluster the default, required, sends and checks them)`);

    const files = `${origin.url}#sha256=${sha256}&name=model.bin`;
    say(`\npods are annotated  ${ANNOTATION.files}: ${files}`);
    const steps = [
      await runPod("pod 1, mount mode, cold node (the cache fetches from the origin once)", inject("demo-1", files, policy, "mount"), sha256),
      await runPod("pod 2, mount mode, warm node (zero-copy: the same inode, read-only)", inject("demo-2", files, policy, "mount"), sha256),
      await runPod("pod 3, copy mode, warm node (curl copies into the pod's emptyDir)", inject("demo-3", files, policy, "copy"), sha256, await mkdtemp(join(work, "emptydir-"))),
    ];
    say("\n== timings");
    for (const s of steps) say(`  ${s.seconds.toFixed(2).padStart(8)} s  ${s.title}`);
    say(`  origin GETs: ${origin.gets()} for ${steps.length} pods`);
  } finally {
    for (const close of closers) await close();
    if (opts.keep) say(`\nkept ${work} (the node cache root is ${root})`);
    else await rm(work, { recursive: true, force: true });
  }
}
