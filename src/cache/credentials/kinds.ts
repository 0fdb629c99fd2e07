// One signer per credential kind, each with its ecosystem's maintained library. The
// cloud SDKs are loaded on a credential's first use, so a node cache without S3 or
// Azure credentials never loads them.
import type { Credential } from "../../policy/credentials.js";
import { basicSigner, bearerSigner, headerSigner, type Authorize } from "./http-kinds.js";
import type { CredentialsOptions } from "./index.js";

function lazy(load: () => Promise<Authorize>): Authorize {
  let signer: Promise<Authorize> | undefined;
  return async (req) => {
    signer ??= load();
    return (await signer)(req);
  };
}

export function signerFor(c: Credential, opts: CredentialsOptions): Authorize {
  switch (c.kind) {
    case "bearer":
      return bearerSigner(c.name, c.secretDir, opts);
    case "basic":
      return basicSigner(c.name, c.secretDir, opts);
    case "header":
      return headerSigner(c.name, c.secretDir, opts);
    case "s3":
      return lazy(async () => (await import("./s3.js")).s3Signer(c, opts));
    case "azure":
      return lazy(async () => (await import("./azure.js")).azureSigner(c, opts));
    case "gcs":
      return lazy(async () => (await import("./gcs.js")).gcsSigner(c, opts));
  }
}
