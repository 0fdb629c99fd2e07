// PLACEHOLDER: the pure mutation decision. Replaced by the real implementation.
import type { V1Pod } from "@kubernetes/client-node";
import type { Policy } from "../policy/schema.js";

/** Why a pod was admitted unchanged or denied; a small fixed set (it is a metric label). */
export type ReasonCode =
  | "not-annotated" | "opted-out" | "already-injected" | "not-a-pod" | "not-create"
  | "injected" | "invalid-annotation" | "origin-not-allowed" | "too-many-files"
  | "reserved-name" | "unknown-container" | "mount-conflict";

export type Decision =
  | { action: "skip"; reason: ReasonCode; warnings: string[] }
  | { action: "mutate"; reason: "injected"; pod: V1Pod; warnings: string[] }
  | { action: "deny"; reason: ReasonCode; message: string };

export interface DecideOptions {
  namespace?: string;
  /** The namespace's Pod Security level forbids hostPath: always copy mode. */
  copyOnly: boolean;
}

export function decide(_pod: V1Pod, _policy: Policy, _opts: DecideOptions): Decision {
  return { action: "skip", reason: "not-annotated", warnings: [] };
}
