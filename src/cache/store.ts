// The cache's disk layout: `<root>/objects/<key>/data` (what pods mount) with
// `meta.json` beside it, temp files in `<root>/tmp/` (same filesystem, so rename is
// atomic); publishing (fsync, rename, fsync dir) and the startup scan (which keeps
// resumable ranged fills).
import { createHash, randomBytes } from "node:crypto";
import type { Dirent } from "node:fs";
import { lstat, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KEY_PATTERN, OBJECT_FILE, SHA256_HEX, objectDir } from "../shared/protocol.js";
import { RESUME_MAX_AGE_MS, loadState, resumableKey } from "./fills/sidecar.js";

export const META_FILE = "meta.json";

export interface ObjectMeta {
  key: string;
  url: string;
  size: number;
  sha256: string;
  etag?: string;
  lastModified?: string;
  /** When these bytes were fetched (ISO 8601). */
  fetchedAt: string;
  /** When the origin last confirmed them (ISO 8601); revalidation is due `revalidateAfter` later. */
  validatedAt: string;
  /** Inode of `data` when this meta was written: a `data` and a `meta.json` belong together only if it matches. */
  ino: string;
  /** ctime and mtime of `data` (ns) when it was published or last verified: a change means someone wrote into it. Absent in older metas. */
  ctimeNs?: string;
  mtimeNs?: string;
  /** The namespace of the caller whose request filled the file (its disk share); absent: anonymous or pre-warm. */
  namespace?: string;
}

/** What identifies the bytes of a `data` file on disk without reading them. */
export type DataIdentity = Pick<ObjectMeta, "ino" | "size" | "ctimeNs" | "mtimeNs">;

export interface ScanResult {
  entries: ObjectMeta[];
  removed: string[];
}

export class Store {
  readonly objectsDir: string;
  readonly tmpDir: string;

  constructor(readonly root: string) {
    this.objectsDir = join(root, "objects");
    this.tmpDir = join(root, "tmp");
  }

  dir(key: string): string {
    return objectDir(this.root, key);
  }

  dataPath(key: string): string {
    return join(this.dir(key), OBJECT_FILE);
  }

  /** A fresh temp path for a fill of `key`. */
  tempPath(key: string, suffix = "part"): string {
    return join(this.tmpDir, `${key}.${randomBytes(6).toString("hex")}.${suffix}`);
  }

  /** The complete entry for `key`, or null when there is none (or it is inconsistent). */
  async read(key: string): Promise<ObjectMeta | null> {
    let meta: ObjectMeta;
    try {
      meta = parseMeta(await readFile(join(this.dir(key), META_FILE), "utf8"), key);
      const st = await lstat(this.dataPath(key), { bigint: true });
      if (!st.isFile() || st.ino.toString() !== meta.ino || Number(st.size) !== meta.size) return null;
    } catch {
      return null;
    }
    return meta;
  }

  /**
   * Make a verified temp file the key's `data`: fsync it, write the meta beside it,
   * rename both into place, fsync the directories. Readers see the old or the new
   * file, never a partial one; a crash in between leaves a mismatch the scan removes.
   */
  async publish(tempFile: string, meta: Omit<ObjectMeta, "ino">): Promise<ObjectMeta> {
    await this.sync(tempFile);
    const ino = (await stat(tempFile, { bigint: true })).ino.toString();
    const dir = this.dir(meta.key);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await this.move(tempFile, this.dataPath(meta.key));
    // rename(2) changes the inode's ctime: the identity recorded is the one after it.
    const id = await this.identity(meta.key);
    if (id?.ino !== ino) throw new Error(`${this.dataPath(meta.key)} was replaced while it was being published`);
    const full: ObjectMeta = { ...meta, ...id, size: meta.size };
    const metaTemp = await this.#writeTemp(meta.key, full);
    await rename(metaTemp, join(dir, META_FILE));
    await this.sync(dir);
    return full;
  }

  /** Inode, size, ctime and mtime of the key's `data` now, or null when there is no regular file. */
  async identity(key: string): Promise<DataIdentity | null> {
    const st = await lstat(this.dataPath(key), { bigint: true }).catch(() => null);
    if (!st?.isFile()) return null;
    return { ino: st.ino.toString(), size: Number(st.size), ctimeNs: st.ctimeNs.toString(), mtimeNs: st.mtimeNs.toString() };
  }

  /** The sha256 of the key's `data` as it is on disk now. */
  async hashData(key: string): Promise<string> {
    const hash = createHash("sha256");
    const fh = await open(this.dataPath(key), "r");
    try {
      for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) hash.update(chunk as Buffer);
    } finally {
      await fh.close();
    }
    return hash.digest("hex");
  }

  /** fsync a file or directory (an instance method so tests can observe the order of sync and rename). */
  sync(path: string): Promise<void> {
    return fsync(path);
  }

  /** rename(2) into place, first removing an empty directory in the way (a kubelet subPath of a missing file). */
  move(from: string, to: string): Promise<void> {
    return renameOverDir(from, to);
  }

  /** Rewrite the meta of the current `data` atomically (after a revalidation). */
  async writeMeta(meta: ObjectMeta): Promise<void> {
    const metaTemp = await this.#writeTemp(meta.key, meta);
    await rename(metaTemp, join(this.dir(meta.key), META_FILE));
    await this.sync(this.dir(meta.key));
  }

  /** Remove an entry (eviction). Pods that hold `data` open or bind-mounted keep the inode. */
  async remove(key: string): Promise<void> {
    await rm(join(this.dir(key), META_FILE), { force: true });
    await rm(this.dataPath(key), { force: true });
    await rmdir(this.dir(key)).catch(() => undefined);
  }

  /** Whether a file can be created under the root right now. */
  async writable(): Promise<boolean> {
    const probe = this.tempPath("probe", "probe");
    try {
      await writeFile(probe, "ok");
      await unlink(probe);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Startup: drop every temp file, remove directories that are not cache keys and
   * incomplete entries; keep complete entries and young empty key directories.
   */
  async scan(now: number, graceMs: number): Promise<ScanResult> {
    await this.#clearTmp(now);
    await mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    await mkdir(this.objectsDir, { recursive: true, mode: 0o755 });
    const result: ScanResult = { entries: [], removed: [] };
    for (const d of await readdir(this.objectsDir, { withFileTypes: true })) {
      const entry = KEY_PATTERN.test(d.name) && d.isDirectory() ? await this.read(d.name) : null;
      if (entry) result.entries.push(entry);
      else if (await this.#clear(d, now, graceMs)) result.removed.push(d.name);
    }
    return result;
  }

  /**
   * Empty `<root>/tmp/` but for resumable ranged fills (`<key>.ranged` with its
   * `.ranged.json`) younger than RESUME_MAX_AGE_MS; whether their version is still the
   * origin's is checked when the fill resumes.
   */
  async #clearTmp(now: number): Promise<void> {
    const names = await readdir(this.tmpDir).catch(() => [] as string[]);
    const keep = new Set<string>();
    for (const name of names) {
      const key = resumableKey(name);
      if (!key || !name.endsWith(".json")) continue;
      const [data, state] = [join(this.tmpDir, `${key}.ranged`), join(this.tmpDir, name)];
      const st = await lstat(state).catch(() => null);
      const dt = await lstat(data).catch(() => null);
      if (st?.isFile() && dt?.isFile() && now - st.mtimeMs < RESUME_MAX_AGE_MS && (await loadState(this.tmpDir, key))) keep.add(key);
    }
    for (const name of names) {
      const key = resumableKey(name);
      if (!key || !keep.has(key)) await rm(join(this.tmpDir, name), { recursive: true, force: true });
    }
  }

  /** Remove what is not a complete entry; true when the directory itself went. */
  async #clear(d: Dirent, now: number, graceMs: number): Promise<boolean> {
    const path = join(this.objectsDir, d.name);
    if (!KEY_PATTERN.test(d.name) || !d.isDirectory()) {
      await rm(path, { recursive: true, force: true });
      return true;
    }
    const age = now - (await stat(path)).mtimeMs;
    await rm(join(path, META_FILE), { force: true });
    const data = await lstat(join(path, OBJECT_FILE)).catch(() => null);
    if (data?.isDirectory()) await rmdir(join(path, OBJECT_FILE)).catch(() => undefined);
    else if (data) await unlink(join(path, OBJECT_FILE));
    if (age < graceMs) return false;
    return rmdir(path).then(() => true, () => false);
  }

  async #writeTemp(key: string, meta: ObjectMeta): Promise<string> {
    const path = this.tempPath(key, "meta");
    await writeFile(path, JSON.stringify(meta), { mode: 0o644 });
    await this.sync(path);
    return path;
  }
}

/** fsync a file or a directory by path (fsync applies to the inode, not the descriptor). */
async function fsync(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** rename(2), first removing an empty directory in the way (a kubelet subPath of a missing file). */
async function renameOverDir(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EISDIR" && code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
    await rmdir(to);
    await rename(from, to);
  }
}

function parseMeta(text: string, key: string): ObjectMeta {
  const m = JSON.parse(text) as Partial<ObjectMeta>;
  const ok =
    m.key === key && typeof m.url === "string" && Number.isSafeInteger(m.size) && typeof m.sha256 === "string" &&
    SHA256_HEX.test(m.sha256) && typeof m.ino === "string" && typeof m.fetchedAt === "string" && typeof m.validatedAt === "string" &&
    (m.ctimeNs === undefined || typeof m.ctimeNs === "string") && (m.mtimeNs === undefined || typeof m.mtimeNs === "string") &&
    (m.namespace === undefined || typeof m.namespace === "string");
  if (!ok) throw new Error(`invalid ${META_FILE} for ${key}`);
  return m as ObjectMeta;
}
