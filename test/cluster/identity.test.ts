// Who may ask the node cache, with the real control plane: pods scheduled onto kwok
// nodes, bound tokens from the real API server (TokenRequest with boundObjectRef to the
// pod), verified by a real node cache started for one node, which reads the API server's
// issuer keys with a ServiceAccount token of its own (the default
// system:service-account-issuer-discovery binding lets it). Then the exact init container
// the webhook injects, run with real curl >= 8.3 and the projected token file, and the
// per-namespace rules for direct requests that skip the webhook. Stand-in kept: no kubelet
// projects the token, so the test writes the TokenRequest answer where the kubelet would
// put it and maps the container path to it, as the kubelet's bind mount does.
import { KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { containerArgv } from "../../src/cache/kubelet.js";
import { parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";
import { MIN_CURL, TOKEN_PATH } from "../../src/shared/identity.js";
import { cacheKey, objectPath } from "../../src/shared/protocol.js";
import { decide } from "../../src/webhook/decide.js";
import { fetchRaw, pseudoRandom, startOrigin, type Origin } from "../support/origin.js";
import { fetcherOf } from "../support/pod-fixtures.js";
import type { Api } from "./api.js";
import { boundToken, scheduledPod } from "./bound-tokens.js";
import { describeCluster } from "./context.js";
import { adminApi, createNamespace, deleteNamespaces, serviceAccountToken, tokenKubeconfig } from "./kube.js";
import { freePort } from "./processes.js";

const exec = promisify(execFile);
const NS_A = "identity-a";
const NS_B = "identity-b";
const NS_SYS = "identity-sys";

describeCluster("the node cache verifies real bound ServiceAccount tokens", (c) => {
  let api: Api;
  let origin: Origin;
  let cache: RunningCache;
  let dir: string;
  let policy: Policy;
  const node = c.nodes[0]!;
  const other = c.nodes[1]!;
  const content = pseudoRandom(256 * 1024, 11);
  const pods = new Map<string, V1Pod>();

  const ask = (path: string, token?: string) => {
    const url = origin.url(path);
    return fetchRaw(cache.url + objectPath(cacheKey(url), url), token ? { headers: { authorization: `Bearer ${token}` } } : {});
  };

  beforeAll(async () => {
    api = adminApi(c);
    dir = mkdtempSync(join(tmpdir(), "cache-io-identity-"));
    origin = await startOrigin();
    origin.put("/a/model.bin", content);
    origin.put("/a/init.bin", content);
    for (const ns of [NS_A, NS_B, NS_SYS]) await createNamespace(api, ns);
    await api.must("POST", `/api/v1/namespaces/${NS_SYS}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "node-cache" } });
    const own = new KubeConfig();
    own.loadFromFile(tokenKubeconfig(c, await serviceAccountToken(api, NS_SYS, "node-cache"), NS_SYS));
    const port = await freePort(node.ip);
    const parsed = parsePolicy(`origins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}
identity: {mode: required}
namespaces: {${NS_B}: {originsAllow: ["example.com"]}}
cache: {port: ${port}}
`);
    if (!parsed.ok) throw new Error(parsed.errors.join("; "));
    policy = parsed.policy;
    cache = await startCache({ root: join(dir, "root"), host: node.ip, port, nodeName: node.name, identityKubeConfig: own, policy: () => policy });
    pods.set("a", await scheduledPod(api, NS_A, "app-here", node.name));
    pods.set("a-other", await scheduledPod(api, NS_A, "app-there", other.name));
    pods.set("b", await scheduledPod(api, NS_B, "app-b", node.name));
  }, 180_000);

  afterAll(async () => {
    await cache?.close(100);
    await origin?.close();
    if (api) await deleteNamespaces(api, [NS_A, NS_B, NS_SYS]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("a token bound to a pod on this node (TokenRequest, boundObjectRef) is accepted", async () => {
    const r = await ask("/a/model.bin", await boundToken(api, pods.get("a")!));
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.body.equals(content)).toBe(true);
  });

  it("refused with 401: missing, garbage, the API server's audience, a pod on another node, a key not the issuer's", async () => {
    const forged = (await boundToken(api, pods.get("a")!)).split(".");
    forged[2] = Buffer.from("not the issuer's signature").toString("base64url");
    const cases: Array<[string | undefined, RegExp]> = [
      [undefined, /no Authorization: Bearer header/],
      ["garbage", /not a JWT/],
      [await boundToken(api, pods.get("a")!, c.serviceAccountIssuer), /audience is \["https:\/\/kubernetes\.default\.svc\.cluster\.local"\], not "cache\.io\/node-cache"/],
      [await boundToken(api, pods.get("a-other")!), new RegExp(`bound to a pod on node "${other.name}", not this node "${node.name}"`)],
      [forged.join("."), /signature does not verify/],
      [await serviceAccountToken(api, NS_A, "default"), /audience|names no node/],
    ];
    for (const [token, message] of cases) {
      const r = await ask("/a/model.bin", token);
      expect(r.status, `${message}: ${r.body.toString()}`).toBe(401);
      expect(r.headers["www-authenticate"]).toMatch(/^Bearer /);
      expect(r.body.toString()).toMatch(message);
    }
  });

  it("namespace B, asking directly with its own valid token, may not fetch A's origin nor read A's cached file by URL", async () => {
    const b = await boundToken(api, pods.get("b")!);
    for (const path of ["/a/model.bin", "/a/never-fetched.bin"]) {
      const r = await ask(path, b);
      expect(r.status).toBe(403);
      expect(r.body.toString()).toMatch(new RegExp(`namespace "${NS_B}" may not use .*its allow-list: \\["example.com"\\]`));
    }
    expect(origin.gets("/a/never-fetched.bin")).toBe(0);
  });

  it("the exact injected init container, run with real curl >= 8.3 and the projected token file, gets its file", async () => {
    const { stdout: version } = await exec("curl", ["--version"]);
    const [maj, min] = (/^curl (\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
    const [wantMaj, wantMin] = MIN_CURL.split(".").map(Number);
    expect(maj! > wantMaj! || (maj === wantMaj && min! >= wantMin!), `host curl is ${version.split("\n")[0]}; the e2e tests need curl >= ${MIN_CURL} (apt-get install -t bookworm-backports curl)`).toBe(true);

    const pod = pods.get("a")!;
    const url = origin.url("/a/init.bin");
    const annotated: V1Pod = { ...pod, metadata: { ...pod.metadata, annotations: { "cache.io/files": url, "cache.io/mode": "copy" } } };
    const d = decide(annotated, policy, { namespace: NS_A, copyOnly: false });
    if (d.action !== "mutate") throw new Error(JSON.stringify(d));
    const fetch = fetcherOf(d.pod)!;
    // the kubelet's projected volume: the token file, bind-mounted at the container path
    const projected = join(dir, "projected");
    mkdirSync(projected, { recursive: true });
    writeFileSync(join(projected, "token"), await boundToken(api, pod));
    const copies = join(dir, "copies");
    mkdirSync(copies, { recursive: true });
    const argv = containerArgv(fetch, { "status.hostIP": pod.status!.hostIP! }, { "/cache-io": copies });
    const mapped = argv.map((a) => a.replace(`@${TOKEN_PATH}`, `@${join(projected, "token")}`));
    expect(mapped.filter((a, i) => a !== argv[i])).toHaveLength(1);
    const [file, ...args] = mapped;
    const run = await exec(file!, args, { timeout: 120_000 }).then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/done init\.bin|cached init\.bin/);

    // the same command with the token of another namespace's pod on another node fails loudly
    writeFileSync(join(projected, "token"), await boundToken(api, pods.get("a-other")!));
    const refused = await exec(file!, args.map((a, i) => (args[i - 1] === "--retry" ? "0" : a)), { timeout: 60_000 }).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(refused?.code).toBe(22);
    expect(refused?.stderr).toMatch(/401/);
  }, 180_000);
});
