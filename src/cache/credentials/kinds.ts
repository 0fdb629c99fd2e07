// One signer per credential kind, each with its ecosystem's maintained library.
import type { Credential } from "../../policy/credentials.js";
import { basicSigner, bearerSigner, headerSigner, type Authorize } from "./http-kinds.js";
import type { CredentialsOptions } from "./index.js";

export function signerFor(c: Credential, opts: CredentialsOptions): Authorize {
  switch (c.kind) {
    case "bearer":
      return bearerSigner(c.name, c.secretDir, opts);
    case "basic":
      return basicSigner(c.name, c.secretDir, opts);
    case "header":
      return headerSigner(c.name, c.secretDir, opts);
    case "s3":
    case "azure":
      return () => Promise.reject(new Error(`credential ${c.name}: kind ${c.kind} is not built yet`));
  }
}
