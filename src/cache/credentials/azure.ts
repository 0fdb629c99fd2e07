// Azure Blob Storage with @azure/storage-blob: `sharedKey` signs a short-lived read-only
// SAS for the one blob asked for (the account key never leaves the cache); `sas` appends
// a SAS token from the Secret. A URL that already carries a SAS (`sig=`) is sent as given.
import { BlobSASPermissions, SASProtocol, StorageSharedKeyCredential, generateBlobSASQueryParameters } from "@azure/storage-blob";
import type { Credential } from "../../policy/credentials.js";
import type { Authorize } from "./http-kinds.js";
import { secretFiles, SecretMaterialError, type SecretFilesOptions } from "./secret-files.js";

type AzureCredential = Extract<Credential, { kind: "azure" }>;

/** A signed SAS is valid from a little before now (clock skew) for this long; each request gets a fresh one. */
const SAS_SKEW_MS = 5 * 60_000;
const SAS_LIFETIME_MS = 60 * 60_000;

/** Container and blob name of a blob URL: `/<container>/<blob>`, or `/<account>/<container>/<blob>` (emulators, IP hosts). */
export function blobOf(url: URL, account: string): { container: string; blob: string } | undefined {
  const segs = url.pathname.split("/").slice(1);
  if (segs[0] === account && !url.hostname.startsWith(`${account}.`)) segs.shift();
  const [container, ...rest] = segs;
  if (!container || rest.length === 0 || rest.every((s) => s === "")) return undefined;
  try {
    return { container: decodeURIComponent(container), blob: decodeURIComponent(rest.join("/")) };
  } catch {
    return undefined;
  }
}

function withQuery(url: URL, sas: string): URL {
  const out = new URL(url);
  const add = new URLSearchParams(sas.replace(/^\?/, ""));
  for (const k of new Set(add.keys())) out.searchParams.delete(k);
  out.search = out.search ? `${out.search}&${add.toString()}` : `?${add.toString()}`;
  return out;
}

export function azureSigner(c: AzureCredential, opts: SecretFilesOptions): Authorize {
  const now = opts.now ?? Date.now;
  if (c.source === "sas") {
    const files = secretFiles(c.name, c.secretDir, ["sas-token"], opts);
    return async (req) => {
      if (req.url.searchParams.has("sig")) return req;
      const { "sas-token": sas } = await files.read();
      if (!new URLSearchParams(sas!.replace(/^\?/, "")).has("sig")) {
        throw new SecretMaterialError(`credential ${c.name}: ${c.secretDir}/sas-token is not a SAS token (no sig= parameter)`);
      }
      return { ...req, url: withQuery(req.url, sas!) };
    };
  }
  const files = secretFiles(c.name, c.secretDir, ["account-key"], opts);
  return async (req) => {
    if (req.url.searchParams.has("sig")) return req;
    const where = blobOf(req.url, c.accountName);
    if (!where) throw new SecretMaterialError(`credential ${c.name}: ${req.url.pathname} is not a blob path (/<container>/<blob>)`);
    const { "account-key": key } = await files.read();
    const t = now();
    const sas = generateBlobSASQueryParameters(
      {
        containerName: where.container,
        blobName: where.blob,
        permissions: BlobSASPermissions.parse("r"),
        startsOn: new Date(t - SAS_SKEW_MS),
        expiresOn: new Date(t + SAS_LIFETIME_MS),
        protocol: req.url.protocol === "https:" ? SASProtocol.Https : SASProtocol.HttpsAndHttp,
      },
      new StorageSharedKeyCredential(c.accountName, key!),
    ).toString();
    return { ...req, url: withQuery(req.url, sas) };
  };
}
