// Leftovers of test nodes whose run died (kill -9, a crashed worker): node dirs no live
// process names, their mounts, the bridges and kubernetes-Service DNAT rules of nodes
// that are gone. `npx tsx test/nodes/cli.ts clean` runs it; run it when no test runs (a
// node being started, before its processes are up, looks dead).
import { readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deleteLink, pidsMentioning, removeIdlePortmapChains, splitRule, unmountUnder } from "./host.js";
import { run } from "./proc.js";

const DIR_PREFIX = "cache-io-node-";

/** Removes what dead test nodes left; returns what it removed (for the log). */
export async function sweepLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  const live = new Set<string>();
  for (const e of readdirSync(tmpdir())) {
    if (!e.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), e);
    if (pidsMentioning(dir).length) {
      live.add(dir);
      continue;
    }
    await unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  // A bridge cio-nN whose node IP no live relay or kubelet uses any more.
  const links = (await run("ip", ["-o", "link", "show", "type", "bridge"])).stdout;
  for (const m of links.matchAll(/^\d+: (cio-n\d+)[:@]/gm)) {
    const index = m[1]!.slice("cio-n".length);
    if (!pidsMentioning(`--node-ip=10.88.${index}.1\0`).length) {
      await deleteLink(m[1]!);
      removed.push(`bridge ${m[1]}`);
    }
  }
  const nat = (await run("iptables-save", ["-t", "nat"])).stdout;
  for (const line of nat.split("\n")) {
    const r = /^-A (PREROUTING) (-d 10\.96\.0\.1\/32 -i (cio-n\d+) .*)$/.exec(line) ?? /^-A (PREROUTING) (-i (cio-n\d+) -d 10\.96\.0\.1\/32 .*)$/.exec(line);
    if (r && !(await run("ip", ["link", "show", "dev", r[3]!])).stdout) {
      await run("iptables", ["-t", "nat", "-D", r[1]!, ...splitRule(r[2]!)]);
      removed.push(`DNAT rule of ${r[3]}`);
    }
  }
  await removeIdlePortmapChains();
  removed.push(...[...live].map((d) => `(kept ${d}: a live process uses it)`));
  return removed;
}
