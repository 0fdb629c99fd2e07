// Secret material from a mounted Kubernetes Secret directory, re-read when the Secret
// changes. The kubelet updates a Secret volume by swapping the `..data` symlink to a new
// timestamped directory, so a readlink of it (or, for a plain directory, the files' mtimes)
// is a cheap change check, done at most once per poll interval and only when the material
// is used. Values are never logged: messages name the file, never its content.
import { readFile, readlink, stat } from "node:fs/promises";
import { join } from "node:path";
import { CacheError } from "../errors.js";

export interface SecretFiles {
  /** The current values of the named files (trailing newline trimmed); throws a clear error when one is missing. */
  read(): Promise<Record<string, string>>;
}

export interface SecretFilesOptions {
  /** Keep values as they are (multi-line files such as a key.json); default: one line, trailing newline trimmed. */
  raw?: boolean;
  /** Minimum time between change checks (default 1000 ms). */
  pollMs?: number;
  now?: () => number;
}

/** The credential's material is missing or unusable: the fill fails with 502 and this message (which never holds a value). */
export class SecretMaterialError extends CacheError {
  constructor(message: string) {
    super(502, "policy", message);
    this.name = "SecretMaterialError";
  }
}

async function version(dir: string, names: readonly string[]): Promise<string> {
  const link = await readlink(join(dir, "..data")).catch(() => undefined);
  if (link !== undefined) return `link:${link}`;
  const parts = await Promise.all(
    names.map((n) => stat(join(dir, n)).then((s) => `${s.ino}:${s.mtimeMs}:${s.size}`, () => "missing")),
  );
  return parts.join("|");
}

async function readAll(credential: string, dir: string, names: readonly string[], raw: boolean): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of names) {
    let text: string;
    try {
      text = await readFile(join(dir, n), "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      throw new SecretMaterialError(
        `credential ${credential}: cannot read ${join(dir, n)} (${code}); mount a Secret with key "${n}" at ${dir}`,
      );
    }
    const value = raw ? text : text.replace(/\r?\n$/, "");
    if (!value) throw new SecretMaterialError(`credential ${credential}: ${join(dir, n)} is empty; put the value in the Secret's key "${n}"`);
    if (!raw && /[\r\n\0]/.test(value)) throw new SecretMaterialError(`credential ${credential}: ${join(dir, n)} holds a line break or NUL inside the value; store a single line`);
    out[n] = value;
  }
  return out;
}

/** Reads `names` from `dir`, caching them until the directory's version changes. */
export function secretFiles(credential: string, dir: string, names: readonly string[], opts: SecretFilesOptions = {}): SecretFiles {
  const pollMs = opts.pollMs ?? 1000;
  const now = opts.now ?? Date.now;
  let cached: { version: string; values: Record<string, string> } | undefined;
  let checkedAt = -Infinity;
  let pending: Promise<Record<string, string>> | undefined;

  async function refresh(): Promise<Record<string, string>> {
    const v = await version(dir, names);
    if (cached && cached.version === v) return cached.values;
    cached = undefined; // a Secret that went bad fails every use until it is fixed
    const values = await readAll(credential, dir, names, opts.raw ?? false);
    cached = { version: v, values };
    return values;
  }

  return {
    read() {
      if (cached && now() - checkedAt < pollMs) return Promise.resolve(cached.values);
      pending ??= refresh().finally(() => {
        checkedAt = now();
        pending = undefined;
      });
      return pending;
    },
  };
}
