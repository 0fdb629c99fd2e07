// The throttled origin in a process of its own (so its pacing timers never share an
// event loop with the cache or the benchmark): test/support/origin.ts driven over IPC.
// Run by origin.ts as `node --import tsx bench/lib/origin-child.ts <bytes per second, 0: unthrottled> [ranges]`
// (the rate is per response, so per connection; `ranges` serves byte ranges).
import { startOrigin } from "../../test/support/origin.js";
import type { OriginRequest } from "./origin.js";

const rate = Number(process.argv[2]);
if (!process.send || !(rate >= 0)) throw new Error("usage (with an IPC channel): origin-child.ts <bytes per second, 0: unthrottled> [ranges]");
const origin = await startOrigin({ ...(rate > 0 ? { rate } : {}), ranges: process.argv[3] === "ranges" });

async function answer(m: OriginRequest): Promise<unknown> {
  switch (m.op) {
    case "putFile":
      return origin.putFile(m.path, m.file);
    case "stats":
      return { ...origin.stats };
    case "rate":
      origin.rate = m.rate > 0 ? m.rate : undefined;
      return { rate: m.rate };
  }
}

process.on("message", (m: OriginRequest & { id: number }) => {
  answer(m).then(
    (value) => process.send!({ id: m.id, value }),
    (err: Error) => process.send!({ id: m.id, error: err.message }),
  );
});
process.send({ id: 0, value: { port: origin.port } });
process.on("disconnect", () => process.exit(0));
