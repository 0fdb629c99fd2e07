// admission.k8s.io/v1 AdmissionReview in, AdmissionReview out. Pure: no I/O, so the
// server, the CLI and the tests all go through exactly this code.
import type { V1Pod } from "@kubernetes/client-node";
import type { Policy } from "../policy/schema.js";
import { decide, type ReasonCode } from "./decide.js";
import { podPatch } from "./patch.js";

export type Outcome = "patched" | "allowed" | "warned" | "denied" | "malformed";

export interface ReviewResult {
  httpStatus: 200 | 400;
  body: unknown;
  outcome: Outcome;
  reason: ReasonCode | "malformed";
}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  subResource?: string;
  object?: unknown;
}

function malformed(message: string): ReviewResult {
  return { httpStatus: 400, body: { error: message }, outcome: "malformed", reason: "malformed" };
}

function respond(uid: string, response: Record<string, unknown>): unknown {
  return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid, ...response } };
}

/** Validate the envelope; what is not a well-formed v1 review is the caller's bug (400). */
function parseEnvelope(body: unknown): AdmissionRequest | string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "body must be a JSON AdmissionReview object";
  const review = body as Record<string, unknown>;
  if (review.apiVersion !== "admission.k8s.io/v1" || review.kind !== "AdmissionReview") {
    return `expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got ${String(review.apiVersion)} ${String(review.kind)}`;
  }
  const req = review.request as Record<string, unknown> | undefined;
  if (typeof req !== "object" || req === null) return "AdmissionReview has no request";
  if (typeof req.uid !== "string" || req.uid === "") return "AdmissionReview request has no uid";
  return req as unknown as AdmissionRequest;
}

export function review(body: unknown, policy: Policy, opts: { copyOnly: boolean }): ReviewResult {
  const req = parseEnvelope(body);
  if (typeof req === "string") return malformed(req);
  const allow = (reason: ReasonCode, outcome: Outcome = "allowed", warnings: string[] = []): ReviewResult => ({
    httpStatus: 200,
    body: respond(req.uid, { allowed: true, ...(warnings.length ? { warnings } : {}) }),
    outcome,
    reason,
  });

  const isPod = req.kind?.group === "" && req.kind?.kind === "Pod" && !req.subResource;
  if (!isPod) return allow("not-a-pod");
  if (req.operation !== "CREATE") return allow("not-create");
  const pod = req.object;
  if (typeof pod !== "object" || pod === null || Array.isArray(pod)) return malformed("AdmissionReview request.object must be the Pod");

  const decision = decide(pod as V1Pod, policy, { namespace: req.namespace, copyOnly: opts.copyOnly });
  switch (decision.action) {
    case "skip":
      return allow(decision.reason, decision.warnings.length ? "warned" : "allowed", decision.warnings);
    case "deny":
      return {
        httpStatus: 200,
        body: respond(req.uid, {
          allowed: false,
          status: { code: 403, reason: "Forbidden", message: decision.message },
          ...(decision.warnings.length ? { warnings: decision.warnings } : {}),
        }),
        outcome: "denied",
        reason: decision.reason,
      };
    case "mutate": {
      const patch = podPatch(pod, decision.pod);
      const warnings = decision.warnings.length ? { warnings: decision.warnings } : {};
      return {
        httpStatus: 200,
        body: respond(req.uid, {
          allowed: true,
          patchType: "JSONPatch",
          patch: Buffer.from(JSON.stringify(patch)).toString("base64"),
          ...warnings,
        }),
        outcome: "patched",
        reason: "injected",
      };
    }
  }
}
