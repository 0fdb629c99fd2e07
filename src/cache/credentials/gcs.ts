// Google Cloud Storage with google-auth-library: an OAuth2 access token (read-only
// storage scope) from a service-account key in the Secret (`key.json`, re-read when it
// changes) or from Application Default Credentials (GKE workload identity's metadata
// server, GOOGLE_APPLICATION_CREDENTIALS), sent as a bearer token; the library caches and
// refreshes it. A URL that is already signed (X-Goog-Signature) is sent as given.
import { GoogleAuth, JWT } from "google-auth-library";
import type { Credential } from "../../policy/credentials.js";
import type { Authorize } from "./http-kinds.js";
import { secretFiles, SecretMaterialError, type SecretFilesOptions } from "./secret-files.js";

type GcsCredential = Extract<Credential, { kind: "gcs" }>;

const SCOPES = ["https://www.googleapis.com/auth/devstorage.read_only"];

interface ServiceAccountKey {
  type?: string;
  client_email?: string;
  private_key?: string;
}

/** The key file as a JWT client; messages never quote the file (it holds a private key). */
function clientOf(name: string, file: string, text: string): JWT {
  let key: ServiceAccountKey;
  try {
    key = JSON.parse(text) as ServiceAccountKey;
  } catch {
    throw new SecretMaterialError(`credential ${name}: ${file} is not JSON; store the service account's JSON key under the Secret key "key.json"`);
  }
  if (key.type !== "service_account" || !key.client_email || !key.private_key) {
    throw new SecretMaterialError(`credential ${name}: ${file} is not a service-account key (needs type service_account, client_email, private_key)`);
  }
  return new JWT({ email: key.client_email, key: key.private_key, scopes: SCOPES });
}

function withToken(req: Parameters<Authorize>[0], token: string | null | undefined, name: string): ReturnType<Authorize> {
  if (!token) return Promise.reject(new SecretMaterialError(`credential ${name}: Google returned no access token`));
  return Promise.resolve({ ...req, headers: { ...req.headers, authorization: `Bearer ${token}` } });
}

export function gcsSigner(c: GcsCredential, opts: SecretFilesOptions): Authorize {
  if (c.source === "workloadIdentity") {
    const auth = new GoogleAuth({ scopes: SCOPES });
    return async (req) => (req.url.searchParams.has("X-Goog-Signature") ? req : withToken(req, await auth.getAccessToken(), c.name));
  }
  const dir = c.secretDir!;
  const files = secretFiles(c.name, dir, ["key.json"], { ...opts, raw: true });
  let held: { text: string; client: JWT } | undefined;
  return async (req) => {
    if (req.url.searchParams.has("X-Goog-Signature")) return req;
    const { "key.json": text } = await files.read();
    const current = held && held.text === text ? held : { text: text!, client: clientOf(c.name, `${dir}/key.json`, text!) };
    held = current;
    const { client } = current;
    return withToken(req, (await client.getAccessToken()).token, c.name);
  };
}
