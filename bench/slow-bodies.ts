// The webhook under slow bodies: N connections each announce a 3 MiB review, send all
// but its last byte and stall. Measures the webhook process's RSS (VmRSS from /proc)
// before and at peak, what each stalled connection was answered and when, and how long
// an ordinary review took meanwhile. `--unlimited` lifts the serving limits (as before
// they existed), to compare. `--dense` sends complete reviews instead, each ~0.8 MB of
// 33,000 small objects (just under the JSON value cap), all at once: the parse cost.
// Run: npx tsx bench/slow-bodies.ts [--connections 60] [--unlimited] [--dense] [--from-source] [-- <webhook flags>]
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { connect } from "node:tls";
import { buildDist, CLI, isMain, main, ROOT } from "./lib/env.js";
import { sleep, start, tempDir, waitForLog, type Child } from "./lib/proc.js";

const BODY = 3 * 1024 * 1024;
const UNLIMITED = ["--max-in-flight-bytes", String(2 ** 40), "--body-timeout-ms", String(3_600_000), "--max-connections", String(1_000_000)];

interface Settings {
  connections: number;
  unlimited: boolean;
  dense: boolean;
  /** Passed to `cache-io webhook` (what follows `--` on the command line), e.g. --max-in-flight-bytes 8388608. */
  webhookArgs: string[];
  fromSource: boolean;
  /** How long to watch after the bodies are sent. */
  watchMs: number;
}

export interface SlowBodiesResult {
  connections: number;
  scenario: "stalled 3 MiB bodies" | "dense complete reviews";
  limits: "default" | "unlimited";
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssGrowthMiB: number;
  /** Status answered to each stalled connection ("none" while still open at the end). */
  answers: Record<string, number>;
  /** Slowest answer to a stalled connection, ms after it was opened. */
  slowestAnswerMs: number;
  /** An ordinary review sent while the bodies stall. */
  reviewDuringMs: number;
  reviewDuringStatus: number;
}

function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
}

const EXAMPLE = () => readFileSync(join(ROOT, "examples", "admission-review.json"));

/** The example review with 33,000 extra env entries: ~0.8 MB and ~99,000 JSON values. */
function denseReview(): Buffer {
  const review = JSON.parse(EXAMPLE().toString("utf8"));
  review.request.object.spec.containers[0].env = Array.from({ length: 33_000 }, (_, i) => ({ name: `E${i}`, value: "v" }));
  return Buffer.from(JSON.stringify(review));
}

function review(port: number, ca: string, body: Buffer = EXAMPLE()): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", servername: "localhost", port, ca, method: "POST", path: "/mutate", agent: false, headers: { "content-type": "application/json" } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: Math.round(performance.now() - t0) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** One stalled body; resolves with the status the webhook answered (or "reset"/"none") and when. */
function stall(port: number, ca: string, until: Promise<void>): Promise<{ answer: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let text = "";
    let done = false;
    const finish = (answer: string) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ answer, ms: Math.round(performance.now() - t0) });
    };
    const socket = connect({ host: "127.0.0.1", servername: "localhost", port, ca }, () => {
      socket.write(`POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: ${BODY}\r\n\r\n`);
      socket.write(Buffer.alloc(BODY - 1, 0x20));
    });
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
      if (status) finish(status);
    });
    socket.on("error", () => finish("reset"));
    socket.on("close", () => finish("reset"));
    void until.then(() => finish("none"));
  });
}

async function startWebhook(s: Settings): Promise<{ child: Child; port: number; ca: string }> {
  const certs = await tempDir("slow-bodies-certs");
  const entry = s.fromSource ? ["--import", "tsx", join(ROOT, "src", "cli", "main.ts")] : [CLI];
  const args = [...entry, "webhook", "--port", "0", "--certs", certs, ...(s.unlimited ? UNLIMITED : []), ...s.webhookArgs];
  const child = start(process.execPath, args, { cwd: ROOT, env: { LOG_LEVEL: "error" } });
  const port = Number((await waitForLog(child, /listening on https:\/\/[^\s]+:(\d+)/))[1]);
  return { child, port, ca: readFileSync(join(certs, "ca.crt"), "utf8") };
}

export async function slowBodies(s: Settings): Promise<SlowBodiesResult> {
  if (!s.fromSource) await buildDist();
  const { child, port, ca } = await startWebhook(s);
  try {
    for (let i = 0; i < 20; i++) await review(port, ca); // warm up: JIT, TLS, policy
    await sleep(1000);
    const before = rssMiB(child.pid);
    let peak = before;
    let stop!: () => void;
    const until = new Promise<void>((r) => (stop = r));
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(child.pid))), 50);
    const dense = s.dense ? denseReview() : undefined;
    const stalls = Array.from({ length: s.connections }, () =>
      dense ? review(port, ca, dense).then((r) => ({ answer: String(r.status), ms: r.ms }), () => ({ answer: "reset", ms: 0 })) : stall(port, ca, until),
    );
    await sleep(500);
    const during = await review(port, ca);
    const timer = setTimeout(stop, s.watchMs);
    const results = await Promise.all(stalls);
    clearTimeout(timer);
    await sleep(Math.max(0, 1000));
    clearInterval(sampler);
    peak = Math.max(peak, rssMiB(child.pid));
    const answers: Record<string, number> = {};
    for (const r of results) answers[r.answer] = (answers[r.answer] ?? 0) + 1;
    return {
      connections: s.connections,
      scenario: s.dense ? "dense complete reviews" : "stalled 3 MiB bodies",
      limits: s.unlimited ? "unlimited" : "default",
      rssBeforeMiB: before,
      rssPeakMiB: peak,
      rssGrowthMiB: Math.round((peak - before) * 10) / 10,
      answers,
      slowestAnswerMs: Math.max(...results.filter((r) => r.answer !== "none").map((r) => r.ms), 0),
      reviewDuringMs: during.ms,
      reviewDuringStatus: during.status,
    };
  } finally {
    await child.stop();
  }
}

function settings(all: string[]): Settings {
  const split = all.indexOf("--");
  const argv = split < 0 ? all : all.slice(0, split);
  const at = argv.indexOf("--connections");
  return {
    connections: at >= 0 ? Number(argv[at + 1]) : 60,
    unlimited: argv.includes("--unlimited"),
    dense: argv.includes("--dense"),
    webhookArgs: split < 0 ? [] : all.slice(split + 1),
    fromSource: argv.includes("--from-source"),
    watchMs: 8000,
  };
}

if (isMain(import.meta.url)) {
  main(async () => {
    const result = await slowBodies(settings(process.argv.slice(2)));
    process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  });
}
