// Private origins, S3: SigV4 by the AWS SDK's signer against versitygw on loopback, which
// verifies signatures: static keys from a Secret dir, the SDK's default chain, ranged
// requests, pre-signed URLs passed through, and refusals with S3's own status.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCredentials, type Credentials } from "../../src/cache/credentials/index.js";
import { statusError } from "../../src/cache/origin.js";
import { credentialsSchema } from "../../src/policy/credentials.js";
import { cacheKey } from "../../src/shared/protocol.js";
import { originFetch, writeSecretDir } from "../support/auth-origin.js";
import { startS3, type S3Server } from "../support/s3/versitygw.js";

let s3: S3Server;
let dir: string;
let creds: Credentials;

beforeAll(async () => {
  s3 = await startS3();
  dir = mkdtempSync(join(tmpdir(), "cache-creds-s3-"));
  writeSecretDir(join(dir, "good"), { "access-key-id": s3.accessKeyId, "secret-access-key": s3.secretAccessKey });
  writeSecretDir(join(dir, "bad"), { "access-key-id": s3.accessKeyId, "secret-access-key": "not-the-secret" });
  const base = { kind: "s3", region: s3.region, namespaces: ["ml"] };
  creds = createCredentials(
    credentialsSchema.parse([
      { ...base, name: "models", match: { host: s3.host, pathPrefix: "/models/", scheme: "http" }, secretDir: join(dir, "good") },
      { ...base, name: "wrong", match: { host: s3.host, pathPrefix: "/wrong/", scheme: "http" }, secretDir: join(dir, "bad") },
      { ...base, name: "chain", match: { host: s3.host, pathPrefix: "/chain/", scheme: "http" }, source: "default" },
      { ...base, name: "irsa", match: { host: s3.host, pathPrefix: "/irsa/", scheme: "http" }, source: "webIdentity", roleArn: "arn:aws:iam::123456789012:role/cache", tokenFile: join(dir, "no-such-token") },
    ]),
    { pollMs: 0 },
  );
  for (const b of ["models", "wrong", "chain", "open"]) s3.put(b, "llama/w (1).bin", `weights of ${b}`);
}, 600_000);

afterAll(async () => {
  creds?.close();
  await s3?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = {}) => originFetch(`${s3.endpoint}${path}`, (r) => creds.authorize(r), headers);

describe("S3 SigV4", () => {
  it("static keys from the Secret dir fetch an object whose key needs encoding, whole and by range", async () => {
    expect(await get("/models/llama/w%20(1).bin")).toMatchObject({ status: 200, body: "weights of models" });
    expect(await get("/models/llama/w (1).bin".replace(" ", "%20"), { range: "bytes=0-6" })).toMatchObject({ status: 206, body: "weights" });
  });

  it("wrong keys and no credential get S3's 403, reported with that status", async () => {
    const wrong = await get("/wrong/llama/w%20(1).bin");
    expect(wrong.status).toBe(403);
    expect(wrong.body).toMatch(/SignatureDoesNotMatch|AccessDenied/);
    expect((await get("/open/llama/w%20(1).bin")).status).toBe(403);
    expect(statusError(403, `${s3.endpoint}/wrong/llama/w%20(1).bin?X-Amz-Signature=abc`).message).toMatch(/^origin answered 403 Forbidden for http:\/\/127\.0\.0\.1:\d+\/wrong\/llama\/w%20\(1\)\.bin\?<redacted>/);
  });

  it("a provider that cannot get credentials fails with 502 naming the credential, before any request", async () => {
    const err = await get("/irsa/llama/w%20(1).bin").catch((e: Error) => e);
    expect(err).toMatchObject({ name: "SecretMaterialError", status: 502 });
    expect(String(err)).toMatch(/credential irsa: cannot sign the request: .*no-such-token/);
  });

  it("the SDK's default chain (here: env keys) signs too", async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
    try {
      expect(await get("/chain/llama/w%20(1).bin")).toMatchObject({ status: 200, body: "weights of chain" });
    } finally {
      for (const [k, v] of [["AWS_ACCESS_KEY_ID", saved.id], ["AWS_SECRET_ACCESS_KEY", saved.secret]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it("a caller's pre-signed URL is sent as given (not re-signed), and two signatures of one object share a key", async () => {
    const presigner = new SignatureV4({ service: "s3", region: s3.region, sha256: Sha256, uriEscapePath: false, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    const presign = async (seconds: number) => {
      const r = await presigner.presign(
        { method: "GET", protocol: "http:", hostname: "127.0.0.1", port: Number(s3.host.split(":")[1]), path: "/models/llama/w%20%281%29.bin", query: {}, headers: { host: s3.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" } },
        { expiresIn: seconds, unsignableHeaders: new Set(["x-amz-content-sha256"]) },
      );
      return `${s3.endpoint}${r.path}?${Object.entries(r.query as Record<string, string>).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")}`;
    };
    const a = await presign(600);
    const b = await presign(900);
    expect(a).not.toBe(b);
    expect((await originFetch(a, (r) => creds.authorize(r))).body).toBe("weights of models");
    expect((await originFetch(b, (r) => creds.authorize(r))).status).toBe(200);
    expect(cacheKey(a)).toBe(cacheKey(b));
    expect(cacheKey(a)).toBe(cacheKey(`${s3.endpoint}/models/llama/w%20%281%29.bin`));
  });
});
