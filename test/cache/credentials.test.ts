// Private origins, header kinds: bearer, basic and an arbitrary header from a mounted
// Secret directory, sent only to the origins the policy names, re-read when the kubelet
// swaps the Secret, and origin refusals reported with the origin's status.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCredentials, type Credentials } from "../../src/cache/credentials/index.js";
import { statusError } from "../../src/cache/origin.js";
import { credentialsSchema } from "../../src/policy/credentials.js";
import { originFetch, startAuthOrigin, writeSecretDir, type AuthOrigin } from "../support/auth-origin.js";

let dir: string;
let origin: AuthOrigin;
let other: AuthOrigin;
let creds: Credentials;
const token = () => `hf_${"x".repeat(8)}${Math.random().toString(36).slice(2)}`;
let current = token();

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cache-creds-"));
  origin = await startAuthOrigin((h) => {
    if (h["x-api-key"] !== undefined) return h["x-api-key"] === "k-123";
    if (h.authorization?.startsWith("Basic ")) return h.authorization === basic("ci", "pa:ss");
    return h.authorization === `Bearer ${current}`;
  });
  other = await startAuthOrigin(() => true);
  writeSecretDir(join(dir, "hf"), { token: `${current}\n` });
  writeSecretDir(join(dir, "art"), { username: "ci", password: "pa:ss" });
  writeSecretDir(join(dir, "key"), { "header-name": "X-Api-Key", "header-value": "k-123" });
  const policy = credentialsSchema.parse([
    { name: "hf", kind: "bearer", match: { host: origin.host, pathPrefix: "/models/", scheme: "http" }, namespaces: ["ml"], secretDir: join(dir, "hf") },
    { name: "art", kind: "basic", match: { host: origin.host, pathPrefix: "/artifacts/", scheme: "http" }, namespaces: ["ci"], secretDir: join(dir, "art") },
    { name: "key", kind: "header", match: { host: origin.host, pathPrefix: "/api/", scheme: "http" }, namespaces: ["ml", "ci"], secretDir: join(dir, "key") },
    { name: "tls-only", kind: "bearer", match: { host: origin.host, pathPrefix: "/tls/" }, namespaces: ["ml"], secretDir: join(dir, "hf") },
  ]);
  creds = createCredentials(policy, { pollMs: 0 });
});

afterAll(async () => {
  creds?.close();
  await origin?.close();
  await other?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(url: string): Promise<{ status: number; body: string }> {
  const { status, body } = await originFetch(url, (req) => creds.authorize(req));
  return { status, body };
}

describe("header credentials", () => {
  it("bearer, basic and a named header reach the origins they name", async () => {
    origin.put("/models/a.bin", Buffer.from("weights"));
    origin.put("/artifacts/b.tar", Buffer.from("artifact"));
    origin.put("/api/c.json", Buffer.from("{}"));
    expect(await get(origin.url("/models/a.bin"))).toEqual({ status: 200, body: "weights" });
    expect(await get(origin.url("/artifacts/b.tar"))).toEqual({ status: 200, body: "artifact" });
    expect(await get(origin.url("/api/c.json"))).toEqual({ status: 200, body: "{}" });
    expect(creds.match(new URL(origin.url("/models/a.bin")))?.name).toBe("hf");
    expect(creds.match(new URL(origin.url("/other/a.bin")))).toBeUndefined();
  });

  it("a path outside every prefix, or plain http for an https-only credential, goes anonymous (401)", async () => {
    origin.put("/other/x.bin", Buffer.from("x"));
    origin.put("/tls/x.bin", Buffer.from("x"));
    expect((await get(origin.url("/other/x.bin"))).status).toBe(401);
    expect((await get(origin.url("/tls/x.bin"))).status).toBe(401);
    expect(statusError(401, origin.url("/tls/x.bin?sig=SECRET")).message).toMatch(/^origin answered 401 Unauthorized for http:\/\/127\.0\.0\.1:\d+\/tls\/x\.bin\?<redacted>/);
  });

  it("a redirect to another origin carries no credential", async () => {
    other.put("/models/a.bin", Buffer.from("elsewhere"));
    origin.redirect("/models/moved.bin", other.url("/models/a.bin"));
    expect(await get(origin.url("/models/moved.bin"))).toEqual({ status: 200, body: "elsewhere" });
    const hop = other.seen.at(-1)!;
    expect(hop.url).toBe("/models/a.bin");
    expect(hop.headers.authorization).toBeUndefined();
    expect(origin.seen.at(-1)!.headers.authorization).toBe(`Bearer ${current}`);
  });

  it("a rotated Secret is used on the next request; a deleted one fails naming the file, not the value", async () => {
    const old = current;
    current = token();
    expect((await get(origin.url("/models/a.bin"))).status).toBe(403);
    writeSecretDir(join(dir, "hf"), { token: current });
    expect((await get(origin.url("/models/a.bin"))).status).toBe(200);
    writeSecretDir(join(dir, "hf"), {});
    const err = await get(origin.url("/models/a.bin")).catch((e: Error) => e);
    expect(err).toMatchObject({ name: "SecretMaterialError", status: 502 });
    expect(String(err)).toMatch(/credential hf: cannot read .*\/hf\/token \(ENOENT\); mount a Secret with key "token"/);
    expect(String(err)).not.toContain(old);
    writeSecretDir(join(dir, "hf"), { token: current });
    expect((await get(origin.url("/models/a.bin"))).status).toBe(200);
  });

  it("explain names the credential of a refused request, or says none matched", () => {
    expect(creds.explain(origin.url("/models/a.bin?sig=1"), 403)).toEqual({ credential: "hf", hint: expect.stringMatching(/^sent with credential hf: the credential was refused: it may be wrong, revoked or expired/) });
    expect(creds.explain(origin.url("/other/a.bin"), 401)).toEqual({ credential: "none", hint: expect.stringMatching(/^no credential in the policy matches this origin and path/) });
    expect(creds.explain(origin.url("/models/a.bin"), 404)?.credential).toBe("hf");
    expect(creds.explain(origin.url("/models/a.bin"), 503)).toBeUndefined();
  });

  it("mayUse names the namespaces of each credential", () => {
    expect(creds.mayUse("hf", "ml")).toBe(true);
    expect(creds.mayUse("hf", "ci")).toBe(false);
    expect(creds.mayUse("key", "ci")).toBe(true);
    expect(creds.mayUse("nope", "ml")).toBe(false);
  });
});
