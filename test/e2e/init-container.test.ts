// End to end: the exact init container decide() injects, its $(NODE_IP) expanded as the
// kubelet does, run with real curl (execFile, no shell) against a running node cache;
// then the file the app container would see is checked against the origin's bytes.
import type { V1Pod } from "@kubernetes/client-node";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { containerArgv, hostPathOf, runInitContainer, type InitRun } from "../../src/cache/kubelet.js";
import { parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";
import { ANNOTATION, MAX_ENCODED_URL_BYTES, RESERVED, cacheKey, objectDir, strictEncode } from "../../src/shared/protocol.js";
import { decide } from "../../src/webhook/decide.js";
import { pseudoRandom, startOrigin, type Origin } from "../support/origin.js";

const MIB = 2 ** 20;
const NODE_FIELDS = { "status.hostIP": "127.0.0.1" }; // what the kubelet resolves NODE_IP's fieldRef to
let origin: Origin;
let dir: string;
const caches: RunningCache[] = [];

beforeAll(async () => {
  origin = await startOrigin();
  dir = mkdtempSync(join(tmpdir(), "cache-e2e-"));
});

afterAll(async () => {
  for (const c of caches) await c.close(100);
  await origin?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A node cache on its own root; returns the policy the webhook would use to point pods at it. */
async function nodeCache(name: string, cacheYaml: string): Promise<Policy> {
  const root = join(dir, name);
  const r = parsePolicy(`identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {root: ${root}, ${cacheYaml}}`);
  if (!r.ok) throw new Error(r.errors.join());
  const running = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => r.policy });
  caches.push(running);
  return { ...r.policy, cache: { ...r.policy.cache, port: running.port } };
}

function injected(name: string, files: string, policy: Policy, mode?: "copy"): V1Pod {
  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", annotations: { [ANNOTATION.files]: files, ...(mode ? { [ANNOTATION.mode]: mode } : {}) } },
    spec: { containers: [{ name: "app", image: "registry.example/app:1", command: ["sleep", "3600"] }] },
  };
  const d = decide(pod, policy, { namespace: "default", copyOnly: false });
  if (d.action !== "mutate") throw new Error(`expected a mutation, got ${JSON.stringify(d)}`);
  return d.pod;
}

function fetcher(pod: V1Pod) {
  const c = pod.spec?.initContainers?.find((x) => x.name === RESERVED.initContainer);
  if (!c) throw new Error("no cache-io-fetch init container");
  return c;
}

/** Run the pod's init container; in copy mode its emptyDir (mounted at /cache-io) is a temp directory here. */
function runFetch(pod: V1Pod, emptyDir?: string): Promise<InitRun> {
  return runInitContainer(fetcher(pod), { fieldValues: NODE_FIELDS, mounts: emptyDir ? { [RESERVED.copyDir]: emptyDir } : {} });
}

describe("mount mode", () => {
  let policy: Policy;
  const content = pseudoRandom(4 * MIB, 51);
  let sha256 = "";

  beforeAll(async () => {
    policy = await nodeCache("mount", "originRetries: 2");
    sha256 = origin.put("/models/model.bin", content).sha256;
    origin.rateFor.set("/models/model.bin", MIB); // ~4 s: ensure shows progress lines
  });

  it("cold node: the init command fills the cache and the app sees the file through subPath data", async () => {
    const pod = injected("cold", `${origin.url("/models/model.bin")}#sha256=${sha256}`, policy);
    const argv = containerArgv(fetcher(pod), NODE_FIELDS);
    expect(argv[0]).toBe("curl");
    expect(fetcher(pod).args!.some((a) => a.startsWith(`http://$(NODE_IP):${policy.cache.port}/v1/ensure/`))).toBe(true);
    expect(argv.some((a) => a.startsWith(`http://127.0.0.1:${policy.cache.port}/v1/ensure/`))).toBe(true);
    const run = await runFetch(pod);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^fetching model\.bin from 127\.0\.0\.1:\d+ \(waiters=1\)\n/);
    expect(run.stdout).toMatch(/\nmodel\.bin \d+\.\d% \d+\.\d MiB of 4\.0 MiB [\d.]+ MB\/s waiters=1\n/);
    expect(run.stdout).toMatch(new RegExp(`done model\\.bin ${content.length} bytes in .* sha256=${sha256}\\n$`));
    const seen = hostPathOf(pod, "app", "/cache/model.bin");
    expect(seen).toBe(join(objectDir(policy.cache.root, cacheKey(origin.url("/models/model.bin"))), "data"));
    expect(readFileSync(seen).equals(content)).toBe(true);
  });

  it("warm node: the next pod's init command returns at once without asking the origin", async () => {
    const pod = injected("warm", `${origin.url("/models/model.bin")}#sha256=${sha256}`, policy);
    const run = await runFetch(pod);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`cached model.bin ${content.length} bytes sha256=${sha256}\n`);
    expect(readFileSync(hostPathOf(pod, "app", "/cache/model.bin")).equals(content)).toBe(true);
    expect(origin.gets("/models/model.bin")).toBe(1);
  });

  it("an origin that fails once: the cache retries and the init command still succeeds", async () => {
    const other = pseudoRandom(MIB, 52);
    origin.put("/models/flaky.bin", other);
    origin.cue("/models/flaky.bin", { status: 502 });
    const pod = injected("flaky", origin.url("/models/flaky.bin"), policy);
    const run = await runFetch(pod);
    expect(run.code).toBe(0);
    expect(readFileSync(hostPathOf(pod, "app", "/cache/flaky.bin")).equals(other)).toBe(true);
    expect(origin.gets("/models/flaky.bin")).toBe(2);
  });
});

describe("copy mode", () => {
  let policy: Policy;
  const content = pseudoRandom(2 * MIB + 3, 53);

  beforeAll(async () => {
    policy = await nodeCache("copy", "originRetries: 2");
    origin.put("/data/train.tar", content);
  });

  it.each(["cold", "warm"])("%s node: the file lands in the emptyDir the app mounts", async (name) => {
    const emptyDir = mkdtempSync(join(dir, `emptydir-${name}-`));
    const pod = injected(`copy-${name}`, `${origin.url("/data/train.tar")}#name=train.tar`, policy, "copy");
    expect(fetcher(pod).args).toContain(`${RESERVED.copyDir}/train.tar`);
    const run = await runFetch(pod, emptyDir);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(name === "cold" ? /done train\.tar/ : /^cached train\.tar/);
    const seen = hostPathOf(pod, "app", "/cache/train.tar", { [RESERVED.copyVolume]: emptyDir });
    expect(seen).toBe(join(emptyDir, "train.tar"));
    expect(readFileSync(seen).equals(content)).toBe(true);
    expect(origin.gets("/data/train.tar")).toBe(1);
  });
});

describe("copy mode, cold, a slow origin", () => {
  let policy: Policy;
  const content = pseudoRandom(4 * MIB, 56);

  beforeAll(async () => {
    policy = await nodeCache("copy-stream", "originRetries: 0");
    origin.put("/data/slow.tar", content);
    origin.rateFor.set("/data/slow.tar", MIB); // a fill of ~4 s
  });

  it("the copy grows while the file is still filling (the object beside the ensure), and ends verified", async () => {
    const emptyDir = mkdtempSync(join(dir, "emptydir-stream-"));
    const pod = injected("copy-stream", `${origin.url("/data/slow.tar")}#name=slow.tar`, policy, "copy");
    const published = join(objectDir(policy.cache.root, cacheKey(origin.url("/data/slow.tar"))), "data");
    const copy = join(emptyDir, "slow.tar");
    let copiedBeforePublish = 0;
    let running = true;
    const watching = (async () => {
      while (running) {
        if (!existsSync(published)) copiedBeforePublish = Math.max(copiedBeforePublish, existsSync(copy) ? statSync(copy).size : 0);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const run = await runFetch(pod, emptyDir).finally(() => (running = false));
    await watching;
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/done slow\.tar/);
    expect(copiedBeforePublish).toBeGreaterThanOrEqual(MIB);
    expect(copiedBeforePublish).toBeLessThan(content.length); // the last byte waits for the verified file
    expect(readFileSync(copy).equals(content)).toBe(true);
    expect(origin.gets("/data/slow.tar")).toBe(1);
  }, 30_000);
});

describe("the longest URL the webhook admits", () => {
  let policy: Policy;
  const content = pseudoRandom(100_000, 55);

  beforeAll(async () => {
    policy = await nodeCache("long", "originRetries: 0");
  });

  it("passes the node cache's header limit in both of copy mode's requests (no 431), and one character more is denied", async () => {
    // "(a)" costs 7 characters once strictly percent-encoded: the request line is far longer than the URL.
    const base = strictEncode(origin.url("/long/.bin")).length;
    const m = Math.floor((MAX_ENCODED_URL_BYTES - base) / 7);
    const path = `/long/${"(a)".repeat(m)}${"a".repeat(MAX_ENCODED_URL_BYTES - base - 7 * m)}.bin`;
    origin.put(path, content);
    const url = origin.url(path);
    expect(strictEncode(url).length).toBe(MAX_ENCODED_URL_BYTES);
    const emptyDir = mkdtempSync(join(dir, "emptydir-long-"));
    const pod = injected("long", `${url}#name=long.bin`, policy, "copy");
    const run = await runFetch(pod, emptyDir);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(readFileSync(join(emptyDir, "long.bin")).equals(content)).toBe(true);

    const over = { metadata: { name: "over", annotations: { [ANNOTATION.files]: `${url.replace(".bin", "a.bin")}#name=x.bin` } }, spec: { containers: [{ name: "app" }] } };
    expect(decide(over as V1Pod, policy, { namespace: "default", copyOnly: false })).toMatchObject({ action: "deny", reason: "invalid-annotation" });
  });
});

describe("a fill that fails after ensure committed to 200", () => {
  let policy: Policy;
  const content = pseudoRandom(3 * MIB, 54);

  beforeAll(async () => {
    policy = await nodeCache("cut", "originRetries: 0");
    origin.put("/models/cut.bin", content);
    origin.rateFor.set("/models/cut.bin", MIB); // the reset comes after ~2 s, past ensure's grace period
  });

  it("makes curl exit non-zero, and curl's retry then succeeds", async () => {
    const files = origin.url("/models/cut.bin");
    origin.cue("/models/cut.bin", { resetAfter: 2 * MIB });
    const once = injected("cut-once", files, { ...policy, fetcher: { ...policy.fetcher, retries: 0 } });
    const failed = await runFetch(once);
    expect(failed.code).not.toBe(0);
    expect(failed.stdout).toMatch(/^fetching cut\.bin .*\n(.*\n)*error: the download of .* broke off|error: origin closed the connection after/s);
    expect(failed.stderr).toMatch(/curl: \(18\)/);

    origin.cue("/models/cut.bin", { resetAfter: 2 * MIB });
    const retried = injected("cut-retry", files, policy);
    const ok = await runFetch(retried);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toMatch(/curl: \(18\) transfer closed/); // the first attempt was cut, the retry succeeded
    expect(readFileSync(hostPathOf(retried, "app", "/cache/cut.bin")).equals(content)).toBe(true);
    expect(origin.gets("/models/cut.bin")).toBe(3);
  }, 30_000);

  it("in copy mode too: the copy that streamed is cut with the fill, curl fails, and its retry writes the whole file", async () => {
    origin.put("/models/cut-copy.bin", content);
    origin.rateFor.set("/models/cut-copy.bin", MIB);
    const files = `${origin.url("/models/cut-copy.bin")}#name=cut.bin`;
    origin.cue("/models/cut-copy.bin", { resetAfter: 2 * MIB });
    const failedDir = mkdtempSync(join(dir, "emptydir-cut-"));
    const failed = await runFetch(injected("cut-copy-once", files, { ...policy, fetcher: { ...policy.fetcher, retries: 0 } }, "copy"), failedDir);
    expect(failed.code).not.toBe(0);
    expect(failed.stdout).toMatch(/error: (the download of .* broke off|origin closed the connection after)/);

    origin.cue("/models/cut-copy.bin", { resetAfter: 2 * MIB });
    const okDir = mkdtempSync(join(dir, "emptydir-cut-"));
    const ok = await runFetch(injected("cut-copy-retry", files, policy, "copy"), okDir);
    expect(ok.code).toBe(0);
    expect(readFileSync(join(okDir, "cut.bin")).equals(content)).toBe(true);
    expect(origin.gets("/models/cut-copy.bin")).toBe(3);
  }, 40_000);
});
