// CPU time a process (and, for a master like nginx's, its direct children) has used,
// from /proc/<pid>/stat: utime + stime.
import { readFileSync } from "node:fs";

const TICK_MS = 10; // USER_HZ is 100 on Linux

function own(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Milliseconds of CPU used so far by `pid` plus its live children. */
export function cpuMs(pid: number): number {
  return own(pid) + children(pid).reduce((sum, c) => sum + own(c), 0);
}
