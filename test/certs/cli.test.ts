// The real CLI: `cache-io certs` writes a bundle and prints only the caBundle on stdout;
// `cache-io certs install` runs the bootstrap against the API stand-in via KUBECONFIG.
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { webhookConfiguration } from "../../src/deploy/webhook-config.js";
import { KubeApiStandIn } from "../support/kube-api.js";

const run = promisify(execFile);
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, ["dist/cli/main.js", ...args], { env: { PATH: process.env.PATH, HOME: tmpdir(), ...env } });

describe("cache-io certs", () => {
  it("writes ca/tls files for the Service and prints the caBundle alone on stdout", async () => {
    const out = mkdtempSync(join(tmpdir(), "certs-"));
    const { stdout, stderr } = await cli(["certs", "--out", out, "--service", "hook", "--namespace", "team", "--days", "30"]);
    const ca = readFileSync(join(out, "ca.crt"), "utf8");
    expect(stdout).toBe(Buffer.from(ca).toString("base64") + "\n");
    const cert = new X509Certificate(readFileSync(join(out, "tls.crt")));
    expect(cert.checkHost("hook.team.svc")).toBe("hook.team.svc");
    expect(cert.verify(new X509Certificate(ca).publicKey)).toBe(true);
    expect(statSync(join(out, "tls.key")).mode & 0o777).toBe(0o600);
    expect(stderr).toContain("kubectl patch mutatingwebhookconfiguration cache-io --type=json");
  });

  it("names the bad flag", async () => {
    await expect(cli(["certs", "--out", mkdtempSync(join(tmpdir(), "certs-")), "--days", "zero"])).rejects.toMatchObject({ stderr: expect.stringContaining('--days "zero" must be a whole number of days') });
    await expect(cli(["certs", "--out", mkdtempSync(join(tmpdir(), "certs-")), "--service", "Bad_Name"])).rejects.toMatchObject({ stderr: expect.stringContaining('--service "Bad_Name" is not a DNS-1123 label') });
  });
});

describe("cache-io certs install", () => {
  let api: KubeApiStandIn;
  let kubeconfig: string;
  beforeAll(async () => {
    api = await new KubeApiStandIn().start();
    api.seed("mutatingwebhookconfigurations", webhookConfiguration() as never);
    kubeconfig = join(mkdtempSync(join(tmpdir(), "kube-")), "config");
    api.writeKubeconfig(kubeconfig);
  });
  afterAll(() => api.close());

  it("creates the Secret in POD_NAMESPACE and patches the caBundle, then reuses it", async () => {
    const env = { KUBECONFIG: kubeconfig, POD_NAMESPACE: "cache-io" };
    expect((await cli(["certs", "install"], env)).stdout).toContain("Secret cache-io/cache-io-webhook-tls created; caBundle set on 3 webhook(s) of cache-io");
    expect((await cli(["certs", "install"], env)).stdout).toContain("Secret cache-io/cache-io-webhook-tls reused; caBundle set on 0 webhook(s)");
    expect(api.violations).toEqual([]);
  });

  it("refuses a renewal window as long as the validity", async () => {
    await expect(cli(["certs", "install", "--renew-before", "400"], { KUBECONFIG: kubeconfig })).rejects.toMatchObject({
      stderr: expect.stringContaining("--renew-before (400) must be less than --days (365)"),
    });
  });
});
