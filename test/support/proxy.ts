// A real forward proxy for tests: Debian's tinyproxy on loopback, with its own config
// and log in a temp dir, started by the test and stopped in afterAll. The log's
// "Request (file descriptor N): CONNECT 127.0.0.1:4443 HTTP/1.1" lines say what the
// proxy was asked for, and so prove a fetch went through it.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface Proxy {
  /** http://127.0.0.1:port */
  url: string;
  port: number;
  /** The request lines the proxy was sent so far ("CONNECT 127.0.0.1:4443", "GET http://..."). */
  requests(): string[];
  /** Client connections the proxy accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export interface ProxyOptions {
  /** Ports CONNECT may reach (tinyproxy's ConnectPort); default: any port. */
  connectPorts?: number[];
  /** Require these credentials (tinyproxy's BasicAuth): everyone else gets 407. */
  basicAuth?: { user: string; password: string };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

class NotInstalled extends Error {}

/** Start tinyproxy on 127.0.0.1 (a few ports are tried if one is taken meanwhile). */
export async function startProxy(opts: ProxyOptions = {}): Promise<Proxy> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (attempt >= 3 || err instanceof NotInstalled) throw err;
    }
  }
}

async function startOnce(opts: ProxyOptions): Promise<Proxy> {
  const dir = mkdtempSync(join(tmpdir(), "cache-io-proxy-"));
  const port = await freePort();
  const log = join(dir, "tinyproxy.log");
  const conf = [
    `Port ${port}`,
    "Listen 127.0.0.1",
    "Timeout 30",
    `LogFile "${log}"`,
    "LogLevel Connect",
    "MaxClients 50",
    "Allow 127.0.0.1",
    ...(opts.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
    ...(opts.basicAuth ? [`BasicAuth ${opts.basicAuth.user} ${opts.basicAuth.password}`] : []),
  ];
  writeFileSync(join(dir, "tinyproxy.conf"), conf.join("\n") + "\n");
  const child: ChildProcess = spawn("tinyproxy", ["-d", "-c", join(dir, "tinyproxy.conf")], { stdio: "ignore" });
  let missing = false;
  const exited = new Promise<void>((r) => {
    child.once("exit", () => r());
    child.once("error", (err: NodeJS.ErrnoException) => {
      missing = err.code === "ENOENT";
      r();
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(5_000).then(() => child.kill("SIGKILL"))]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const lines = (re: RegExp) => {
    let text = "";
    try {
      text = readFileSync(log, "utf8");
    } catch {
      return [];
    }
    return text.split("\n").flatMap((l) => re.exec(l)?.slice(1, 2) ?? []);
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null || missing) break;
    if (await accepts(port)) {
      return {
        url: `http://127.0.0.1:${port}`,
        port,
        // Our readiness probe is a connection too; count it out.
        requests: () => lines(/Request \(file descriptor \d+\): (.*?)(?: HTTP\/1\.[01])?$/),
        connections: () => lines(/Connect \(file descriptor \d+\): (.*)$/).length - 1,
        close: stop,
      };
    }
    await sleep(50);
  }
  await stop();
  if (missing) throw new NotInstalled("tinyproxy is not installed: these tests need the Debian package tinyproxy (apt-get install tinyproxy)");
  throw new Error(`tinyproxy did not start on 127.0.0.1:${port} (is the Debian package tinyproxy installed?)`);
}
