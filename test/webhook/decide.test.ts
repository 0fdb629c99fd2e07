// The mutation on realistic pods: every patch applied back equals decide()'s pod and
// passes the API server's rules and schema; placement, NODE_IP, volumes, modes.
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { containerEnv, expandKubeletVars } from "../../src/cache/kubelet.js";
import { cacheKey } from "../../src/shared/protocol.js";
import { admit, app, DATA, fetcherOf, files, makePod, MODEL, patchOf, realisticPods, SHA, testPolicy } from "../support/pod-fixtures.js";
import { podProblems, restrictedProblems, restrictedVolumeProblems } from "../support/pod-rules.js";

// Not about identity: the exact shapes below are those without the token (test/webhook/identity.test.ts adds it).
const policy = testPolicy('identity: {mode: "off"}');
const NODE_IP = { name: "NODE_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } };
const containerNames = (pod: V1Pod, kind: "containers" | "initContainers") => (pod.spec?.[kind] ?? []).map((c) => c.name);

describe("every realistic pod", () => {
  for (const [name, pod] of Object.entries(realisticPods())) {
    it(`${name}: the patch applies, equals decide()'s pod and passes the API server's checks`, () => {
      const before = structuredClone(pod);
      const { result, decision, after } = admit(pod, policy);
      expect(result.outcome).toBe("patched");
      expect(decision.action).toBe("mutate");
      if (decision.action !== "mutate") return;
      expect(after).toEqual(decision.pod);
      expect(pod).toEqual(before); // the input is never mutated
      expect(podProblems(after)).toEqual([]);
      expect(after.metadata?.annotations?.["cache.io/status"]).toBe("injected");
      const fetcher = fetcherOf(after)!;
      expect(restrictedProblems(fetcher)).toEqual([]);
      expect(fetcher.securityContext?.readOnlyRootFilesystem).toBe(true);
      expect(fetcher.command).toEqual(["curl"]);
      expect(fetcher.env?.[0]).toEqual(NODE_IP);
      expect(fetcher.resources).toEqual({ requests: { cpu: "250m", memory: "32Mi" }, limits: { cpu: "1", memory: "64Mi" } });
    });
  }
});

describe("what the mutation adds", () => {
  const pods = realisticPods();

  it("mount mode: one hostPath volume per file's cache directory and a read-only subPath mount per file", () => {
    const { after } = admit(pods["no env, volumes or initContainers keys"]!, policy);
    const [k1, k2] = [cacheKey(MODEL), cacheKey(DATA)];
    expect(after.spec?.volumes).toEqual([
      { name: `cache-io-${k1.slice(0, 16)}`, hostPath: { path: `/var/lib/cache-io/objects/${k1}`, type: "DirectoryOrCreate" } },
      { name: `cache-io-${k2.slice(0, 16)}`, hostPath: { path: `/var/lib/cache-io/objects/${k2}`, type: "DirectoryOrCreate" } },
    ]);
    expect(after.spec?.containers[0]?.volumeMounts).toEqual([
      { name: `cache-io-${k1.slice(0, 16)}`, mountPath: "/cache/llama-7b.bin", subPath: "data", readOnly: true },
      { name: `cache-io-${k2.slice(0, 16)}`, mountPath: "/cache/train.tar", subPath: "data", readOnly: true },
    ]);
    expect(after.spec?.containers[0]?.env).toEqual([NODE_IP]);
    expect(fetcherOf(after)?.volumeMounts).toBeUndefined();
  });

  it("exact curl arguments: no shell, strict encoding, sha256 passed, $(NODE_IP) the only expansion", () => {
    const { after } = admit(pods["no env, volumes or initContainers keys"]!, policy);
    const base = "http://$(NODE_IP):8585";
    expect(fetcherOf(after)?.args).toEqual([
      "-q", "--silent", "--show-error", "--fail-early",
      "--parallel", "--parallel-immediate", "--parallel-max", "8",
      "--fail", "--globoff", "--proto", "=http", "--connect-timeout", "5", "--speed-limit", "1", "--speed-time", "120",
      "--retry", "10", "--retry-all-errors", "--retry-delay", "2",
      "-o", "-", `${base}/v1/ensure/${cacheKey(MODEL)}?url=https%3A%2F%2Fmodels.example.com%2Fllama-7b.bin&sha256=${SHA}`,
      "-o", "-", `${base}/v1/ensure/${cacheKey(DATA)}?url=https%3A%2F%2Fdata.example.com%2Fsets%2Ftrain.tar`,
    ]);
  });

  it("exact curl arguments for a URL full of reserved characters ($, (, ', *, !, spaces), which the kubelet's expansion cannot reach", () => {
    const url = "https://models.example.com/a$(HOME)/it's*!(x).bin?q=$(NODE_IP)&s=a%20b&t=it's";
    const normalized = "https://models.example.com/a$(HOME)/it's*!(x).bin?q=$(NODE_IP)&s=a%20b&t=it%27s"; // WHATWG encodes ' in a query
    const { after } = admit(makePod(files(`${url}#name=model.bin`, { "cache.io/mode": "copy" })), policy);
    const fetcher = fetcherOf(after)!;
    const encoded = "https%3A%2F%2Fmodels.example.com%2Fa%24%28HOME%29%2Fit%27s%2A%21%28x%29.bin%3Fq%3D%24%28NODE_IP%29%26s%3Da%2520b%26t%3Dit%2527s";
    const base = "http://$(NODE_IP):8585";
    expect(fetcher.args!.slice(-3)).toEqual(["-o", "/cache-io/model.bin", `${base}/v1/objects/${cacheKey(normalized)}?url=${encoded}`]);
    expect(fetcher.args).toContain(`${base}/v1/ensure/${cacheKey(normalized)}?url=${encoded}`);
    // What curl receives once the kubelet has expanded $(VAR) from the container's env: only the base changes.
    const env = { ...containerEnv(fetcher, { "status.hostIP": "10.0.0.7" }), HOME: "/root" };
    const argv = [...fetcher.command!, ...fetcher.args!].map((a) => expandKubeletVars(a, env));
    expect(argv.slice(-3)).toEqual(["-o", "/cache-io/model.bin", `http://10.0.0.7:8585/v1/objects/${cacheKey(normalized)}?url=${encoded}`]);
    expect(argv).toContain(`http://10.0.0.7:8585/v1/ensure/${cacheKey(normalized)}?url=${encoded}`);
    for (const a of fetcher.args!) expect(a.replace(base, ""), a).not.toMatch(/[$()'*! ]/);
  });

  it("transfers run side by side when there are several: copy mode's ensure and object, or several files; one mount-mode file runs alone", () => {
    const argsOf = (annotations: Record<string, string>) => fetcherOf(admit(makePod(annotations), policy).after)!.args!;
    const parallelMax = (args: string[]) => (args.join(" ").includes("--parallel --parallel-immediate --parallel-max") ? args[args.indexOf("--parallel-max") + 1] : undefined);
    // 8 files at once: a copy-mode file is two transfers (its ensure, its copy), started in order, all ensures first.
    expect(parallelMax(argsOf(files(`${MODEL}#name=model.bin`, { "cache.io/mode": "copy" })))).toBe("16");
    expect(parallelMax(argsOf(files(`${MODEL}#name=model.bin`)))).toBeUndefined();
    expect(parallelMax(argsOf(files(`${MODEL}#name=model.bin, ${DATA}`)))).toBe("8");
    // The options come before the URLs (curl reads them globally either way; the container's args read in order).
    const args = argsOf(files(`${MODEL}#name=model.bin`, { "cache.io/mode": "copy" }));
    expect(args.indexOf("--parallel")).toBeLessThan(args.indexOf("-o"));
  });

  it("copy mode: one emptyDir written by the init container, mounted read-only in the app", () => {
    const pod = makePod(files(`${MODEL}#name=model.bin`, { "cache.io/mode": "copy", "cache.io/mount-path": "/models" }));
    const { after } = admit(pod, policy);
    expect(after.spec?.volumes).toEqual([{ name: "cache-io-files", emptyDir: {} }]);
    expect(after.spec?.containers[0]?.volumeMounts).toEqual([{ name: "cache-io-files", mountPath: "/models", readOnly: true }]);
    const fetcher = fetcherOf(after)!;
    expect(fetcher.volumeMounts).toEqual([{ name: "cache-io-files", mountPath: "/cache-io" }]);
    // The ensures, then a --next group of the copies (their own no-progress limit: a file that cannot be streamed yet sends nothing).
    const ensure = `http://$(NODE_IP):8585/v1/ensure/${cacheKey(MODEL)}?url=https%3A%2F%2Fmodels.example.com%2Fllama-7b.bin`;
    const object = `http://$(NODE_IP):8585/v1/objects/${cacheKey(MODEL)}?url=https%3A%2F%2Fmodels.example.com%2Fllama-7b.bin`;
    const args = fetcher.args!;
    const next = args.indexOf("--next");
    expect(args.slice(next - 3, next)).toEqual(["-o", "-", ensure]);
    expect(args.slice(next)).toEqual([
      "--next", "--fail", "--globoff", "--proto", "=http", "--connect-timeout", "5", "--speed-limit", "1", "--speed-time", "600",
      "--retry", "10", "--retry-all-errors", "--retry-delay", "2",
      "-o", "/cache-io/model.bin", object,
    ]);
    expect(restrictedVolumeProblems(after)).toEqual([]);
  });

  it("places the init container after the last native sidecar, before ordinary init containers", () => {
    const { after } = admit(pods["native sidecars and ordinary init containers"]!, policy);
    expect(containerNames(after, "initContainers")).toEqual(["istio-init", "istio-proxy", "vault-agent", "cache-io-fetch", "migrate"]);
  });

  it("places the init container first when there is no native sidecar", () => {
    const pod = makePod(files(MODEL), { initContainers: [app("migrate"), app("seed")], containers: [app()] });
    expect(containerNames(admit(pod, policy).after, "initContainers")).toEqual(["cache-io-fetch", "migrate", "seed"]);
  });

  it("leaves an existing NODE_IP alone and prepends NODE_IP elsewhere, keeping envFrom", () => {
    expect(admit(pods["existing NODE_IP"]!, policy).after.spec?.containers[0]?.env).toEqual([{ name: "NODE_IP", value: "10.0.0.9" }, { name: "X", value: "1" }]);
    const c = admit(pods["envFrom only"]!, policy).after.spec?.containers[0];
    expect(c?.env).toEqual([NODE_IP]);
    expect(c?.envFrom).toEqual([{ configMapRef: { name: "settings" } }]);
  });

  it("does not select ephemeral containers but keeps them", () => {
    const { after } = admit(pods.ephemeralContainers!, policy);
    expect(after.spec?.ephemeralContainers).toEqual([{ name: "debugger", image: "busybox" }]);
  });

  it("never changes containers, volumes or env it does not own", () => {
    const pod = pods["two containers with their own volumes"]!;
    const { after } = admit(pod, policy);
    expect(after.spec?.volumes?.slice(0, 2)).toEqual(pod.spec?.volumes);
    for (const [i, c] of pod.spec!.containers.entries()) {
      const got = after.spec!.containers[i]!;
      expect(got.volumeMounts?.slice(0, c.volumeMounts!.length)).toEqual(c.volumeMounts);
      expect(got.env?.slice(1)).toEqual(c.env ?? []);
      expect({ ...got, env: undefined, volumeMounts: undefined }).toEqual({ ...c, env: undefined, volumeMounts: undefined });
    }
  });

  it("escapes / and ~ in annotation keys in the JSON patch", () => {
    const { result, after } = admit(pods["annotation keys with / and ~"]!, policy);
    expect(patchOf(result)).toContainEqual({ op: "add", path: "/metadata/annotations/cache.io~1status", value: "injected" });
    expect(after.metadata?.annotations).toMatchObject({ "example.com/a~b": "1", "team~x/owner": "ml", "a/b/c": "d", "cache.io/status": "injected" });
  });

  it("gives the files only to the containers named in cache.io/containers", () => {
    const pod = makePod(files(MODEL, { "cache.io/containers": " app , app" }), { containers: [app(), app("sidecar")] });
    const { after } = admit(pod, policy);
    expect(after.spec?.containers[0]?.volumeMounts).toHaveLength(1);
    expect(after.spec?.containers[1]).toEqual(app("sidecar"));
  });

  it("uses the namespace's overrides of mode and mount path", () => {
    const p = testPolicy('identity: {mode: "off"}\nnamespaces: {ml: {mode: copy, mountPath: /data/models}}');
    const pod = makePod(files(MODEL));
    expect(admit(pod, p, { namespace: "ml" }).after.spec?.containers[0]?.volumeMounts).toEqual([{ name: "cache-io-files", mountPath: "/data/models", readOnly: true }]);
    expect(admit(pod, p, { namespace: "other" }).after.spec?.containers[0]?.volumeMounts?.[0]?.mountPath).toBe("/cache/llama-7b.bin");
  });

  it("uses the fetcher image, pull policy, user, retries and cache port from the policy", () => {
    const p = testPolicy('identity: {mode: "off"}\nfetcher: {image: reg.internal/curl:8, imagePullPolicy: Always, runAsUser: 4242, retries: 3}\ncache: {port: 9000, root: /srv/cache/}');
    const { after } = admit(makePod(files(MODEL)), p);
    const f = fetcherOf(after)!;
    expect(f).toMatchObject({ image: "reg.internal/curl:8", imagePullPolicy: "Always", securityContext: { runAsUser: 4242, runAsGroup: 4242 } });
    expect(f.args?.[f.args.indexOf("--retry") + 1]).toBe("3");
    expect(f.args?.at(-1)).toMatch(/^http:\/\/\$\(NODE_IP\):9000\/v1\/ensure\//);
    expect(after.spec?.volumes?.[0]?.hostPath?.path).toBe(`/srv/cache/objects/${cacheKey(MODEL)}`);
  });
});

describe("copy-only namespaces (Pod Security forbids hostPath)", () => {
  it("uses copy mode and warns when the pod asked for mount", () => {
    const pod = makePod(files(MODEL, { "cache.io/mode": "mount" }));
    const { result, after } = admit(pod, policy, { copyOnly: true });
    expect(after.spec?.volumes).toEqual([{ name: "cache-io-files", emptyDir: {} }]);
    expect(restrictedVolumeProblems(after)).toEqual([]);
    expect(result.body).toMatchObject({ response: { allowed: true, warnings: [expect.stringContaining("forbids hostPath")] } });
  });

  it("uses copy mode silently when mount was only the policy default", () => {
    const { result, after } = admit(makePod(files(MODEL)), policy, { copyOnly: true });
    expect(after.spec?.volumes).toEqual([{ name: "cache-io-files", emptyDir: {} }]);
    expect(result.body).not.toHaveProperty("response.warnings");
  });
});

describe("pods left alone", () => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ["no cache.io/files", { "other/annotation": "x" }, "not-annotated"],
    ["cache.io/inject: false", files(MODEL, { "cache.io/inject": "false" }), "opted-out"],
    ["already injected", files(MODEL, { "cache.io/status": "injected" }), "already-injected"],
  ];
  for (const [name, annotations, reason] of cases) {
    it(`${name}: allowed with no patch (${reason})`, () => {
      const { result, decision } = admit(makePod(annotations), policy);
      expect(decision).toEqual({ action: "skip", reason, warnings: [] });
      expect(result.outcome).toBe("allowed");
      expect(patchOf(result)).toBeUndefined();
    });
  }

  it("an injected pod reviewed again (reinvocation) gets no patch", () => {
    const first = admit(realisticPods()["native sidecars and ordinary init containers"]!, policy).after;
    const again = admit(first, policy);
    expect(again.result.reason).toBe("already-injected");
    expect(patchOf(again.result)).toBeUndefined();
  });
});
