// A minimal HTTPS client for the test API server: one request, its status and parsed
// body, with a client cert or a bearer token. Tests assert on status codes (403, 409)
// directly, which is clearer than a client library's exceptions.
import { request } from "node:https";

export type Auth = { cert: string; key: string } | { token: string };

export interface ApiResponse<T = any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  status: number;
  body: T;
  text: string;
  warnings: string[];
}

export interface ApiOptions {
  contentType?: string;
  timeoutMs?: number;
}

export class Api {
  constructor(readonly server: string, readonly ca: string, readonly auth: Auth) {}

  withAuth(auth: Auth): Api {
    return new Api(this.server, this.ca, auth);
  }

  req<T = any>(method: string, path: string, body?: unknown, opts: ApiOptions = {}): Promise<ApiResponse<T>> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const url = new URL(path, this.server);
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const contentType = opts.contentType ?? (method === "PATCH" ? "application/merge-patch+json" : "application/json");
    return new Promise((resolve, reject) => {
      const r = request(url, {
        method,
        ca: this.ca,
        ...("token" in this.auth ? {} : { cert: this.auth.cert, key: this.auth.key }),
        headers: {
          accept: "application/json",
          ...("token" in this.auth ? { authorization: `Bearer ${this.auth.token}` } : {}),
          ...(payload === undefined ? {} : { "content-type": contentType, "content-length": Buffer.byteLength(payload) }),
        },
        timeout: opts.timeoutMs ?? 30_000,
        agent: false,
      }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON (e.g. /readyz)
          }
          const w = res.headers.warning;
          const warnings = (Array.isArray(w) ? w : w ? [w] : []).map((x) => x.replace(/^299 - "?|"$/g, ""));
          resolve({ status: res.statusCode ?? 0, body: parsed as T, text, warnings });
        });
      });
      r.on("timeout", () => r.destroy(new Error(`${method} ${path}: no answer in ${opts.timeoutMs ?? 30_000} ms`)));
      r.on("error", reject);
      r.end(payload);
    });
  }

  get<T = any>(path: string) { return this.req<T>("GET", path); } // eslint-disable-line @typescript-eslint/no-explicit-any
  post<T = any>(path: string, body: unknown) { return this.req<T>("POST", path, body); } // eslint-disable-line @typescript-eslint/no-explicit-any
  del(path: string) { return this.req("DELETE", path); }

  /** Like req(), but throws with the API's message unless the status is 2xx. */
  async must<T = any>(method: string, path: string, body?: unknown, opts?: ApiOptions): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await this.req<T>(method, path, body, opts);
    if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 2000)}`);
    return r.body;
  }
}
