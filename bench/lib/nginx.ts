// Debian's nginx as the baseline file server: installed with apt-get when missing,
// run as our own master process (never the system service) with a config in a temp
// dir, on a free loopback port, sendfile on, serving one directory.
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { run, sleep, start, tempDir, type Child } from "./proc.js";

const NGINX = "/usr/sbin/nginx";

/** Install nginx-light from Debian if there is no nginx binary (no service is started here: no init system). */
export async function ensureNginx(): Promise<void> {
  if (!existsSync(NGINX)) {
    process.stdout.write("installing nginx-light (apt-get)...\n");
    await run("apt-get", ["update", "-qq"], 300_000);
    await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "nginx-light"], 300_000);
  }
}

/** A free loopback port (nginx cannot report the one it picked). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function config(dir: string, root: string, port: number): string {
  return `daemon off;
master_process on;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30s;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { application/octet-stream bin; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`;
}

export interface Nginx {
  port: number;
  child: Child;
  url(file: string): string;
}

/**
 * Serve `root` with nginx on a free loopback port until `child.stop()`. Workers run
 * as nginx's unprivileged default user, so `root` and its temp-dir parent are made
 * world-searchable (the benchmark file is random bytes).
 */
export async function startNginx(root: string): Promise<Nginx> {
  await ensureNginx();
  for (const d of [dirname(root), root]) chmodSync(d, 0o755);
  const dir = await tempDir("nginx");
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    writeFileSync(join(dir, "nginx.conf"), config(dir, root, port));
    const child = start(NGINX, ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], {
      log: join(dir, "stdout.log"),
      exitSignal: "SIGTERM", // the master stops its workers; SIGKILL would orphan them
    });
    for (let i = 0; i < 100 && !existsSync(join(dir, "nginx.pid")) && child.proc.exitCode === null; i++) await sleep(20);
    if (child.proc.exitCode === null && existsSync(join(dir, "nginx.pid"))) return { port, child, url: (file) => `http://127.0.0.1:${port}/${file}` };
    await child.stop();
  }
  throw new Error(`nginx did not start; see ${join(dir, "error.log")}`);
}
