// URLs as the cache may show them (logs, error bodies, progress lines): scheme, host and
// path only. Query strings carry pre-signed and SAS tokens; user info carries passwords.
const REDACTED = "?<redacted>";

/** `url` without its query (replaced by `?<redacted>`), user info and fragment. */
export function redact(url: string | URL): string {
  let u: URL;
  try {
    u = typeof url === "string" ? new URL(url) : url;
  } catch {
    return "<unparseable URL>";
  }
  return `${u.protocol}//${u.host}${u.pathname}${u.search ? REDACTED : ""}`;
}
