// Resume state of a ranged fill: `<root>/tmp/<key>.ranged` (the temp file, written in
// place) and `<key>.ranged.json` beside it, rewritten (fsynced, renamed) after each
// part's bytes are fsynced. It names the object version (size, validator) and the
// part layout, so a restart fetches only the missing parts of the same version.
import { open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Version } from "./plan.js";

/** Resume state older than this is removed by the startup scan. */
export const RESUME_MAX_AGE_MS = 24 * 3600_000;
const DATA_SUFFIX = ".ranged";
const STATE_SUFFIX = ".ranged.json";

export interface ResumeState extends Version {
  v: 1;
  key: string;
  url: string;
  partSize: number;
  minFileSize: number;
  /** Indexes of the parts whose bytes are synced. */
  done: number[];
}

export function resumePaths(tmpDir: string, key: string): { data: string; state: string } {
  return { data: join(tmpDir, key + DATA_SUFFIX), state: join(tmpDir, key + STATE_SUFFIX) };
}

/** The key whose resumable fill a temp file name belongs to (its data or its state), or null. */
export function resumableKey(name: string): string | null {
  const m = /^([0-9a-f]{64})\.ranged(\.json)?$/.exec(name);
  return m ? m[1]! : null;
}

/** The saved state of `key`'s fill, or null when there is none or it is unreadable. */
export async function loadState(tmpDir: string, key: string): Promise<ResumeState | null> {
  try {
    const s = JSON.parse(await readFile(resumePaths(tmpDir, key).state, "utf8")) as Partial<ResumeState>;
    const ok = s.v === 1 && s.key === key && typeof s.url === "string" && Number.isSafeInteger(s.size) && Number.isSafeInteger(s.partSize) &&
      Number.isSafeInteger(s.minFileSize) && Array.isArray(s.done) && s.done.every((i) => Number.isSafeInteger(i) && i >= 0) &&
      (s.etag === undefined || typeof s.etag === "string") && (s.lastModified === undefined || typeof s.lastModified === "string");
    return ok ? (s as ResumeState) : null;
  } catch {
    return null;
  }
}

/** Writes the state after each synced part, one write at a time (a crash leaves the last complete one). */
export class StateWriter {
  #chain: Promise<void> = Promise.resolve();
  readonly #done: Set<number>;

  constructor(
    private readonly tmpDir: string,
    private readonly state: Omit<ResumeState, "done">,
    done: Iterable<number> = [],
  ) {
    this.#done = new Set(done);
  }

  /** Record part `index` as synced; resolves when the state file says so on disk. */
  markDone(index: number): Promise<void> {
    this.#done.add(index);
    this.#chain = this.#chain.then(() => this.#write());
    return this.#chain;
  }

  /** Write the state now (the fill's start: the version it is bound to). */
  save(): Promise<void> {
    this.#chain = this.#chain.then(() => this.#write());
    return this.#chain;
  }

  async #write(): Promise<void> {
    const { state } = resumePaths(this.tmpDir, this.state.key);
    const temp = `${state}.tmp`;
    const full: ResumeState = { ...this.state, done: [...this.#done].sort((a, b) => a - b) };
    await writeFile(temp, JSON.stringify(full), { mode: 0o600 });
    const fh = await open(temp, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, state);
  }
}

/** Remove a fill's resume files (it published, or its state is of another version). */
export async function removeResume(tmpDir: string, key: string): Promise<void> {
  const p = resumePaths(tmpDir, key);
  await Promise.all([rm(p.state, { force: true }), rm(`${p.state}.tmp`, { force: true }), rm(p.data, { force: true })]);
}
