// Private origins, Azure Blob: @azure/storage-blob against Azurite on loopback, which
// verifies signatures: a shared key (the cache signs a short read-only SAS per blob), a
// SAS token from the Secret, a caller's own SAS URL sent as given, and Azure's refusals.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainerSASPermissions, StorageSharedKeyCredential, generateBlobSASQueryParameters } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCredentials, type Credentials } from "../../src/cache/credentials/index.js";
import { credentialsSchema } from "../../src/policy/credentials.js";
import { originFetch, writeSecretDir } from "../support/auth-origin.js";
import { DEV_ACCOUNT, DEV_KEY, startAzurite, type Azurite } from "../support/azurite.js";

let az: Azurite;
let dir: string;
let creds: Credentials;

const containerSas = (container: string, key = DEV_KEY) =>
  generateBlobSASQueryParameters(
    { containerName: container, permissions: ContainerSASPermissions.parse("r"), expiresOn: new Date(Date.now() + 3600_000) },
    new StorageSharedKeyCredential(DEV_ACCOUNT, key),
  ).toString();

beforeAll(async () => {
  az = await startAzurite();
  dir = mkdtempSync(join(tmpdir(), "cache-creds-az-"));
  writeSecretDir(join(dir, "key"), { "account-key": DEV_KEY });
  writeSecretDir(join(dir, "badkey"), { "account-key": Buffer.from("not the key of this account").toString("base64") });
  writeSecretDir(join(dir, "sas"), { "sas-token": `?${containerSas("viasas")}` });
  const base = { kind: "azure", accountName: DEV_ACCOUNT, namespaces: ["ml"] };
  const match = (container: string) => ({ host: az.host, pathPrefix: `/${DEV_ACCOUNT}/${container}/`, scheme: "http" });
  creds = createCredentials(
    credentialsSchema.parse([
      { ...base, name: "shared", match: match("models"), secretDir: join(dir, "key") },
      { ...base, name: "wrong", match: match("wrong"), secretDir: join(dir, "badkey") },
      { ...base, name: "sas", match: match("viasas"), source: "sas", secretDir: join(dir, "sas") },
    ]),
    { pollMs: 0 },
  );
  for (const c of ["models", "wrong", "viasas", "open"]) await az.put(c, "llama/w (1).bin", `blob in ${c}`);
}, 120_000);

afterAll(async () => {
  creds?.close();
  await az?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = {}) => originFetch(`${az.accountUrl}${path}`, (r) => creds.authorize(r), headers);

describe("Azure Blob", () => {
  it("a shared key from the Secret signs a read SAS for the blob asked for, whole and by range", async () => {
    expect(await get("/models/llama/w%20(1).bin")).toMatchObject({ status: 200, body: "blob in models" });
    expect(await get("/models/llama/w%20(1).bin", { range: "bytes=0-3" })).toMatchObject({ status: 206, body: "blob" });
  });

  it("a SAS token from the Secret is appended", async () => {
    expect(await get("/viasas/llama/w%20(1).bin")).toMatchObject({ status: 200, body: "blob in viasas" });
  });

  it("a caller's own SAS URL reaches a container no credential names", async () => {
    const r = await originFetch(`${az.accountUrl}/open/llama/w%20(1).bin?${containerSas("open")}`, (q) => creds.authorize(q));
    expect(r).toMatchObject({ status: 200, body: "blob in open" });
  });

  it("a wrong key and no credential get Azure's refusal status", async () => {
    const wrong = await get("/wrong/llama/w%20(1).bin");
    expect(wrong.status).toBe(403);
    expect(wrong.body).toMatch(/AuthenticationFailed|AuthorizationFailure/);
    expect([403, 404]).toContain((await get("/open/llama/w%20(1).bin")).status);
  });
});
