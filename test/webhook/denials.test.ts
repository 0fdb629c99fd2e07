// Every class of bad input gets a denial naming the annotation, the entry and the
// fix (or, with onInvalid: warn, an unmutated admission with that warning).
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { admit, app, files, makePod, MODEL, patchOf, testPolicy } from "../support/pod-fixtures.js";

const policy = testPolicy("origins: {allow: ['*.example.com', example.org, '10.0.0.5', '169.254.169.254', '127.0.0.1', '::1', '10.1.2.3']}\ninjection: {maxFiles: 3}");
const HEX = "a".repeat(64);

interface Case {
  name: string;
  pod: V1Pod;
  reason: string;
  says: Array<string | RegExp>;
}

const bad = (name: string, value: string, reason: string, says: Array<string | RegExp>, more: Record<string, string> = {}): Case =>
  ({ name, pod: makePod(files(value, more)), reason, says });

const cases: Case[] = [
  bad("empty list", " \n , \n", "invalid-annotation", ["cache.io/files lists no files", "one http(s) URL per line"]),
  bad("not a URL", "models/llama.bin", "invalid-annotation", ['cache.io/files entry 1 ("models/llama.bin"): is not a URL', "absolute http(s) URL"]),
  bad("whitespace inside an entry", `${MODEL} https://a.example.com/b`, "invalid-annotation", ["entry 1", "contains whitespace", "%20"]),
  bad("unparseable JSON", '[{"url": "https://a.example.com/x"', "invalid-annotation", ["starts with \"[\" but is not valid JSON", "JSON array"]),
  bad("JSON that is not an array of objects", '["https://a.example.com/x"]', "invalid-annotation", ["entry 1", "must be an object"]),
  bad("JSON with an unknown key", '[{"url": "https://a.example.com/x", "mode": "copy"}]', "invalid-annotation", ['unknown key(s) "mode"', '"url", "sha256" and "name"']),
  bad("JSON without url", '[{"name": "x"}]', "invalid-annotation", ['"url" is required']),
  bad("ftp scheme", "https://a.example.com/ok,ftp://x/y", "origin-not-allowed", ['cache.io/files entry 2 ("ftp://x/y"): scheme "ftp" is not allowed (allowed: https, http). Use an http(s) URL.']),
  bad("file scheme", "file:///etc/passwd", "origin-not-allowed", ['scheme "file" is not allowed', "Use an http(s) URL"]),
  bad("host outside the allow-list", "https://evil.example.net/x.bin", "origin-not-allowed", ['host "evil.example.net" is not in the policy\'s origin allow-list', "origins.allow"]),
  bad("loopback 127.0.0.1", "http://127.0.0.1:8585/v1/objects/x", "origin-not-allowed", ["127.0.0.1 is loopback", "origins.allowPrivate"]),
  bad("metadata 169.254.169.254", "http://169.254.169.254/latest/meta-data/iam", "origin-not-allowed", ["169.254.169.254 is linkLocal", "public host name"]),
  bad("IPv6 loopback [::1]", "http://[::1]/x.bin", "origin-not-allowed", ["::1 is loopback"]),
  bad("private 10.x", "http://10.1.2.3/x.bin", "origin-not-allowed", ["10.1.2.3 is private"]),
  bad("credentials in the URL", "https://user:pw@a.example.com/x", "origin-not-allowed", ["credentials in the URL are not allowed", "user:password@"]),
  bad("'..' as a name", `${MODEL}#name=..`, "invalid-annotation", ['file name ".." is not allowed', 'no "/" and no ".."']),
  bad("'/' in a name", `${MODEL}#name=../../etc/shadow`, "invalid-annotation", ['file name "../../etc/shadow" is not allowed']),
  bad("no file name in the URL", "https://a.example.com/", "invalid-annotation", ["the URL has no file name in its path", "Add #name=FILE"]),
  bad("encoded slash in the URL's file name", "https://a.example.com/a%2F..%2Fb", "invalid-annotation", ['file name "a/../b" taken from the URL', "Add #name=FILE"]),
  bad("duplicate names", "https://a.example.com/x/model.bin\nhttps://b.example.com/y/model.bin", "invalid-annotation", ['entries 1 and 2 both name the file "model.bin"', "#name=FILE"]),
  bad("duplicate URLs (fragments differ)", `${MODEL}#name=a\n${MODEL}#name=b`, "invalid-annotation", ["entries 1 and 2 are the same URL", "List each URL once"]),
  bad("too many files", "https://a.example.com/1,https://a.example.com/2,https://a.example.com/3,https://a.example.com/4", "too-many-files", ["lists 4 files; the policy allows at most 3 per pod", "injection.maxFiles"]),
  bad("sha256 too short", `${MODEL}#sha256=abc123`, "invalid-annotation", ['sha256 "abc123" is not 64 hexadecimal characters']),
  bad("sha256 not hex", `${MODEL}#sha256=${"g".repeat(64)}`, "invalid-annotation", ["is not 64 hexadecimal characters"]),
  bad("unknown fragment key", `${MODEL}#sha256=${HEX}&mode=copy`, "invalid-annotation", ['unknown fragment key "mode"', "sha256=HEX and name=FILE"]),
  bad("fragment key twice", `${MODEL}#name=a&name=b`, "invalid-annotation", ['fragment key "name" is given twice']),
  bad("name in object and fragment", `[{"url": "${MODEL}#name=a", "name": "b"}]`, "invalid-annotation", ['"name" is given both in the object and in the URL fragment']),
  bad("bad mode", MODEL, "invalid-annotation", ['cache.io/mode "hardlink" is not a mode', '"mount"', '"copy"'], { "cache.io/mode": "hardlink" }),
  ...["relative/dir", "/", "/cache/../etc", "/cache/", "/cache//x", "/ca che", "/cache/./x", "/$(HOME)"].map((p) =>
    bad(`bad mount path ${p}`, MODEL, "invalid-annotation", [`cache.io/mount-path ${JSON.stringify(p)} is not a usable directory`, "e.g. /cache"], { "cache.io/mount-path": p })),
  bad("unknown container", MODEL, "unknown-container", ['cache.io/containers names "worker", which is not a container of this pod', 'Use names from spec.containers: "app"'], { "cache.io/containers": "app,worker" }),
  bad("empty container list", MODEL, "unknown-container", ["cache.io/containers is empty"], { "cache.io/containers": " , " }),
  {
    name: "reserved init container name",
    pod: makePod(files(MODEL), { initContainers: [app("cache-io-fetch")], containers: [app()] }),
    reason: "reserved-name",
    says: ['spec.initContainers has a container named "cache-io-fetch", a name reserved', "Rename that container"],
  },
  {
    name: "reserved name on an ephemeral container",
    pod: makePod(files(MODEL), { containers: [app()], ephemeralContainers: [{ name: "cache-io-fetch", image: "busybox" }] }),
    reason: "reserved-name",
    says: ["spec.ephemeralContainers has a container named \"cache-io-fetch\""],
  },
  {
    name: "reserved init container name on an app container",
    pod: makePod(files(MODEL), { containers: [app(), app("cache-io-fetch")] }),
    reason: "reserved-name",
    says: ['spec.containers has a container named "cache-io-fetch", a name reserved'],
  },
  ...(["containers", "initContainers", "ephemeralContainers"] as const).map((kind): Case => ({
    name: `a volumeMount with the reserved prefix in spec.${kind}`,
    pod: makePod(files(MODEL), {
      containers: [app()],
      [kind]: [...(kind === "containers" ? [app("web")] : []), app("writer", { volumeMounts: [{ name: "cache-io-0123456789abcdef", mountPath: "/w" }] })],
    }),
    reason: "reserved-name",
    says: [`spec.${kind} container "writer" mounts a volume named "cache-io-0123456789abcdef"`, 'names starting with "cache-io-" are reserved', "Remove that volumeMount"],
  })),
  {
    name: "reserved volume prefix",
    pod: makePod(files(MODEL), { containers: [app()], volumes: [{ name: "cache-io-mine", emptyDir: {} }] }),
    reason: "reserved-name",
    says: ['volume named "cache-io-mine"', 'names starting with "cache-io-" are reserved'],
  },
  {
    name: "mount path already used by the container",
    pod: makePod(files(MODEL, { "cache.io/mode": "copy" }), { containers: [app("app", { volumeMounts: [{ name: "scratch", mountPath: "/cache" }] })], volumes: [{ name: "scratch", emptyDir: {} }] }),
    reason: "mount-conflict",
    says: ['container "app" already mounts volume "scratch" at "/cache"', "Set cache.io/mount-path to another directory"],
  },
  {
    name: "pod without containers",
    pod: makePod(files(MODEL), { containers: [] }),
    reason: "invalid-pod",
    says: ["spec.containers is empty"],
  },
];

describe("denials", () => {
  cases.forEach((c, i) => {
    it(`${c.name} → ${c.reason}`, () => {
      const uid = `0b7c1e2a-${String(i).padStart(4, "0")}-4f6e-9d1a-denial`;
      const { result, decision } = admit(c.pod, policy, { uid });
      expect(decision.action).toBe("deny");
      if (decision.action !== "deny") return;
      expect(decision.reason).toBe(c.reason);
      for (const s of c.says) expect(decision.message).toMatch(typeof s === "string" ? new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : s);
      expect(decision.message).toMatch(/^pod "web": /);
      expect(result.httpStatus).toBe(200);
      expect(result.body).toEqual({
        apiVersion: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: { uid, allowed: false, status: { code: 403, reason: "Forbidden", message: decision.message } },
      });
    });
  });

  it("names a controller-made pod by its generateName", () => {
    const pod = makePod(files("ftp://x/y"), { containers: [app()] }, { generateName: "web-7d9f4c6b8-" });
    const { decision } = admit(pod, policy);
    expect(decision.action === "deny" && decision.message).toMatch(/^pod "web-7d9f4c6b8-" \(generateName\): cache.io\/files entry 1/);
  });

  it("cuts a huge entry to a readable length in the message", () => {
    const { decision } = admit(makePod(files(`ftp://x/${"a".repeat(100_000)}`)), policy);
    expect(decision.action).toBe("deny");
    if (decision.action === "deny") expect(decision.message.length).toBeLessThan(400);
  });

  it("allows a private origin the policy names in allowPrivate", () => {
    const p = testPolicy("origins: {allow: ['*'], allowPrivate: [10.0.0.0/8, models.internal]}");
    expect(admit(makePod(files("http://10.1.2.3/x.bin")), p).decision.action).toBe("mutate");
    expect(admit(makePod(files("http://169.254.169.254/x.bin")), p).decision.action).toBe("deny");
  });

  it("applies a namespace's own allow-list and file limit", () => {
    const p = testPolicy("origins: {allow: [a.example.com]}\nnamespaces: {ml: {originsAllow: [b.example.com], maxFiles: 1}}");
    expect(admit(makePod(files("https://b.example.com/x")), p, { namespace: "ml" }).decision.action).toBe("mutate");
    expect(admit(makePod(files("https://b.example.com/x")), p).decision.action).toBe("deny");
    const two = admit(makePod(files("https://b.example.com/x,https://b.example.com/y")), p, { namespace: "ml" }).decision;
    expect(two).toMatchObject({ action: "deny", reason: "too-many-files" });
  });
});

describe("onInvalid: warn", () => {
  const warn = testPolicy("injection: {onInvalid: warn}\nnamespaces: {strict: {onInvalid: deny}}");

  it("admits an invalid pod unchanged with the denial message as a warning", () => {
    const { result, decision } = admit(makePod(files("ftp://x/y")), warn);
    expect(decision).toMatchObject({ action: "skip", reason: "origin-not-allowed" });
    expect(result.outcome).toBe("warned");
    expect(patchOf(result)).toBeUndefined();
    expect(result.body).toMatchObject({
      response: { allowed: true, warnings: [expect.stringMatching(/^cache.io did not inject this pod: pod "web": cache.io\/files entry 1 \("ftp:\/\/x\/y"\): scheme "ftp"/)] },
    });
  });

  it("is resolved per namespace", () => {
    expect(admit(makePod(files("ftp://x/y")), warn, { namespace: "strict" }).decision.action).toBe("deny");
  });
});
