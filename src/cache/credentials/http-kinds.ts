// Credentials that are one request header: bearer token (Hugging Face, artifact
// servers), basic auth, or an arbitrary header name and value, all from Secret files.
import type { OriginRequest } from "../origin.js";
import { secretFiles, SecretMaterialError, type SecretFilesOptions } from "./secret-files.js";

export type Authorize = (req: OriginRequest) => Promise<OriginRequest>;

const TOKEN_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/i;

export function bearerSigner(name: string, dir: string, opts: SecretFilesOptions): Authorize {
  const files = secretFiles(name, dir, ["token"], opts);
  return async (req) => {
    const { token } = await files.read();
    return { ...req, headers: { ...req.headers, authorization: `Bearer ${token}` } };
  };
}

export function basicSigner(name: string, dir: string, opts: SecretFilesOptions): Authorize {
  const files = secretFiles(name, dir, ["username", "password"], opts);
  return async (req) => {
    const { username, password } = await files.read();
    if (username!.includes(":")) throw new SecretMaterialError(`credential ${name}: the username in ${dir}/username contains ":", which basic auth cannot carry`);
    const value = Buffer.from(`${username}:${password}`).toString("base64");
    return { ...req, headers: { ...req.headers, authorization: `Basic ${value}` } };
  };
}

const RESERVED_HEADERS = new Set(["host", "content-length", "transfer-encoding", "connection", "range", "if-none-match", "if-modified-since", "if-range"]);

export function headerSigner(name: string, dir: string, opts: SecretFilesOptions): Authorize {
  const files = secretFiles(name, dir, ["header-name", "header-value"], opts);
  return async (req) => {
    const values = await files.read();
    const header = values["header-name"]!.toLowerCase();
    if (!TOKEN_NAME.test(header) || RESERVED_HEADERS.has(header)) {
      throw new SecretMaterialError(`credential ${name}: ${dir}/header-name is not a header name the cache may set (a token such as X-Api-Key; not Host, Range or a conditional header)`);
    }
    return { ...req, headers: { ...req.headers, [header]: values["header-value"]! } };
  };
}
