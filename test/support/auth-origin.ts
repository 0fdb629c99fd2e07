// A small authenticated origin for the private-origin tests: serves in-memory files only
// to requests whose headers pass `accept`, answers 401 (no Authorization) or 403 (a wrong
// one) otherwise, redirects on request, and records every request's URL and headers.
// Listens on 127.0.0.1 only. Dependency-free (node:* only).
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { ChildProcess } from "node:child_process";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { once } from "node:events";
import { existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { originGet, type OriginSettings } from "../../src/cache/origin.js";

export interface SeenRequest {
  url: string;
  headers: IncomingHttpHeaders;
}

export interface AuthOrigin {
  port: number;
  host: string;
  url(path: string): string;
  put(path: string, body: Buffer): void;
  redirect(path: string, location: string): void;
  /** Which requests are let in; replace it to rotate or revoke a credential. */
  accept: (headers: IncomingHttpHeaders) => boolean;
  seen: SeenRequest[];
  close(): Promise<void>;
}

export async function startAuthOrigin(accept: (h: IncomingHttpHeaders) => boolean): Promise<AuthOrigin> {
  const files = new Map<string, Buffer>();
  const redirects = new Map<string, string>();
  const origin: AuthOrigin = {
    port: 0,
    host: "",
    url: (p) => `http://${origin.host}${p}`,
    put: (p, b) => void files.set(p, b),
    redirect: (p, l) => void redirects.set(p, l),
    accept,
    seen: [],
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    origin.seen.push({ url: req.url ?? "", headers: req.headers });
    const to = redirects.get(path);
    if (to) return void res.writeHead(302, { location: to }).end();
    if (!origin.accept(req.headers)) {
      const status = req.headers.authorization ? 403 : 401;
      return void res.writeHead(status, { "content-type": "text/plain", "www-authenticate": 'Bearer realm="test"' }).end("denied\n");
    }
    const body = files.get(path);
    if (!body) return void res.writeHead(404).end("not found\n");
    res.writeHead(200, { "content-length": body.length, etag: `"${body.length}"` }).end(body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  origin.port = (server.address() as AddressInfo).port;
  origin.host = `127.0.0.1:${origin.port}`;
  return origin;
}

let generation = 0;

/**
 * Writes a Secret volume the way the kubelet's atomic writer does: the files in a fresh
 * `..<timestamp>` directory, `..data` swapped to it by rename, and `<key> -> ..data/<key>`.
 */
export function writeSecretDir(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  const old = existsSync(join(dir, "..data")) ? readlinkSync(join(dir, "..data")) : undefined;
  const ts = `..2026_${process.pid}_${++generation}`;
  mkdirSync(join(dir, ts));
  for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, ts, k), v);
  symlinkSync(ts, join(dir, "..data_tmp"));
  renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  for (const k of Object.keys(files)) if (!existsSync(join(dir, k))) symlinkSync(join("..data", k), join(dir, k));
  for (const name of readdirSync(dir)) {
    if (!name.startsWith("..") && !(name in files)) rmSync(join(dir, name));
  }
  if (old) rmSync(join(dir, old), { recursive: true, force: true });
}

/** GET `url` with the cache's own origin client (loopback allowed, http), signed by `authorize`. */
export async function originFetch(
  url: string,
  authorize: OriginSettings["authorize"],
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  const settings: OriginSettings = {
    rules: { allow: ["127.0.0.1"], schemes: ["http"], allowPrivate: ["127.0.0.1"] },
    connectTimeout: 5000,
    idleTimeout: 5000,
    ...(authorize ? { authorize } : {}),
  };
  const r = await originGet(url, settings, headers, AbortSignal.timeout(10_000));
  let body = "";
  for await (const chunk of r.res) body += chunk;
  return { status: r.res.statusCode ?? 0, body, headers: r.res.headers };
}

/** A port free on 127.0.0.1 right now (for servers that cannot listen on port 0). */
export async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}
