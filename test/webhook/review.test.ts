// The AdmissionReview envelope: what kube-apiserver sends and expects back, and the
// requests that are not ours (other kinds, operations, subresources) or malformed.
import { describe, expect, it } from "vitest";
import { review } from "../../src/webhook/review.js";
import { admissionReview, files, makePod, MODEL, patchOf, responseOf, testPolicy } from "../support/pod-fixtures.js";

const policy = testPolicy('identity: {mode: "off"}');
const pod = makePod(files(MODEL));
const run = (body: unknown, copyOnly = false) => review(body, policy, { copyOnly });

describe("review envelope", () => {
  it("answers a Pod CREATE with the request's uid, apiVersion, kind and a base64 JSONPatch", () => {
    const result = run(admissionReview(pod, { uid: "a1b2-c3" }));
    expect(result).toMatchObject({ httpStatus: 200, outcome: "patched", reason: "injected" });
    expect(result.body).toMatchObject({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" });
    const response = responseOf(result);
    expect(response).toMatchObject({ uid: "a1b2-c3", allowed: true, patchType: "JSONPatch" });
    expect(response.patch).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(patchOf(result)?.length).toBeGreaterThan(0);
  });

  const notOurs: Array<[string, Parameters<typeof admissionReview>[1]]> = [
    ["a Deployment", { kind: { group: "apps", version: "v1", kind: "Deployment" } }],
    ["a Pod UPDATE", { operation: "UPDATE" }],
    ["a Pod DELETE", { operation: "DELETE" }],
    ["a Pod subresource (ephemeralcontainers)", { subResource: "ephemeralcontainers" }],
    ["a kind named Pod in another group", { kind: { group: "example.com", version: "v1", kind: "Pod" } }],
  ];
  for (const [name, opts] of notOurs) {
    it(`admits ${name} unchanged`, () => {
      const result = run(admissionReview(pod, { uid: "u-1", ...opts }));
      expect(result.httpStatus).toBe(200);
      expect(result.body).toEqual({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid: "u-1", allowed: true } });
    });
  }

  const malformed: Array<[string, unknown]> = [
    ["a string", "not json"],
    ["null", null],
    ["an array", [admissionReview(pod)]],
    ["the v1beta1 API", { ...admissionReview(pod), apiVersion: "admission.k8s.io/v1beta1" }],
    ["another kind", { ...admissionReview(pod), kind: "TokenReview" }],
    ["no request", { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }],
    ["a request without uid", { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: { kind: { group: "", kind: "Pod" } } }],
    ["a request with an empty uid", admissionReview(pod, { uid: "" })],
    ["a request whose uid is not a string", admissionReview(pod, { uid: 42 as unknown as string })],
    ["a Pod CREATE whose object is not an object", admissionReview("a pod")],
  ];
  for (const [name, body] of malformed) {
    it(`answers ${name} with HTTP 400 and a JSON error`, () => {
      const result = run(body);
      expect(result).toMatchObject({ httpStatus: 400, outcome: "malformed", reason: "malformed" });
      expect(result.body).toEqual({ error: expect.stringMatching(/\S/) });
    });
  }

  it("names the missing uid in the error of a review with an empty uid", () => {
    expect(run(admissionReview(pod, { uid: "" })).body).toEqual({ error: "AdmissionReview request has no uid" });
  });

  it("denies, not crashes, on a pod whose fields have the wrong types", () => {
    const odd = [
      { ...pod, spec: { containers: "app" } },
      { ...pod, spec: { containers: [{ image: "x" }] } },
      { ...pod, spec: { containers: [{ name: "a", env: { NODE_IP: 1 } }] } },
      { ...pod, metadata: { name: "web", annotations: { "cache.io/files": 42 } } },
      { ...pod, spec: null },
    ];
    for (const o of odd) {
      const result = run(admissionReview(o));
      expect(result.httpStatus).toBe(200);
      expect(responseOf(result)).toMatchObject({ allowed: false, status: { message: expect.stringMatching(/\S/) } });
    }
  });

  it("passes copyOnly through to the decision", () => {
    const after = patchOf(run(admissionReview(pod), true));
    expect(after).toContainEqual({ op: "add", path: "/spec/volumes", value: [{ name: "cache-io-files", emptyDir: {} }] });
  });
});
