// The review's JSON Patch: applied to the original it gives exactly the injected pod,
// for any JSON; its size follows what changed, not the size of the arrays it touched.
import fc from "fast-check";
import jsonpatch from "fast-json-patch";
import { describe, expect, it } from "vitest";
import { decide } from "../../src/webhook/decide.js";
import { podPatch } from "../../src/webhook/patch.js";
import { admit, app, files, makePod, MODEL, patchOf, testPolicy } from "../support/pod-fixtures.js";

const policy = testPolicy();
const wire = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown; // as sent: -0 is 0
const apply = (before: unknown, ops: ReturnType<typeof podPatch>) => wire(jsonpatch.applyPatch(structuredClone(before), wire(ops) as never, true, false).newDocument);

describe("podPatch", () => {
  it("a pod with 30,000 env entries gets a handful of ops (NODE_IP is one add at env/0), and the patch gives decide()'s pod", () => {
    const env = Array.from({ length: 30_000 }, (_, i) => ({ name: `E${i}`, value: "v" }));
    const pod = makePod(files(MODEL), { containers: [app("app", { env })] });
    const { result, after } = admit(pod, policy);
    const ops = patchOf(result)!;
    expect(ops.length).toBeLessThan(10);
    expect(ops).toContainEqual({ op: "add", path: "/spec/containers/0/env/0", value: { name: "NODE_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } } });
    const d = decide(pod, policy, { namespace: "default", copyOnly: false });
    expect(d.action === "mutate" && after).toEqual(d.action === "mutate" && d.pod);
  });

  it("keys named like Object.prototype members, and keys with / and ~, are added and escaped", () => {
    const before = { a: {} as Record<string, unknown> };
    const after = { a: { constructor: 1, toString: "x", __proto__x: 2, "a/b~c": 3 } };
    const ops = podPatch(before, after);
    expect(ops).toContainEqual({ op: "add", path: "/a/constructor", value: 1 });
    expect(ops).toContainEqual({ op: "add", path: "/a/a~1b~0c", value: 3 });
    expect(apply(before, ops)).toEqual(after);
  });

  it("applies to the original and gives the target, for any two JSON values", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 4 }), (a, b) => {
        fc.pre(!JSON.stringify([a, b]).includes('"__proto__"')); // not a Kubernetes field name; the test's patch library refuses it
        const before = { root: a };
        expect(apply(before, podPatch(before, { root: b }))).toEqual(wire({ root: b }));
      }),
      { numRuns: 2000 },
    );
  });

  it("applies when the target shares parts of the original (insertions, removals and edits of a copy-on-write update)", () => {
    const edit = fc.tuple(fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 6 }), fc.nat(6), fc.nat(6), fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }));
    fc.assert(
      fc.property(fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 8 }), edit, fc.string(), (list, [insert, at, drop, replace], key) => {
        fc.pre(!JSON.stringify([list, insert, replace, key]).includes("__proto__"));
        const i = Math.min(at, list.length);
        const shared = [...list.slice(0, i), ...insert, ...list.slice(i + Math.min(drop, 1) * (replace.length ? 0 : 1)), ...replace];
        const before = { spec: { list, keep: { x: 1 } }, meta: { [key]: "old" } };
        const after = { spec: { list: shared, keep: before.spec.keep }, meta: { ...before.meta, added: key } };
        expect(apply(before, podPatch(before, after))).toEqual(wire(after));
      }),
      { numRuns: 2000 },
    );
  });
});
