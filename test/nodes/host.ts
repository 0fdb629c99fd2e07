// What a test node leaves on the host, found and removed precisely: mounts under its
// directory, its bridge, network namespaces its sandboxes used, processes whose command
// line names its directory (containerd's shims), the kubelet's /var/log/containers links.
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { must, run } from "./proc.js";

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo, octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter(Boolean)
    .map((l) => decode(l.split(" ")[4]!))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmount everything under `dir` (lazily, so a busy mount cannot stop the teardown). */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const ms = mountsUnder(dir);
    if (!ms.length) return;
    for (const m of new Set(ms)) await run("umount", ["-l", m]);
  }
}

export async function linkExists(name: string): Promise<boolean> {
  return (await run("ip", ["link", "show", "dev", name])).code === 0;
}

export async function createBridge(name: string, cidr: string): Promise<void> {
  if (await linkExists(name)) throw new Error(`a link named ${name} exists already (a test node left over, or another run): remove it with \`ip link del ${name}\``);
  await must("ip", ["link", "add", name, "type", "bridge"]);
  await must("ip", ["addr", "add", cidr, "dev", name]);
  await must("ip", ["link", "set", name, "up"]);
}

export async function deleteLink(name: string): Promise<void> {
  if (await linkExists(name)) await must("ip", ["link", "del", name]);
}

/** Remove network namespaces (paths like /var/run/netns/cni-...): unmount the bind mount, delete the file. */
export async function deleteNetns(paths: string[]): Promise<void> {
  for (const p of paths) {
    await run("umount", ["-l", p]);
    rmSync(p, { force: true });
  }
}

/** PIDs whose command line mentions `needle` (e.g. a node's containerd socket), except ours. */
export function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8").includes(needle)) out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The kubelet links container logs into /var/log/containers (a fixed path); drop links into `dir`. */
export function removeLogLinksInto(dir: string): void {
  const d = "/var/log/containers";
  if (!existsSync(d)) return;
  for (const e of readdirSync(d)) {
    try {
      if (readlinkSync(join(d, e)).startsWith(`${dir}/`)) rmSync(join(d, e), { force: true });
    } catch {
      // not a link
    }
  }
}

/** libcni caches results in /var/lib/cni/results/<network>-<container>-<ifname>; drop ours. */
export function removeCniCache(network: string): void {
  const d = "/var/lib/cni/results";
  if (!existsSync(d)) return;
  for (const e of readdirSync(d)) if (e.startsWith(`${network}-`)) rmSync(join(d, e), { force: true });
}

export function cniCacheEntries(network: string): string[] {
  const d = "/var/lib/cni/results";
  return existsSync(d) ? readdirSync(d).filter((e) => e.startsWith(`${network}-`)) : [];
}

/**
 * The portmap CNI plugin (hostPort) leaves its shared nat chains behind. Once no port
 * mapping of any container is left (no CNI-DN-* chain), remove the jumps and the chains.
 */
export async function removeIdlePortmapChains(): Promise<void> {
  const nat = (await run("iptables-save", ["-t", "nat"])).stdout;
  if (/^:CNI-DN-/m.test(nat) || !/^:CNI-HOSTPORT-/m.test(nat)) return;
  for (const line of nat.split("\n")) {
    const m = /^-A (PREROUTING|OUTPUT|POSTROUTING) (.*-j CNI-HOSTPORT-\S+)$/.exec(line);
    if (m) await run("iptables", ["-t", "nat", "-D", m[1]!, ...splitRule(m[2]!)]);
  }
  for (const chain of ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"]) {
    await run("iptables", ["-t", "nat", "-F", chain]);
    await run("iptables", ["-t", "nat", "-X", chain]);
  }
}

/** Split an iptables-save rule into argv (double-quoted words, as iptables-save writes comments). */
export function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]!));
}
