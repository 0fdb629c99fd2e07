// A local HTTP stand-in for the Kubernetes API (Secrets, MutatingWebhookConfigurations,
// DaemonSets, pod list/watch): it stores objects, answers 404 / 409 AlreadyExists /
// 409 Conflict / 422 like the real one, records every request, and lists every
// request that breaks a rule of the real API (wrong content type, missing
// fieldManager on apply, body that does not match the path) in `violations`.
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import jsonpatch from "fast-json-patch";

interface ResourceType {
  name: string;
  apiVersion: string;
  kind: string;
  prefix: string;
  namespaced: boolean;
}

const TYPES: ResourceType[] = [
  { name: "secrets", apiVersion: "v1", kind: "Secret", prefix: "/api/v1", namespaced: true },
  { name: "mutatingwebhookconfigurations", apiVersion: "admissionregistration.k8s.io/v1", kind: "MutatingWebhookConfiguration", prefix: "/apis/admissionregistration.k8s.io/v1", namespaced: false },
  { name: "daemonsets", apiVersion: "apps/v1", kind: "DaemonSet", prefix: "/apis/apps/v1", namespaced: true },
  { name: "pods", apiVersion: "v1", kind: "Pod", prefix: "/api/v1", namespaced: true },
];

const PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"];

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string;
  body: unknown;
  resource: string;
  namespace?: string;
  name?: string;
  status: number;
  /** The RBAC verbs this request needs (an apply that creates needs create too). */
  verbs: string[];
}

type Obj = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> } & Record<string, unknown> } & Record<string, unknown>;
type Match = (r: { method: string; resource: string; name?: string }) => boolean;

interface Route {
  type: ResourceType;
  namespace?: string;
  name?: string;
  /** A collection across all namespaces, e.g. GET /api/v1/pods. */
  allNamespaces?: boolean;
}

function parseRoute(path: string): Route | null {
  for (const type of TYPES) {
    if (!path.startsWith(type.prefix + "/")) continue;
    const rest = path.slice(type.prefix.length + 1).split("/");
    let namespace: string | undefined;
    if (type.namespaced && rest[0] === type.name && rest.length === 1) return { type, allNamespaces: true };
    if (type.namespaced) {
      if (rest[0] !== "namespaces" || !rest[1]) continue;
      namespace = rest[1];
      rest.splice(0, 2);
    }
    if (rest[0] !== type.name || rest.length > 2) continue;
    return { type, namespace, name: rest[1] };
  }
  return null;
}

function status(code: number, reason: string, message: string): Obj {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: code < 300 ? "Success" : "Failure", reason, message, code };
}

export class KubeApiStandIn {
  readonly requests: RecordedRequest[] = [];
  readonly violations: string[] = [];
  readonly objects = new Map<string, Obj>();
  #server: Server = createServer((req, res) => void this.#handle(req, res));
  #rv = 100;
  #faults: { match: Match; code: number; reason: string }[] = [];
  #gates: { match: Match; count: number; waiting: (() => void)[] }[] = [];
  #hooks: { match: Match; run: () => void }[] = [];

  async start(): Promise<this> {
    await new Promise<void>((done) => this.#server.listen(0, "127.0.0.1", done));
    return this;
  }

  close(): Promise<void> {
    const closed = new Promise<void>((done) => this.#server.close(() => done()));
    this.#server.closeAllConnections(); // open watches
    return closed;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "stand-in", server: this.url, skipTLSVerify: true }],
      users: [{ name: "test", token: "test" }],
      contexts: [{ name: "stand-in", cluster: "stand-in", user: "test" }],
      currentContext: "stand-in",
    });
    return kc;
  }

  /** A kubeconfig file for processes this test spawns (`KUBECONFIG=...`). */
  writeKubeconfig(file: string): string {
    writeFileSync(file, JSON.stringify({
      apiVersion: "v1", kind: "Config", "current-context": "t",
      clusters: [{ name: "t", cluster: { server: this.url, "insecure-skip-tls-verify": true } }],
      users: [{ name: "t", user: { token: "test" } }],
      contexts: [{ name: "t", context: { cluster: "t", user: "t" } }],
    }));
    return file;
  }

  key(resource: string, namespace: string | undefined, name: string): string {
    return `${resource}/${namespace ?? ""}/${name}`;
  }

  get(resource: string, namespace: string | undefined, name: string): Obj | undefined {
    return this.objects.get(this.key(resource, namespace, name));
  }

  /** Store an object as if it had been created earlier. */
  seed(resource: string, obj: Obj): Obj {
    const stored = this.#stamp(structuredClone(obj), undefined);
    this.objects.set(this.key(resource, stored.metadata!.namespace, stored.metadata!.name!), stored);
    return stored;
  }

  /** Answer the next matching request with this error instead of handling it. */
  failNext(match: Match, code: number, reason: string): void {
    this.#faults.push({ match, code, reason });
  }

  /** Run `run` just before the next matching request is handled (another writer's change). */
  beforeNext(match: Match, run: () => void): void {
    this.#hooks.push({ match, run });
  }

  /** Hold matching requests until `count` of them are waiting, then let all through (once). */
  holdUntil(match: Match, count: number): void {
    this.#gates.push({ match, count, waiting: [] });
  }

  #stamp(obj: Obj, previous: Obj | undefined): Obj {
    const meta = (obj.metadata ??= {});
    meta.resourceVersion = String(++this.#rv);
    meta.uid = (previous?.metadata?.uid as string | undefined) ?? randomUUID();
    meta.creationTimestamp = (previous?.metadata?.creationTimestamp as string | undefined) ?? new Date().toISOString();
    return obj;
  }

  async #gate(m: { method: string; resource: string; name?: string }): Promise<void> {
    const gate = this.#gates.find((g) => g.match(m));
    if (!gate) return;
    await new Promise<void>((release) => {
      gate.waiting.push(release);
      if (gate.waiting.length >= gate.count) {
        this.#gates.splice(this.#gates.indexOf(gate), 1);
        for (const r of gate.waiting) r();
      }
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", "http://x");
    const method = req.method ?? "GET";
    const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
    const route = parseRoute(url.pathname);
    const record: RecordedRequest = {
      method, path: url.pathname, query: Object.fromEntries(url.searchParams), contentType, body: undefined,
      resource: route?.type.name ?? "?", namespace: route?.namespace, name: route?.name, status: 0, verbs: [],
    };
    this.requests.push(record);
    const send = (code: number, body: Obj) => {
      record.status = code;
      res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    if (req.headers.authorization !== "Bearer test") this.violations.push(`${method} ${url.pathname}: no bearer token`);
    if (!route) {
      this.violations.push(`${method} ${url.pathname}: not a route the stand-in (or cache-io) knows`);
      return send(404, status(404, "NotFound", "the server could not find the requested resource"));
    }
    if (chunks.length) {
      try {
        record.body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        this.violations.push(`${method} ${url.pathname}: body is not JSON`);
        return send(400, status(400, "BadRequest", "body is not JSON"));
      }
    }
    await this.#gate({ method, resource: route.type.name, name: route.name });
    const hook = this.#hooks.find((h) => h.match({ method, resource: route.type.name, name: route.name }));
    if (hook) {
      this.#hooks.splice(this.#hooks.indexOf(hook), 1);
      hook.run();
    }
    const fault = this.#faults.find((f) => f.match({ method, resource: route.type.name, name: route.name }));
    if (fault) {
      this.#faults.splice(this.#faults.indexOf(fault), 1);
      return send(fault.code, status(fault.code, fault.reason, `injected ${fault.reason}`));
    }
    if (route.allNamespaces && method !== "GET") {
      this.violations.push(`${method} ${url.pathname}: only GET is served across all namespaces`);
      return send(405, status(405, "MethodNotAllowed", method));
    }
    if (method === "GET" && url.searchParams.get("watch") === "true") {
      // A watch that never sends an event; it stays open until close().
      record.status = 200;
      record.verbs = ["watch"];
      res.writeHead(200, { "content-type": "application/json" }).flushHeaders();
      return;
    }
    const [code, body] = handleRequest(this, route, method, record, url.searchParams);
    send(code, body);
  }

  /** Used by handleRequest: store with a new resourceVersion. */
  put(route: Route, name: string, obj: Obj, previous: Obj | undefined): Obj {
    const stored = this.#stamp(obj, previous);
    this.objects.set(this.key(route.type.name, route.namespace, name), stored);
    return stored;
  }
}

function notFound(route: Route, name: string): [number, Obj] {
  return [404, status(404, "NotFound", `${route.type.name} "${name}" not found`)];
}

function conflict(route: Route, name: string): [number, Obj] {
  return [409, status(409, "Conflict", `Operation cannot be fulfilled on ${route.type.name} "${name}": the object has been modified; please apply your changes to the latest version and try again`)];
}

/** Checks that the body is the object the path names, as the real API does. */
function checkBody(api: KubeApiStandIn, route: Route, method: string, body: unknown, name?: string): Obj | null {
  const obj = body as Obj | undefined;
  const where = `${method} ${route.type.name}/${name ?? ""}`;
  if (!obj || obj.kind !== route.type.kind || obj.apiVersion !== route.type.apiVersion) {
    api.violations.push(`${where}: body is not a ${route.type.apiVersion} ${route.type.kind}`);
    return null;
  }
  if (!obj.metadata?.name || (name && obj.metadata.name !== name)) api.violations.push(`${where}: metadata.name does not match the path`);
  if (route.namespace && obj.metadata?.namespace && obj.metadata.namespace !== route.namespace) api.violations.push(`${where}: metadata.namespace does not match the path`);
  return obj;
}

function handleRequest(api: KubeApiStandIn, route: Route, method: string, record: RecordedRequest, query: URLSearchParams): [number, Obj] {
  const name = route.name;
  const current = name ? api.get(route.type.name, route.namespace, name) : undefined;
  const jsonWrite = method === "POST" || method === "PUT";
  if (jsonWrite && record.contentType !== "application/json") api.violations.push(`${method} ${record.path}: content type ${record.contentType}, want application/json`);
  switch (method) {
    case "GET": {
      record.verbs = [name ? "get" : "list"];
      if (name) return current ? [200, current] : notFound(route, name);
      const wanted = (query.get("labelSelector") ?? "").split(",").filter(Boolean).map((kv) => kv.split("="));
      const items = [...api.objects.entries()]
        .filter(([k]) => k.startsWith(route.allNamespaces ? `${route.type.name}/` : `${route.type.name}/${route.namespace ?? ""}/`))
        .map(([, o]) => o)
        .filter((o) => wanted.every(([k, v]) => o.metadata?.labels?.[k!] === v));
      return [200, { apiVersion: route.type.apiVersion, kind: `${route.type.kind}List`, metadata: { resourceVersion: "1" }, items }];
    }
    case "POST": {
      record.verbs = ["create"];
      const obj = checkBody(api, route, method, record.body);
      if (!obj) return [400, status(400, "BadRequest", "bad body")];
      const objName = obj.metadata!.name!;
      if (api.get(route.type.name, route.namespace, objName)) return [409, status(409, "AlreadyExists", `${route.type.name} "${objName}" already exists`)];
      return [201, api.put(route, objName, { ...obj, metadata: { ...obj.metadata, namespace: route.namespace } }, undefined)];
    }
    case "PUT": {
      record.verbs = ["update"];
      const obj = checkBody(api, route, method, record.body, name);
      if (!obj || !name) return [400, status(400, "BadRequest", "bad body")];
      if (!obj.metadata?.resourceVersion) api.violations.push(`PUT ${record.path}: no metadata.resourceVersion (an unconditional update can overwrite another writer)`);
      if (!current) return notFound(route, name);
      if (obj.metadata?.resourceVersion && obj.metadata.resourceVersion !== current.metadata?.resourceVersion) return conflict(route, name);
      return [200, api.put(route, name, obj, current)];
    }
    case "PATCH":
      return patch(api, route, record, query, current);
    case "DELETE":
      record.verbs = ["delete"];
      if (!name || !current) return notFound(route, name ?? "");
      api.objects.delete(api.key(route.type.name, route.namespace, name));
      return [200, status(200, "", "deleted")];
    default:
      api.violations.push(`${method} ${record.path}: method not supported`);
      return [405, status(405, "MethodNotAllowed", method)];
  }
}

function patch(api: KubeApiStandIn, route: Route, record: RecordedRequest, query: URLSearchParams, current: Obj | undefined): [number, Obj] {
  const name = route.name ?? "";
  record.verbs = ["patch"];
  if (!PATCH_TYPES.includes(record.contentType)) {
    api.violations.push(`PATCH ${record.path}: content type ${record.contentType} is not a patch type`);
    return [415, status(415, "UnsupportedMediaType", record.contentType)];
  }
  if (record.contentType === "application/apply-patch+yaml") {
    if (!query.get("fieldManager")) {
      api.violations.push(`PATCH ${record.path}: apply without fieldManager`);
      return [400, status(400, "BadRequest", "fieldManager is required for apply patch")];
    }
    const obj = checkBody(api, route, "PATCH", record.body, name);
    if (!obj) return [400, status(400, "BadRequest", "bad body")];
    // Applying an object that does not exist creates it, and is authorized as create.
    if (!current) record.verbs = ["patch", "create"];
    return [current ? 200 : 201, api.put(route, name, { ...structuredClone(obj), metadata: { ...obj.metadata, namespace: route.namespace } }, current)];
  }
  if (!current) return notFound(route, name);
  if (record.contentType !== "application/json-patch+json") {
    api.violations.push(`PATCH ${record.path}: the stand-in only models JSON Patch and apply`);
    return [415, status(415, "UnsupportedMediaType", record.contentType)];
  }
  let patched: Obj;
  try {
    patched = jsonpatch.applyPatch(structuredClone(current), record.body as jsonpatch.Operation[], true, false).newDocument;
  } catch (err) {
    return [422, status(422, "Invalid", `the JSON patch could not be applied: ${(err as Error).message}`)];
  }
  if (patched.metadata?.resourceVersion !== current.metadata?.resourceVersion) return conflict(route, name);
  return [200, api.put(route, name, patched, current)];
}
