// Test helpers: an HTTPS client that verifies the server against a test CA (never
// skips verification) and reports which certificate the server presented.
import { readFile } from "node:fs/promises";
import type { Operation } from "fast-json-patch";
import { request, type Agent } from "node:https";
import type { TLSSocket } from "node:tls";

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
