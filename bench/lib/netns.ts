// Per-node NICs for the multi-node benchmark: one network namespace per node, a veth pair
// from it to one bridge in the host namespace (the host's address on that bridge is where
// the origin and the API server listen), and a tbf qdisc on both directions of each link:
// node egress on the namespace's end, node ingress on the host's end. Nothing is routed
// anywhere else: the namespaces reach only the bridge. remove() deletes the veths (their
// qdiscs go with them; first, because a killed cache's orphaned TCP sockets keep a deleted
// namespace, and so its pair, alive for minutes), the namespaces and the bridge; an exit
// handler does the same synchronously on Ctrl-C or a crash. The bridge's alias names the pid that owns it, so a
// leftover of a dead run can be told from a live one (`removeLeftovers`).
import { execFileSync } from "node:child_process";
import { run } from "./proc.js";

const PREFIX = "ciob";
export const BRIDGE = `${PREFIX}0`;
const SUBNET = "10.77.0";
const OWNER = "cache-io bench pid ";

export interface NicNode {
  name: string;
  netns: string;
  ip: string;
  /** The host's end of the veth (its egress is the node's ingress). */
  hostVeth: string;
}

export interface Nics {
  /** The host's address on the bridge: where the nodes reach the origin and the API server. */
  hostIp: string;
  nodes: NicNode[];
  /** Bytes per second per direction of each node's link. */
  rate: number;
  remove(): Promise<void>;
}

const ip = (args: string[]) => run("ip", args, 30_000);
const nodeOf = (i: number): NicNode => ({ name: `node-${i + 1}`, netns: `${PREFIX}-n${i + 1}`, ip: `${SUBNET}.${11 + i}`, hostVeth: `${PREFIX}-h${i + 1}` });

/** The tbf queue's length in time (BENCH_TBF_LATENCY_MS, default 100 ms): what a full link adds to each hop's latency. */
const QUEUE_MS = Number(process.env.BENCH_TBF_LATENCY_MS ?? 100);

/** tbf at `rate` bytes/s: a burst of 10 ms of traffic (at least 64 KiB: one GSO segment), QUEUE_MS of queue. */
export function tbfArgs(dev: string, rate: number): string[] {
  const burst = Math.max(64 * 1024, Math.round(rate / 100));
  return ["qdisc", "add", "dev", dev, "root", "tbf", "rate", `${Math.round(rate * 8)}bit`, "burst", String(burst), "latency", `${QUEUE_MS}ms`];
}

/** Names this module creates that exist now (links in the host namespace, namespaces). */
export function footprint(): string[] {
  const links = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" }).split("\n").map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter((n): n is string => !!n?.startsWith(PREFIX));
  const netns = execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n").map((l) => l.split(" ")[0]!).filter((n) => n.startsWith(`${PREFIX}-`));
  return [...links.map((l) => `link ${l}`), ...netns.map((n) => `netns ${n}`)];
}

/**
 * Delete the host's veth ends first: a killed cache's orphaned TCP sockets keep its
 * namespace (and so the pair) alive for minutes after `ip netns del`; deleting one end of
 * a pair deletes both, so nothing of ours stays visible whatever the kernel still frees.
 */
function removeSync(): void {
  const quiet = (args: string[]) => {
    try {
      execFileSync("ip", args, { stdio: "ignore" });
    } catch {
      // gone already
    }
  };
  const names = footprint().map((l) => l.split(" ") as [string, string]);
  for (const [kind, name] of names) if (kind === "link" && name !== BRIDGE) quiet(["link", "del", name]);
  for (const [kind, name] of names) if (kind === "netns") quiet(["netns", "del", name]);
  quiet(["link", "del", BRIDGE]);
}

function ownerPid(): number | undefined {
  try {
    const alias = /alias (.*)/.exec(execFileSync("ip", ["link", "show", "dev", BRIDGE], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }))?.[1] ?? "";
    return alias.startsWith(OWNER) ? Number(alias.slice(OWNER.length)) : NaN;
  } catch {
    return undefined; // no bridge
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Remove what a dead run left (namespaces ciob-*, links ciob*); refuses while the run that made them lives. */
export function removeLeftovers(): string[] {
  const pid = ownerPid();
  if (pid !== undefined && Number.isFinite(pid) && alive(pid)) throw new Error(`${BRIDGE} belongs to a running benchmark (pid ${pid}): stop it (Ctrl-C) instead`);
  const found = footprint();
  removeSync();
  return found;
}

/**
 * `count` nodes (1..8) on one bridge, each link limited to `rate` bytes/s per direction.
 * Fails, naming the fix, if a previous run's bridge or namespaces exist.
 */
export async function createNics(count: number, rate: number): Promise<Nics> {
  if (process.getuid?.() !== 0) throw new Error("per-node NICs need root (ip netns, veth, tc): run the benchmark as root");
  if (!(count >= 1 && count <= 8)) throw new Error(`1..8 nodes, not ${count}`);
  const left = footprint();
  if (left.length) throw new Error(`left from an earlier run: ${left.join(", ")}; remove them with \`npx tsx bench/peers-nics.ts --clean\``);
  const exit = () => removeSync();
  process.once("exit", exit);
  const nodes = Array.from({ length: count }, (_, i) => nodeOf(i));
  const nics: Nics = {
    hostIp: `${SUBNET}.1`,
    nodes,
    rate,
    remove: async () => {
      process.removeListener("exit", exit);
      for (const n of nodes) await ip(["link", "del", n.hostVeth]).catch(() => undefined);
      for (const n of nodes) await ip(["netns", "del", n.netns]).catch(() => undefined);
      await ip(["link", "del", BRIDGE]).catch(() => undefined);
      const still = footprint();
      if (still.length) throw new Error(`could not remove ${still.join(", ")}`);
    },
  };
  try {
    await ip(["link", "add", BRIDGE, "type", "bridge"]);
    await ip(["link", "set", BRIDGE, "alias", `${OWNER}${process.pid}`]);
    await ip(["addr", "add", `${nics.hostIp}/24`, "dev", BRIDGE]);
    await ip(["link", "set", BRIDGE, "up"]);
    for (const n of nodes) {
      await ip(["netns", "add", n.netns]);
      await ip(["link", "add", n.hostVeth, "type", "veth", "peer", "name", "eth0", "netns", n.netns]);
      await ip(["link", "set", n.hostVeth, "master", BRIDGE, "up"]);
      await ip(["-n", n.netns, "addr", "add", `${n.ip}/24`, "dev", "eth0"]);
      await ip(["-n", n.netns, "link", "set", "eth0", "up"]);
      await ip(["-n", n.netns, "link", "set", "lo", "up"]);
      await run("tc", ["-n", n.netns, ...tbfArgs("eth0", rate)], 30_000);
      await run("tc", tbfArgs(n.hostVeth, rate), 30_000);
    }
    return nics;
  } catch (err) {
    await nics.remove().catch(() => undefined);
    throw err;
  }
}

/** argv that runs `cmd args` in node i's namespace. */
export function inNetns(n: NicNode, cmd: string, args: string[]): [string, string[]] {
  return ["ip", ["netns", "exec", n.netns, cmd, ...args]];
}
