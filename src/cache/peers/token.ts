// The node cache's own ServiceAccount token for peer requests (a projected token with
// audience cache.io): read from its file, kept for a few seconds, then re-read only when
// the file changed (the kubelet rotates it by swapping a symlink: another inode).
import { readFile, stat } from "node:fs/promises";

/** How long a read token is used without looking at the file again. */
export const TOKEN_CACHE_MS = 5_000;
/** A token file larger than this is not a token. */
const MAX_TOKEN_BYTES = 64 * 1024;

interface Held {
  token: string;
  id: string;
  checkedAt: number;
}

/** A `token()` for PeerSettings reading `path`; concurrent calls share one read. */
export function fileToken(path: string, opts: { cacheMs?: number; now?: () => number } = {}): () => Promise<string> {
  const cacheMs = opts.cacheMs ?? TOKEN_CACHE_MS;
  const now = opts.now ?? Date.now;
  let held: Held | undefined;
  let pending: Promise<string> | undefined;
  const refresh = async (): Promise<string> => {
    const at = now();
    const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
      throw tokenError(path, err.code ?? err.message);
    });
    const id = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (held && held.id === id) {
      held.checkedAt = at;
      return held.token;
    }
    if (st.size > MAX_TOKEN_BYTES) throw tokenError(path, `${st.size} bytes, more than a token`);
    const token = (await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
      throw tokenError(path, err.code ?? err.message);
    })).trim();
    if (!token) throw tokenError(path, "the file is empty");
    held = { token, id, checkedAt: at };
    return token;
  };
  return () => {
    if (held && now() - held.checkedAt < cacheMs) return Promise.resolve(held.token);
    pending ??= refresh().finally(() => (pending = undefined));
    return pending;
  };
}

function tokenError(path: string, why: string): Error {
  return new Error(`cannot read the peer token file ${path} (${why}): mount the node cache's projected ServiceAccount token (audience cache.io) there, or give its path with --peer-token-file`);
}
