// Parse `cache.io/files` into typed file requests: a newline/comma list of URLs with
// `#sha256=..&name=..` fragments, or a JSON array of {url, sha256?, name?}. Pure.
import { checkOriginUrl, type OriginRules } from "../shared/origin.js";
import { ANNOTATION, cacheKey, DEFAULT_KEY_IGNORE, MAX_ENCODED_URL_BYTES, normalizeUrl, SHA256_HEX, strictEncode, type KeyIgnore } from "../shared/protocol.js";
import { entryLabel, quote, Refusal } from "./messages.js";

export interface FileRequest {
  /** 1-based position in the annotation, for messages. */
  entry: number;
  /** Normalized URL (fragment removed): what the cache fetches and hashes. */
  url: string;
  key: string;
  /** File name inside the mount path, validated. */
  name: string;
  sha256?: string;
}

/** A raw entry before validation: the URL as written plus fields given outside it. */
interface RawEntry {
  text: string;
  url: string;
  sha256?: string;
  name?: string;
  /** Cut from a line at a comma: a comma inside a URL ends up here. */
  commaSplit?: boolean;
}

export const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$/;
const NAME_RULE = 'use letters, digits, ".", "_" and "-" only, starting with a letter, digit or "_", at most 253 characters';
const JSON_KEYS = new Set(["url", "sha256", "name"]);
const FORMAT_HINT = 'write one http(s) URL per line (or comma-separated), or a JSON array of {"url", "sha256", "name"} objects';

export function parseFiles(value: string, maxFiles: number, origins: OriginRules, keyIgnore: KeyIgnore = DEFAULT_KEY_IGNORE): FileRequest[] {
  const raw = value.trim().startsWith("[") ? jsonEntries(value) : listEntries(value);
  if (raw.length === 0) throw new Refusal("invalid-annotation", `${ANNOTATION.files} lists no files: ${FORMAT_HINT}.`);
  if (raw.length > maxFiles) {
    throw new Refusal(
      "too-many-files",
      `${ANNOTATION.files} lists ${raw.length} files; the policy allows at most ${maxFiles} per pod. ` +
        "Split the files across pods, or ask the platform team to raise injection.maxFiles.",
    );
  }
  const files = raw.map((r, i) => toFile(r, i + 1, origins, keyIgnore));
  rejectDuplicates(files);
  return files;
}

function listEntries(value: string): RawEntry[] {
  return value.split("\n").flatMap((line) => {
    const parts = line.split(",").map((s) => s.trim()).filter((s) => s !== "");
    return parts.map((text) => ({ text, url: text, ...(parts.length > 1 ? { commaSplit: true } : {}) }));
  });
}

const COMMA_HINT =
  ' This entry was cut from a line at a comma: if the comma belongs to a URL, write cache.io/files as a JSON array instead, e.g. [{"url": "https://example.com/a,b.bin"}].';

function jsonEntries(value: string): RawEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch (err) {
    throw new Refusal("invalid-annotation", `${ANNOTATION.files} starts with "[" but is not valid JSON (${(err as Error).message}): ${FORMAT_HINT}.`);
  }
  if (!Array.isArray(data)) throw new Refusal("invalid-annotation", `${ANNOTATION.files} must be a JSON array: ${FORMAT_HINT}.`);
  return data.map((item: unknown, i) => jsonEntry(item, i + 1));
}

function jsonEntry(item: unknown, index: number): RawEntry {
  const url = (item as { url?: unknown } | null)?.url;
  const text = typeof url === "string" ? url : (JSON.stringify(item) ?? String(item));
  const fail = (what: string) => new Refusal("invalid-annotation", `${entryLabel(ANNOTATION.files, index, text)}: ${what}.`);
  if (typeof item !== "object" || item === null || Array.isArray(item)) throw fail('must be an object such as {"url": "https://..."}');
  const obj = item as Record<string, unknown>;
  const unknown = Object.keys(obj).filter((k) => !JSON_KEYS.has(k));
  if (unknown.length) throw fail(`unknown key(s) ${unknown.map((k) => quote(k, 40)).join(", ")}; the keys are "url", "sha256" and "name"`);
  for (const k of JSON_KEYS) {
    if (obj[k] !== undefined && typeof obj[k] !== "string") throw fail(`"${k}" must be a string`);
  }
  if (typeof obj.url !== "string") throw fail('"url" is required');
  return { text, url: obj.url, sha256: obj.sha256 as string | undefined, name: obj.name as string | undefined };
}

function toFile(raw: RawEntry, index: number, origins: OriginRules, keyIgnore: KeyIgnore): FileRequest {
  const where = entryLabel(ANNOTATION.files, index, raw.text);
  const invalid = (what: string) => new Refusal("invalid-annotation", `${where}: ${what}`);
  if (/\s/.test(raw.url)) throw invalid("contains whitespace. Put each URL on its own line (or separate with commas) and percent-encode spaces as %20.");
  let parsed: URL;
  try {
    parsed = new URL(raw.url);
  } catch {
    throw invalid(`is not a URL. Write an absolute http(s) URL such as https://example.com/file.bin.${raw.commaSplit ? COMMA_HINT : ""}`);
  }
  const fragment = parseFragment(parsed.hash, invalid);
  const sha256 = pick("sha256", raw.sha256, fragment.sha256, invalid)?.toLowerCase();
  const explicitName = pick("name", raw.name, fragment.name, invalid);
  const url = normalizeUrl(raw.url);
  const encoded = strictEncode(url).length;
  if (encoded > MAX_ENCODED_URL_BYTES) {
    throw invalid(
      `the URL is ${encoded} characters once percent-encoded for the node cache's request line (each reserved character or "%" counts 3); ` +
        `the limit is ${MAX_ENCODED_URL_BYTES}, since the cache refuses longer requests (431). Use a shorter URL, e.g. fewer or shorter query parameters.`,
    );
  }
  const originProblem = checkOriginUrl(new URL(url), origins);
  if (originProblem) throw new Refusal("origin-not-allowed", `${where}: ${originProblem}. ${originFix(new URL(url), origins)}`);
  if (sha256 !== undefined && !SHA256_HEX.test(sha256)) {
    throw invalid(`sha256 ${quote(sha256)} is not 64 hexadecimal characters. Give the file's SHA-256 digest in hex, or leave it out.`);
  }
  return { entry: index, url, key: cacheKey(url, keyIgnore), name: fileName(parsed, explicitName, invalid), ...(sha256 ? { sha256 } : {}) };
}

/** `#sha256=<hex>&name=<file>`: keys separated by `&`, values percent-decoded. */
function parseFragment(hash: string, fail: (what: string) => Refusal): { sha256?: string; name?: string } {
  const out: { sha256?: string; name?: string } = {};
  for (const part of hash.replace(/^#/, "").split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    if (key !== "sha256" && key !== "name") {
      throw fail(`unknown fragment key ${quote(key, 40)}. The fragment may hold only sha256=HEX and name=FILE, joined by "&".`);
    }
    if (out[key] !== undefined) throw fail(`fragment key "${key}" is given twice. Give it once.`);
    const value = decode(eq < 0 ? "" : part.slice(eq + 1));
    if (value === undefined) throw fail(`the fragment's ${key} value is not valid percent-encoding.`);
    out[key] = value;
  }
  return out;
}

function pick(key: string, fromJson: string | undefined, fromFragment: string | undefined, fail: (what: string) => Refusal): string | undefined {
  if (fromJson !== undefined && fromFragment !== undefined) throw fail(`"${key}" is given both in the object and in the URL fragment. Give it once.`);
  return fromJson ?? fromFragment;
}

function fileName(url: URL, explicit: string | undefined, invalid: (what: string) => Refusal): string {
  if (explicit !== undefined) {
    if (FILE_NAME.test(explicit)) return explicit;
    throw invalid(`file name ${quote(explicit)} is not allowed: ${NAME_RULE} (no "/" and no "..").`);
  }
  const last = decode(url.pathname.split("/").pop() ?? "");
  if (last !== undefined && FILE_NAME.test(last)) return last;
  const shown = last === undefined || last === "" ? "the URL has no file name in its path" : `the file name ${quote(last)} taken from the URL's path is not allowed (${NAME_RULE})`;
  throw invalid(`${shown}. Add #name=FILE to the entry to name the file.`);
}

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** The fix that goes with checkOriginUrl's verdict, checked in the same order. */
function originFix(url: URL, rules: OriginRules): string {
  const scheme = url.protocol.replace(/:$/, "");
  if (!rules.schemes.includes(scheme)) return `Use an ${rules.schemes.length > 1 ? "http(s)" : rules.schemes[0]} URL.`;
  if (url.username || url.password) return "Remove the user:password@ part; the cache sends no credentials.";
  if (!url.hostname) return "Use a URL with a host name.";
  // Were this host named in allowPrivate, would the URL pass? Then only its address was the problem.
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (checkOriginUrl(url, { ...rules, allowPrivate: [host] }) === null) {
    return "Use a public host name, or ask the platform team to add this origin to origins.allowPrivate.";
  }
  return "Use a host the policy allows, or ask the platform team to add it to origins.allow (or the namespace's originsAllow).";
}

function rejectDuplicates(files: FileRequest[]): void {
  const byName = new Map<string, FileRequest>();
  const byUrl = new Map<string, FileRequest>();
  for (const f of files) {
    const sameName = byName.get(f.name);
    if (sameName) {
      throw new Refusal("invalid-annotation", `${ANNOTATION.files} entries ${sameName.entry} and ${f.entry} both name the file ${quote(f.name)}. Give one of them another name with #name=FILE.`);
    }
    const sameUrl = byUrl.get(f.url);
    if (sameUrl) {
      throw new Refusal("invalid-annotation", `${ANNOTATION.files} entries ${sameUrl.entry} and ${f.entry} are the same URL ${quote(f.url)}. List each URL once.`);
    }
    byName.set(f.name, f);
    byUrl.set(f.url, f);
  }
}
