// Benchmark 5: the webhook (`cache-io webhook`, compiled, its own process) against a
// bare node:https server answering a fixed AdmissionReview of the same size, both
// driven by autocannon over verified TLS; plus the cost of review()/decide() alone.
// Run: npx tsx bench/webhook.ts
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { buildDist, CLI, isMain, main, nodeFlags, ROOT } from "./lib/env.js";
import { finish } from "./lib/finish.js";
import { load, type LoadRun, type LoadTarget } from "./lib/load.js";
import { start, tempDir, waitForLog, type Child } from "./lib/proc.js";
import { reviewCost, type CostResult } from "./lib/review-cost.js";
import { median, ratio } from "./lib/stats.js";

export interface WebhookSettings {
  /** Seconds per autocannon run. */
  seconds: number;
  /** Timed runs per server at peak and at half peak (alternating servers). */
  rounds: number;
  /** Connections at peak (kube-apiserver keeps several open to a webhook). */
  connections: number;
  /** Connections at half peak. */
  halfConnections: number;
  costIterations: number;
  costRuns: number;
  /** LOG_LEVEL of the webhook process; "info" is what it ships with (one line per review). */
  logLevel: string;
}

export const WEBHOOK_DEFAULTS: WebhookSettings = {
  seconds: 8,
  rounds: 3,
  connections: 8,
  halfConnections: 2,
  costIterations: 5000,
  costRuns: 7,
  logLevel: "info",
};

export interface Summary {
  reviewsPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  rssMaxBytes: number;
}

export interface WebhookResult {
  requestBytes: number;
  responseBytes: number;
  /** ratio: webhook / bare; reviewOnlyRatio: a bare server running review() / bare. */
  peak: { webhook: Summary; bare: Summary; reviewOnly: Summary; ratio: number; reviewOnlyRatio: number; runs: LoadRun[] };
  half: { rate: number; webhook: Summary; bare: Summary; reviewOnly: Summary; runs: LoadRun[] };
  cost: CostResult;
  webhookHwmBytes: number;
}

const REVIEW_FILE = join(ROOT, "examples", "admission-review.json");

/** POST the review once with a verifying client; the webhook's exact answer becomes the baseline's. */
function postOnce(port: number, ca: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, servername: "localhost", path: "/mutate", method: "POST", ca, headers: { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`webhook answered ${res.statusCode}: ${text}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function startServers(s: WebhookSettings, dir: string, body: string) {
  const webhook = start(process.execPath, [...nodeFlags(), CLI, "webhook", "--port", "0", "--certs", dir], { env: { LOG_LEVEL: s.logLevel } });
  const wPort = Number((await waitForLog(webhook, /listening on https:\/\/127\.0\.0\.1:(\d+)/))[1]);
  const ca = readFileSync(join(dir, "ca.crt"), "utf8");
  const expect = await postOnce(wPort, ca, body);
  if (!expect.includes('"patchType":"JSONPatch"')) throw new Error(`the webhook did not patch the benchmark pod: ${expect}`);
  const responseFile = join(dir, "response.json");
  writeFileSync(responseFile, expect);
  const bare = (mode: string) => start(process.execPath, ["--import", "tsx", join(ROOT, "bench", "lib", "bare-https.ts"), dir, mode, responseFile], { cwd: ROOT });
  const [fixed, reviewOnly] = [bare("fixed"), bare("review")];
  const port = async (c: Child) => Number((await waitForLog(c, /listening on 127\.0\.0\.1:(\d+)/))[1]);
  const targets: LoadTarget[] = [
    { name: "webhook", port: wPort, pid: webhook.pid, path: "/mutate" },
    { name: "bare", port: await port(fixed), pid: fixed.pid, path: "/mutate" },
    { name: "review-only", port: await port(reviewOnly), pid: reviewOnly.pid, path: "/mutate" },
  ];
  return { ca, expect, targets, children: [webhook, fixed, reviewOnly] };
}

function summarize(runs: LoadRun[], target: string): Summary {
  const mine = runs.filter((r) => r.target === target);
  const m = (f: (r: LoadRun) => number) => median(mine.map(f));
  return { reviewsPerSec: m((r) => r.reviewsPerSec), p50: m((r) => r.p50), p99: m((r) => r.p99), p999: m((r) => r.p999), rssMaxBytes: Math.max(...mine.map((r) => r.rssMaxBytes)) };
}

/** `rounds` runs per target, rotating which goes first so drift hits all alike. */
async function rounds(targets: LoadTarget[], n: number, run: (t: LoadTarget) => Promise<LoadRun>): Promise<LoadRun[]> {
  const out: LoadRun[] = [];
  for (let i = 0; i < n; i++) {
    const order = [...targets.slice(i % targets.length), ...targets.slice(0, i % targets.length)];
    for (const t of order) {
      const r = await run(t);
      process.stdout.write(`  ${r.target}: ${r.reviewsPerSec.toFixed(0)} reviews/s, p50 ${r.p50} ms, p99 ${r.p99} ms, p99.9 ${r.p999} ms\n`);
      out.push(r);
    }
  }
  return out;
}

export async function benchWebhook(s: WebhookSettings = WEBHOOK_DEFAULTS): Promise<WebhookResult> {
  const dir = await tempDir("webhook");
  const body = JSON.stringify(JSON.parse(readFileSync(REVIEW_FILE, "utf8")));
  const { ca, expect, targets, children } = await startServers(s, dir, body);
  try {
    const base = { ca, body, expect };
    process.stdout.write("webhook: warm-up\n");
    for (const t of targets) await load(t, { ...base, seconds: 2, connections: s.connections });
    process.stdout.write(`webhook: peak, ${s.connections} connections, ${s.rounds} x ${s.seconds} s per server\n`);
    const peakRuns = await rounds(targets, s.rounds, (t) => load(t, { ...base, seconds: s.seconds, connections: s.connections }));
    const webhook = summarize(peakRuns, "webhook");
    const rate = Math.max(1, Math.round(webhook.reviewsPerSec / 2));
    process.stdout.write(`webhook: half of the webhook's peak, ${rate} reviews/s, ${s.halfConnections} connections\n`);
    const halfRuns = await rounds(targets, s.rounds, (t) => load(t, { ...base, seconds: s.seconds, connections: s.halfConnections, overallRate: rate }));
    const hwm = halfRuns.concat(peakRuns).filter((r) => r.target === "webhook").map((r) => r.hwmBytes);
    process.stdout.write("webhook: review()/decide() alone\n");
    const [bare, reviewOnly] = [summarize(peakRuns, "bare"), summarize(peakRuns, "review-only")];
    return {
      requestBytes: Buffer.byteLength(body),
      responseBytes: Buffer.byteLength(expect),
      peak: { webhook, bare, reviewOnly, ratio: ratio(webhook.reviewsPerSec, bare.reviewsPerSec), reviewOnlyRatio: ratio(reviewOnly.reviewsPerSec, bare.reviewsPerSec), runs: peakRuns },
      half: { rate, webhook: summarize(halfRuns, "webhook"), bare: summarize(halfRuns, "bare"), reviewOnly: summarize(halfRuns, "review-only"), runs: halfRuns },
      cost: reviewCost(body, s.costIterations, s.costRuns),
      webhookHwmBytes: Math.max(...hwm),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

if (isMain(import.meta.url)) {
  main(async () => {
    await buildDist();
    const result = await benchWebhook();
    await finish("webhook", WEBHOOK_DEFAULTS, result);
    process.stdout.write(`webhook: ${result.peak.ratio.toFixed(2)}x the bare baseline's reviews/s\n`);
  });
}
