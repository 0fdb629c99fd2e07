// A small strict HTTP/1.x client-side codec for the raw-socket origin transport
// (raw-origin.ts): the request head it sends, and the response head it accepts (status
// line and header fields, at most MAX_HEAD bytes, no obs-fold, no bare LF, one valid
// Content-Length) with the body framing that follows. Pure: bytes in, values out.
import type { IncomingHttpHeaders } from "node:http";

/** Bytes a response head (with any 1xx heads before it) may take. */
export const MAX_HEAD = 64 << 10;

/** A response head that breaks the rules; the message says what (the transport names the origin). */
export class HeadError extends Error {}

/** A request header this side was asked to send that HTTP cannot carry (a CR, LF or other control character). */
export class RequestHeadError extends Error {}

export interface ResponseHead {
  status: number;
  headers: IncomingHttpHeaders;
  /** Bytes the head took, up to and including its empty line. */
  size: number;
}

/**
 * How the body after a head is delimited: a length, the connection's close, none
 * (1xx are skipped by the caller, 204 and 304 have none), or one this codec does not
 * read (the caller reads such responses with node:http).
 */
export type Framing = { kind: "length"; length: number } | { kind: "close" } | { kind: "none" } | { kind: "unsupported"; why: string };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values: visible ASCII, obs-text, spaces and tabs (no CR, LF or NUL). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [\t\x20-\x7e\x80-\xff]*)?$/;
/** Fields whose repeats node:http drops (it keeps the first): the same here, so both transports agree. */
const SINGLE = new Set(["age", "authorization", "content-length", "content-type", "etag", "expires", "from", "host", "if-modified-since", "if-unmodified-since", "last-modified", "location", "max-forwards", "proxy-authorization", "referer", "retry-after", "server", "user-agent"]);

/**
 * Parse the response head at the start of `buf[0, end)`: null while its empty line has
 * not arrived (throws once MAX_HEAD bytes came without one), else the head. `searched`:
 * bytes an earlier call already looked through (a head that trickles in costs O(n), not O(n²)).
 */
export function parseHead(buf: Uint8Array, end: number, searched = 0): ResponseHead | null {
  const stop = indexOfBlankLine(buf, end, Math.max(0, searched - 3));
  if (stop < 0) {
    if (end >= MAX_HEAD) throw new HeadError(`its response head is larger than ${MAX_HEAD >> 10} KiB`);
    return null;
  }
  const size = stop + 4;
  if (size > MAX_HEAD) throw new HeadError(`its response head is larger than ${MAX_HEAD >> 10} KiB`);
  const lines = Buffer.from(buf.buffer, buf.byteOffset, stop).toString("latin1").split("\r\n");
  const m = STATUS_LINE.exec(lines[0]!);
  if (!m) throw new HeadError(`its status line is not HTTP/1.x (${JSON.stringify(lines[0]!.slice(0, 80))})`);
  const headers: IncomingHttpHeaders = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.includes("\n") || line.includes("\r")) throw new HeadError("its response head has a bare CR or LF");
    if (line[0] === " " || line[0] === "\t") throw new HeadError("its response head folds a header line (obs-fold, RFC 9112 5.2)");
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) throw new HeadError(`its response head has a malformed header line (${JSON.stringify(line.slice(0, 80))})`);
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, "");
    if (!FIELD_VALUE.test(value)) throw new HeadError(`header ${name} has a control character`);
    add(headers, name.toLowerCase(), value);
  }
  return { status: Number(m[1]), headers, size };
}

function add(headers: IncomingHttpHeaders, name: string, value: string): void {
  const had = headers[name];
  if (name === "set-cookie") headers[name] = [...((had as string[] | undefined) ?? []), value];
  else if (had === undefined) headers[name] = value;
  else if (name === "content-length") {
    if (had !== value) throw new HeadError(`it sent two different Content-Length values (${String(had)}, ${value})`);
  } else if (!SINGLE.has(name)) headers[name] = `${String(had)}, ${value}`;
}

function indexOfBlankLine(buf: Uint8Array, end: number, from: number): number {
  const bytes = buf.subarray(0, end); // never the bytes past `end` (a reused slab's old contents)
  for (let i = bytes.indexOf(13, from); i >= 0 && i + 3 < end; i = bytes.indexOf(13, i + 1)) {
    if (buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

/** The framing of the body of a final response to a GET (RFC 9112 6.3). */
export function framing(head: ResponseHead): Framing {
  const { status, headers } = head;
  if (status === 204 || status === 304) return { kind: "none" };
  if (headers["transfer-encoding"] !== undefined) return { kind: "unsupported", why: `Transfer-Encoding: ${headers["transfer-encoding"]}` };
  const cl = headers["content-length"];
  if (cl === undefined) return { kind: "close" };
  if (!/^\d{1,15}$/.test(cl)) throw new HeadError(`its Content-Length is not a number (${JSON.stringify(cl.slice(0, 40))})`);
  return { kind: "length", length: Number(cl) };
}

/**
 * The request head of a GET of `url` (origin-form), header names and values checked for
 * injection; `headers` have lower-case names, a `host` among them (a signature's) is sent as given.
 */
export function requestHead(url: URL, headers: Record<string, string>): string {
  let head = `GET ${url.pathname || "/"}${url.search} HTTP/1.1\r\n`;
  if (headers.host === undefined) head += `host: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) throw new RequestHeadError(`request header ${JSON.stringify(name)} has a character HTTP does not allow`);
    head += `${name}: ${value}\r\n`;
  }
  return head + "connection: close\r\n\r\n";
}
