// Property tests over hostile annotation values: review() always returns a patch
// that applies and passes the API server's checks, or a denial with a message;
// it never throws, and no shell or $(VAR) expansion is reachable from user input.
import type { V1Pod } from "@kubernetes/client-node";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cacheKey } from "../../src/shared/protocol.js";
import { review } from "../../src/webhook/review.js";
import { admissionReview, app, fetcherOf, makePod, patched, responseOf, testPolicy } from "../support/pod-fixtures.js";
import { podProblems } from "../support/pod-rules.js";

const policy = testPolicy(`identity: {mode: "off"}\norigins: {allow: ['*.example.com', example.org, '10.0.0.1', '[::1]']}\ninjection: {maxFiles: 8}`);
const warnPolicy = testPolicy('identity: {mode: "off"}\ninjection: {onInvalid: warn}');

const HOSTILE = [
  ";", "|", "&", "&&", "$", "$(", "${", "$(NODE_IP)", "$$(", "`", "'", '"', "\\", "<", ">", "*", "?", "[", "]", "{", "}", "(", ")",
  "~", "!", "#", "%", "%00", "%2F", "%2e%2e", "%24%28", "..", "/", "../", "./", ",", "\n", "\r\n", "\t", " ", "\u0000", "\u2028",
  "é", "名前", "🦙", "\u202e", "\ufeff", "=", "sha256=", "name=", "#sha256=", "#name=", "http://", "https://", "ftp://", "file:///",
  "a.example.com", "example.org", "evil.net", "10.0.0.1", "127.0.0.1", "[::1]", "169.254.169.254", "@", ":", ":8080",
  '{"url":', '[{"url":"https://a.example.com/x"}]', "null", "0", "e".repeat(64), "F".repeat(64), "model.bin",
];

const hostileString = fc.oneof(
  fc.array(fc.oneof(fc.constantFrom(...HOSTILE), fc.string({ maxLength: 6 })), { maxLength: 24 }).map((parts) => parts.join("")),
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.json({ maxDepth: 2 }),
);

/** Mostly `good`, sometimes anything: each part of a valid pod goes wrong now and then. */
const mostly = <A, B>(good: fc.Arbitrary<A>, bad: fc.Arbitrary<B>): fc.Arbitrary<A | B> => fc.oneof({ weight: 9, arbitrary: good }, { weight: 1, arbitrary: bad });

const segment = mostly(
  fc.constantFrom("model.bin", "data", "v1", "weights.safetensors", "名前.bin", "~u", "a%20b.txt"),
  fc.oneof(fc.constantFrom("a b", "..", ".", "%2F", "$(HOME)", "x;rm -rf", "%", ""), fc.string({ maxLength: 8 })),
);
const fragment = mostly(
  fc.tuple(fc.option(fc.constantFrom("a".repeat(64), "AB".repeat(32))), fc.option(fc.constantFrom("m.bin", "x_1", "A-b.c"))).map(([sha, name]) =>
    [sha !== null ? `sha256=${sha}` : "", name !== null ? `name=${name}` : ""].filter(Boolean).join("&")),
  fc.oneof(hostileString, fc.constantFrom("sha256=xyz", "name=..", "name=a/b", "name=$(X)", "size=1")),
).map((f) => (f ? `#${f}` : ""));
const host = mostly(
  fc.constantFrom("a.example.com", "b.example.com:8443", "example.org", "A.Example.COM"),
  fc.constantFrom("evil.net", "10.0.0.1", "[::1]", "169.254.169.254", "user:pw@a.example.com", "", "a.example.com:99999"),
);
const query = mostly(fc.constant(""), fc.oneof(fc.constant("?v=1&sig=a%2Bb"), hostileString.map((q) => `?${q}`)));
const url = fc
  .tuple(mostly(fc.constantFrom("https", "http", "HTTPS"), fc.constantFrom("ftp", "file", "javascript")), host, fc.array(segment, { minLength: 1, maxLength: 3 }), query, fragment)
  .map(([scheme, h, path, q, frag]) => `${scheme}://${h}/${path.join("/")}${q}${frag}`);

/** Mostly URL-shaped lists, so the mutate path is exercised as much as the deny path. */
const filesValue = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.array(url, { minLength: 1, maxLength: 4 }), fc.constantFrom("\n", ",", " , ", "\r\n")).map(([u, sep]) => u.join(sep)) },
  { weight: 1, arbitrary: fc.array(url, { minLength: 1, maxLength: 3 }).map((u) => JSON.stringify(u.map((x) => ({ url: x })))) },
  { weight: 1, arbitrary: hostileString },
);

const extras = fc.record(
  {
    "cache.io/mode": mostly(fc.constantFrom("mount", "copy", " copy "), hostileString),
    "cache.io/mount-path": mostly(fc.constantFrom("/cache", "/data/models", "/x.y/_z-1"), fc.oneof(fc.constantFrom("/a/../b", "/", "/c/"), hostileString)),
    "cache.io/containers": mostly(fc.constantFrom("app", "app,side", " side "), fc.oneof(fc.constantFrom("nope", ","), hostileString)),
    "ex~ample.com/k/~1": hostileString, // a key the JSON patch must escape
  },
  { requiredKeys: [] },
);

function podFor(files: string, more: Record<string, string>): V1Pod {
  return makePod({ ...more, "cache.io/files": files }, { containers: [app(), app("side", { env: [{ name: "A", value: "$(NODE_IP)" }] })] });
}

const FIXED = /^(-q|--silent|--show-error|--fail|--fail-early|--globoff|--proto|=http|--connect-timeout|--speed-limit|--speed-time|--retry|--retry-all-errors|--retry-delay|--parallel|--parallel-immediate|--parallel-max|--next|-o|-|\d+)$/;
const CACHE_URL = /^http:\/\/\$\(NODE_IP\):8585\/v1\/(ensure|objects)\/([0-9a-f]{64})\?url=([A-Za-z0-9%._~-]+)(&sha256=[0-9a-f]{64})?$/;
const COPY_TARGET = /^\/cache-io\/[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** Every argument is a fixed flag, a validated copy target, or a cache URL whose only user part is strictly encoded. */
function argProblems(args: string[]): string[] {
  const problems: string[] = [];
  for (const arg of args) {
    if (FIXED.test(arg) || COPY_TARGET.test(arg)) continue;
    const m = CACHE_URL.exec(arg);
    if (!m) {
      problems.push(`unexpected argument ${JSON.stringify(arg)}`);
      continue;
    }
    if (arg.split("$(").length !== 2) problems.push(`more than one $( in ${arg}`);
    if (cacheKey(decodeURIComponent(m[3]!)) !== m[2]) problems.push(`key does not match the url in ${arg}`);
  }
  return problems;
}

function checkResult(pod: V1Pod, body: unknown, p = policy): "patched" | "denied" | "allowed" {
  const result = review(body, p, { copyOnly: false });
  expect(result.httpStatus).toBe(200);
  const response = responseOf(result);
  if (response.allowed === false) {
    expect((response.status as { message: string }).message).toMatch(/\S/);
    return "denied";
  }
  if (response.patch === undefined) return "allowed";
  const after = patched(pod, result);
  expect(podProblems(after)).toEqual([]);
  const fetcher = fetcherOf(after)!;
  expect(fetcher.command).toEqual(["curl"]);
  expect(argProblems(fetcher.args ?? [])).toEqual([]);
  return "patched";
}

describe("hostile annotation values", () => {
  it("give a valid patch or a clear denial, never a crash or a reachable shell", () => {
    const seen = { patched: 0, denied: 0, allowed: 0 };
    fc.assert(
      fc.property(filesValue, extras, (files, more) => {
        const pod = podFor(files, more);
        seen[checkResult(pod, admissionReview(pod))]++;
      }),
      { numRuns: 4000 },
    );
    // The generators must reach both outcomes often, or the property proves little.
    expect(seen.patched).toBeGreaterThan(400);
    expect(seen.denied).toBeGreaterThan(400);
  });

  it("in warn mode admit invalid pods unchanged, with a warning", () => {
    fc.assert(
      fc.property(hostileString, (files) => {
        const pod = podFor(files, {});
        const outcome = checkResult(pod, admissionReview(pod), warnPolicy);
        expect(outcome).not.toBe("denied");
      }),
      { numRuns: 1000 },
    );
  });

  it("survive huge values", () => {
    for (const files of ["https://a.example.com/" + "a/".repeat(60_000) + "x", "$(".repeat(100_000), ",".repeat(200_000), "https://a.example.com/x\n".repeat(5000)]) {
      const pod = podFor(files, { "cache.io/mount-path": "/" + "d".repeat(100_000) });
      checkResult(pod, admissionReview(pod));
    }
  });

  it("survive hostile names in the pod itself", () => {
    fc.assert(
      fc.property(hostileString, hostileString, (name, value) => {
        const pod = makePod({ "cache.io/files": "https://a.example.com/m.bin", [name]: value }, { containers: [app()] }, { generateName: name });
        checkResult(pod, admissionReview(pod));
      }),
      { numRuns: 500 },
    );
  });

  it("survive any JSON where the pod's fields should be", () => {
    // Nearly valid pods, with any JSON in one place or another, reach every step.
    const json = fc.jsonValue({ maxDepth: 3 });
    const mount = mostly(fc.record({ name: mostly(fc.constant("v"), json), mountPath: mostly(fc.constantFrom("/cache/m.bin", "/cache", "/x"), json) }), json);
    const container = mostly(
      fc.record({ name: mostly(fc.constantFrom("app", "side"), json), env: mostly(fc.constant([]), json), volumeMounts: mostly(fc.array(mount, { maxLength: 2 }), json) }, { requiredKeys: ["name"] }),
      json,
    );
    const podish = fc.record({
      metadata: mostly(fc.record({ name: mostly(fc.constant("web"), json), annotations: mostly(fc.dictionary(fc.constantFrom("cache.io/mode", "cache.io/containers", "cache.io/mount-path"), mostly(fc.constantFrom("copy", "app", "/cache"), json)), json) }), json),
      spec: mostly(fc.record({ containers: mostly(fc.array(container, { minLength: 1, maxLength: 2 }), json), initContainers: mostly(fc.array(container, { maxLength: 2 }), json), volumes: json }, { requiredKeys: ["containers"] }), json),
    });
    fc.assert(
      fc.property(podish, fc.boolean(), (obj, withFiles) => {
        const o = obj as Record<string, Record<string, unknown>>;
        if (withFiles && typeof o.metadata === "object" && o.metadata !== null && !Array.isArray(o.metadata)) {
          o.metadata.annotations = { ...(o.metadata.annotations as object), "cache.io/files": "https://a.example.com/m.bin" };
        }
        // The envelope is valid and the object is an object: whatever is inside, the answer is a review (200), never a 400 or a throw.
        const result = review(admissionReview(o, { uid: "fuzz-uid-7" }), policy, { copyOnly: false });
        expect(result.httpStatus).toBe(200);
        const response = (result.body as { response: { uid: string; allowed: boolean; status?: { message: string } } }).response;
        expect(response.uid).toBe("fuzz-uid-7");
        if (!response.allowed) expect(response.status?.message).toMatch(/\S/);
      }),
      { numRuns: 3000 },
    );
  });
});
