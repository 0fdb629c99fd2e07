// The pods of one node, started before the clock does: run in the node's network
// namespace as `node --import tsx pods-child.ts <count> <base64 JSON of curl's argv>`, it
// prints "ready", waits for a line on stdin, then starts `count` curls at once (the
// injected init container's command) and prints one JSON line per curl as it ends:
// {"code": exit code, "end": Date.now(), "err": stderr's tail}. Spawning happens here, so
// 80 spawns are spread over 8 processes and never stall the benchmark's own event loop.
// The end of stdin kills the curls that still run.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

const count = Number(process.argv[2]);
const args = JSON.parse(Buffer.from(process.argv[3] ?? "", "base64").toString()) as string[];
if (!(count >= 1 && count <= 100) || !Array.isArray(args)) throw new Error("usage: pods-child.ts <1..100> <base64 JSON argv of curl>");

const curls = new Set<ChildProcess>();
let ended = 0;

function one(): void {
  const c = spawn("curl", args, { stdio: ["ignore", "ignore", "pipe"] });
  curls.add(c);
  let err = "";
  c.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-500)));
  c.on("close", (code) => {
    curls.delete(c);
    process.stdout.write(`${JSON.stringify({ code, end: Date.now(), err })}\n`);
    if (++ended === count) process.exit(0);
  });
}

// The first line starts the pods; the end of stdin (the benchmark is gone or gives up) stops them.
const lines = createInterface({ input: process.stdin });
lines.once("line", () => {
  for (let i = 0; i < count; i++) one();
});
lines.once("close", () => {
  for (const c of curls) c.kill("SIGKILL");
  process.exit(1);
});
process.stdout.write("ready\n");
