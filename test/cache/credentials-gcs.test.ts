// Private origins, GCS: only what runs without Google here. A key that is not a
// service-account key fails with 502 naming the file and never quoting it; a caller's
// signed URL (X-Goog-Signature) is sent as given. The token exchange with Google's OAuth
// endpoint and workload identity are not tested (no real implementation runs here).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCredentials, type Credentials } from "../../src/cache/credentials/index.js";
import { credentialsSchema } from "../../src/policy/credentials.js";
import { originFetch, startAuthOrigin, writeSecretDir, type AuthOrigin } from "../support/auth-origin.js";

let dir: string;
let origin: AuthOrigin;
let creds: Credentials;
const PRIVATE = "-----BEGIN PRIVATE KEY-----\nMIIEvQ-not-a-real-key\n-----END PRIVATE KEY-----\n";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cache-creds-gcs-"));
  origin = await startAuthOrigin(() => true);
  writeSecretDir(join(dir, "garbage"), { "key.json": `{"private_key": "${PRIVATE.replace(/\n/g, "\\n")}"` });
  writeSecretDir(join(dir, "user"), { "key.json": JSON.stringify({ type: "authorized_user", client_email: "a@b", private_key: PRIVATE }, null, 2) });
  const gcs = (name: string, secretDir: string) => ({ name, kind: "gcs", match: { host: origin.host, pathPrefix: `/${name}/`, scheme: "http" }, namespaces: ["ml"], secretDir });
  creds = createCredentials(credentialsSchema.parse([gcs("garbage", join(dir, "garbage")), gcs("user", join(dir, "user")), gcs("absent", join(dir, "absent"))]), { pollMs: 0 });
});

afterAll(async () => {
  creds?.close();
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("GCS", () => {
  it("a key.json that is not JSON, or not a service-account key, fails with 502 naming the file, never quoting it", async () => {
    const garbage = await originFetch(origin.url("/garbage/o.bin"), (r) => creds.authorize(r)).catch((e: Error) => e);
    expect(garbage).toMatchObject({ name: "SecretMaterialError", status: 502 });
    expect(String(garbage)).toMatch(/credential garbage: .*\/garbage\/key\.json is not JSON/);
    const user = await originFetch(origin.url("/user/o.bin"), (r) => creds.authorize(r)).catch((e: Error) => e);
    expect(String(user)).toMatch(/credential user: .*\/user\/key\.json is not a service-account key/);
    expect(String(garbage) + String(user)).not.toContain("MIIEvQ");
  });

  it("a caller's signed URL is sent as given, without a token", async () => {
    origin.put("/absent/o.bin", Buffer.from("object"));
    const url = origin.url("/absent/o.bin?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature=abcd");
    expect(await originFetch(url, (r) => creds.authorize(r))).toMatchObject({ status: 200, body: "object" });
    expect(origin.seen.at(-1)!.headers.authorization).toBeUndefined();
    const unsigned = await originFetch(origin.url("/absent/o.bin"), (r) => creds.authorize(r)).catch((e: Error) => e);
    expect(String(unsigned)).toMatch(/credential absent: cannot read .*\/absent\/key\.json \(ENOENT\)/);
  });
});
