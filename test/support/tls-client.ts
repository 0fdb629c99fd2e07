// Test helpers: an HTTPS client that verifies the server against a test CA (never
// skips verification) and reports which certificate the server presented.
import { readFile } from "node:fs/promises";
import type { Operation } from "fast-json-patch";
import { request, type Agent } from "node:https";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
  /** sha256 fingerprint of the certificate the server presented on this connection. */
  fingerprint: string;
  reusedSocket: boolean;
}

export interface Target {
  port: number;
  ca: string;
  agent?: Agent;
}

export interface Send {
  method?: string;
  path: string;
  body?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
  /** Send the body in 64 KiB writes with no Content-Length (chunked transfer encoding). */
  chunked?: boolean;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One request to 127.0.0.1, verified as `localhost` against `ca`. */
export function send(target: Target, s: Send): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        servername: "localhost",
        port: target.port,
        ca: target.ca,
        agent: target.agent ?? false,
        method: s.method ?? (s.body === undefined ? "GET" : "POST"),
        path: s.path,
        headers: { ...(s.body === undefined ? {} : { "content-type": s.contentType ?? "application/json" }), ...s.headers },
      },
      (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: parseJson(text), fingerprint, reusedSocket: req.reusedSocket });
        });
      },
    );
    req.on("error", reject);
    if (s.chunked && s.body !== undefined) {
      const body = Buffer.from(s.body);
      for (let at = 0; at < body.length; at += 65536) req.write(body.subarray(at, at + 65536));
      req.end();
    } else req.end(s.body);
  });
}

/** POST an AdmissionReview to `path`. */
export function postReview(target: Target, path: string, review: unknown): Promise<Reply> {
  return send(target, { path, body: JSON.stringify(review) });
}

/** The JSON Patch carried by an AdmissionReview response, decoded. */
export function decodePatch(reply: Reply): Operation[] {
  const patch = reply.json?.response?.patch;
  if (typeof patch !== "string") throw new Error(`no patch in response: ${reply.text.slice(0, 500)}`);
  return JSON.parse(Buffer.from(patch, "base64").toString("utf8"));
}

/** Poll `check` until it returns a value other than undefined, or throw after `ms`. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const EXAMPLE = new URL("../../examples/admission-review.json", import.meta.url);

/** examples/admission-review.json (an annotated Pod CREATE in namespace demo), optionally edited. */
export async function exampleReview(edit?: (review: any) => void): Promise<any> {
  const review = JSON.parse(await readFile(EXAMPLE, "utf8"));
  edit?.(review);
  return review;
}

/** The example review with the cache.io annotations removed: a pod the webhook leaves alone. */
export function plainReview(uid = "plain-1"): Promise<any> {
  return exampleReview((r) => {
    r.request.uid = uid;
    r.request.object.metadata.annotations = {};
  });
}

export interface RawReply {
  status: number;
  text: string;
  /** Milliseconds from opening the connection to the complete reply. */
  ms: number;
}

export interface RawConnection {
  /** Write raw bytes (a request line and headers, part of a body). */
  write(data: string | Buffer): void;
  /** The first HTTP reply on this connection, or a rejection when it closes without one. */
  reply: Promise<RawReply>;
  /** Resolves when the server has closed the connection. */
  closed: Promise<void>;
  destroy(): void;
}

/** A TLS connection (verified like send()) driven by hand: for stalled and partial requests. */
export function openRaw(target: Target): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = tlsConnect({ host: "127.0.0.1", servername: "localhost", port: target.port, ca: target.ca }, () => {
      socket.off("error", reject);
      resolve({ write: (d) => void socket.write(d), reply, closed, destroy: () => socket.destroy() });
    });
    socket.once("error", reject);
    let buf = Buffer.alloc(0);
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    const reply = new Promise<RawReply>((done, fail) => {
      const parse = (): RawReply | undefined => {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return undefined;
        const head = buf.subarray(0, end).toString("latin1");
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
        if (!(buf.length - end - 4 >= length)) return undefined;
        return { status: Number(head.split(" ")[1]), text: buf.subarray(end + 4, end + 4 + length).toString("utf8"), ms: Date.now() - t0 };
      };
      socket.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const r = parse();
        if (r) done(r);
      });
      socket.on("error", () => {}); // a reset after the reply is fine; without one, `close` rejects
      socket.once("close", () => fail(new Error(`connection closed without a complete reply (${buf.length} bytes read)`)));
    });
    reply.catch(() => {});
  });
}

/** Request line and headers of a POST whose body is sent (or not) separately. */
export function postHead(path: string, headers: Record<string, string | number>): string {
  const lines = Object.entries({ host: "localhost", "content-type": "application/json", ...headers }).map(([k, v]) => `${k}: ${v}`);
  return `POST ${path} HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`;
}
