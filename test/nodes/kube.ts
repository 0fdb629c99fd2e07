// A minimal HTTPS client for the test API server (client cert auth) and the client
// certs the nodes need: one request, its status and parsed body. Tests assert on status
// codes directly.
import { request } from "node:https";
import { generate } from "selfsigned";

export interface Pem {
  cert: string;
  key: string;
}

export interface ApiResponse<T = any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  status: number;
  body: T;
  text: string;
}

export class Kube {
  constructor(readonly server: string, readonly ca: string, readonly auth: Pem) {}

  req<T = any>(method: string, path: string, body?: unknown, contentType?: string): Promise<ApiResponse<T>> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const type = contentType ?? (method === "PATCH" ? "application/merge-patch+json" : "application/json");
    return new Promise((resolve, reject) => {
      const r = request(new URL(path, this.server), {
        method, ca: this.ca, cert: this.auth.cert, key: this.auth.key, agent: false, timeout: 30_000,
        headers: { accept: "application/json", ...(payload === undefined ? {} : { "content-type": type, "content-length": Buffer.byteLength(payload) }) },
      }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON (logs, /readyz)
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
        });
      });
      r.on("timeout", () => r.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      r.on("error", reject);
      r.end(payload);
    });
  }

  get<T = any>(path: string) { return this.req<T>("GET", path); } // eslint-disable-line @typescript-eslint/no-explicit-any

  /** Like req(), but throws with the API's message unless the status is 2xx. */
  async must<T = any>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await this.req<T>(method, path, body, contentType);
    if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 2000)}`);
    return r.body;
  }
}

const KEY = { keyType: "ec" as const, curve: "P-256" as const, algorithm: "sha256" };

function validity(days: number) {
  const notBeforeDate = new Date(Date.now() - 5 * 60_000);
  return { notBeforeDate, notAfterDate: new Date(notBeforeDate.getTime() + days * 86_400_000) };
}

export async function makeCa(name: string): Promise<Pem> {
  const ca = await generate([{ name: "commonName", value: name }], {
    ...KEY, ...validity(7),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: ca.cert, key: ca.private };
}

/** A cert signed by `ca`: a client cert (CN = user, each O a group), or a serving cert when `san` is given. */
export async function issue(ca: Pem, cn: string, opts: { groups?: string[]; san?: { dns: string[]; ips: string[] } } = {}): Promise<Pem> {
  const subject = [{ name: "commonName", value: cn }, ...(opts.groups ?? []).map((g) => ({ name: "organizationName", value: g }))];
  const san = opts.san;
  const c = await generate(subject, {
    ...KEY, ...validity(2),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: !!san, critical: true },
      { name: "extKeyUsage", clientAuth: !san, serverAuth: !!san },
      ...(san ? [{ name: "subjectAltName" as const, altNames: [...san.dns.map((value) => ({ type: 2 as const, value })), ...san.ips.map((ip) => ({ type: 7 as const, ip }))] }] : []),
    ],
  });
  return { cert: c.cert, key: c.private };
}

/** A kubeconfig (JSON is YAML) with the CA and a client cert inline. */
export function kubeconfig(server: string, caPem: string, user: string, creds: Pem): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return JSON.stringify({
    apiVersion: "v1", kind: "Config",
    clusters: [{ name: "cache-io-test", cluster: { server, "certificate-authority-data": b64(caPem) } }],
    users: [{ name: user, user: { "client-certificate-data": b64(creds.cert), "client-key-data": b64(creds.key) } }],
    contexts: [{ name: "cache-io-test", context: { cluster: "cache-io-test", user } }],
    "current-context": "cache-io-test",
  }, null, 2);
}
