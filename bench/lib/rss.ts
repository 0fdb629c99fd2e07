// Memory of a running process from /proc/<pid>/status: VmRSS now, VmHWM (peak RSS
// since start), and a sampler that records RSS over a phase of a benchmark.
import { readFileSync } from "node:fs";

export interface Memory {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size since the process started, bytes. */
  hwm: number;
}

function field(status: string, name: string): number {
  const m = status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
  if (!m?.[1]) throw new Error(`no ${name} in /proc status`);
  return Number(m[1]) * 1024;
}

export function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return { rss: field(status, "VmRSS"), hwm: field(status, "VmHWM") };
}

export interface RssSampler {
  /** Stop sampling; returns the samples (bytes) and the process's peak so far. */
  stop(): { samples: number[]; min: number; max: number; hwm: number };
}

/** Sample a process's RSS every `everyMs` until stopped (or it exits). */
export function sampleRss(pid: number, everyMs = 50): RssSampler {
  const samples: number[] = [];
  let hwm = 0;
  const take = () => {
    try {
      const m = memory(pid);
      samples.push(m.rss);
      hwm = m.hwm;
    } catch {
      clearInterval(timer); // the process is gone
    }
  };
  const timer = setInterval(take, everyMs);
  take();
  return {
    stop() {
      clearInterval(timer);
      take();
      return { samples, min: Math.min(...samples), max: Math.max(...samples), hwm };
    },
  };
}
