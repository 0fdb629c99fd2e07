// `cache-io cache` and the cluster tier: the start log line says whether the tier is on
// and, if not, why; with it on, the peer port listens where --peer-host/--peer-port say
// (membership from an API server that is not there keeps being retried; the cache
// serves meanwhile); a bad --peer-port is a usage error.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchRaw } from "../support/origin.js";
import { killAll, spawnCache } from "./spawn-cache.js";

const exec = promisify(execFile);
let dir: string;
let kubeconfig: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cache-peer-cli-"));
  kubeconfig = join(dir, "kubeconfig");
  // An API server nobody listens on (port 9 of loopback: discard, never served here).
  writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`);
});

afterAll(async () => {
  await killAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const listening = (logs: Record<string, unknown>[]) => logs.find((l) => l.msg === "cache listening")!;
const env = { CACHE_IO_POLICY: "", CACHE_IO_PEERS_SERVICE: "", KUBECONFIG: "", KUBERNETES_SERVICE_HOST: "", NODE_NAME: "" };

describe("cache-io cache: the cluster tier at start", () => {
  it("is off without --peers-service, and says so", async () => {
    const c = await spawnCache(["--root", join(dir, "r1")], env);
    expect(listening(c.logs)).toMatchObject({ peers: "off", peersOff: "no-peers-service" });
    expect(c.logs.find((l) => l.peersOff && l.msg !== "cache listening")?.msg).toBe("cluster tier off: no --peers-service (CACHE_IO_PEERS_SERVICE): every fill goes to the origin");
    expect(listening(c.logs).peerPort).toBeUndefined();
  });

  it("is off without --node-name or a cluster config, and says which", async () => {
    const a = await spawnCache(["--root", join(dir, "r2"), "--peers-service", "cache-io-node-cache-peers"], env);
    expect(listening(a.logs)).toMatchObject({ peers: "off", peersOff: "no-node-name" });
    expect(a.logs.some((l) => l.msg === "cluster tier off: the cluster tier needs --node-name (NODE_NAME)")).toBe(true);
    const b = await spawnCache(["--root", join(dir, "r3"), "--peers-service", "cache-io-node-cache-peers", "--node-name", "node-1"], env);
    expect(listening(b.logs)).toMatchObject({ peers: "off", peersOff: "no-cluster-config" });
    expect(b.logs.some((l) => /^cluster tier off: the cluster tier needs a cluster config/.test(String(l.msg)))).toBe(true);
  });

  it("is on with the flags: the peer port listens on --peer-host/--peer-port, the log line names the own ServiceAccount", async () => {
    const c = await spawnCache(
      ["--root", join(dir, "r4"), "--node-name", "node-1", "--peer-host", "127.0.0.1", "--peer-port", "0", "--service-account", "cache-sa", "--peer-token-file", join(dir, "no-token")],
      { ...env, KUBECONFIG: kubeconfig, CACHE_IO_PEERS_SERVICE: "cache-io-node-cache-peers", POD_NAMESPACE: "cache-system" },
    );
    const line = listening(c.logs);
    expect(line).toMatchObject({ peers: "on", peerHost: "127.0.0.1", peersService: "cache-io-node-cache-peers", serviceAccount: "cache-system/cache-sa" });
    expect(line.peerPort).toEqual(expect.any(Number));
    expect(line.peerPort).not.toBe(line.port);
    const health = await fetchRaw(`http://127.0.0.1:${String(line.peerPort)}/healthz`);
    expect(health.status).toBe(200);
    expect((await fetchRaw(`http://127.0.0.1:${String(line.peerPort)}/metrics`)).status).toBe(404);
  });

  it("a bad --peer-port is a usage error (exit 2)", async () => {
    const r = await exec(process.execPath, ["dist/cli/main.js", "cache", "--peer-port", "70000"]).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(r?.code).toBe(2);
    expect(r?.stderr).toMatch(/--peer-port <n>' argument '70000' is invalid/);
  });
});
