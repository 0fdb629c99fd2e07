// A small JSON client for the checks: one request to the API server of the current
// kubeconfig context, answered as { status, body } (non-2xx is data, not an exception:
// a check reports it). Bodies are bounded, so a hostile endpoint cannot cost memory.
import type { KubeConfig } from "@kubernetes/client-node";
import { request, type RequestOptions } from "node:https";
import { request as httpRequest } from "node:http";

export interface Reply {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

const MAX_BODY = 32 * 2 ** 20;
const TIMEOUT_MS = 20_000;

export class Api {
  constructor(private readonly kc: KubeConfig) {}

  server(): string {
    const c = this.kc.getCurrentCluster();
    if (!c) throw new Error("no current cluster in the kubeconfig: set KUBECONFIG or run `kubectl config use-context`");
    return c.server;
  }

  async req(method: string, path: string, body?: unknown): Promise<Reply> {
    const url = new URL(path, this.server());
    const opts: RequestOptions = { method, hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers: { accept: "application/json" } };
    await this.kc.applyToHTTPSOptions(opts);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload) opts.headers = { ...opts.headers, "content-type": "application/json", "content-length": Buffer.byteLength(payload) };
    const send = url.protocol === "http:" ? httpRequest : request;
    return new Promise((resolve, reject) => {
      const req = send(opts, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) req.destroy(new Error(`${method} ${path}: answer larger than ${MAX_BODY} bytes`));
          else chunks.push(c);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`${method} ${url.origin}${path}: no answer in ${TIMEOUT_MS / 1000} s`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  get(path: string): Promise<Reply> {
    return this.req("GET", path);
  }
}

/** The API server's own message for a failed request, or the status. */
export function why(r: Reply): string {
  return typeof r.body === "object" && r.body?.message ? String(r.body.message) : `HTTP ${r.status}`;
}
