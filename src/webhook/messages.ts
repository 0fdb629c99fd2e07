// Why a pod is refused: the fixed set of reason codes (metric labels) and the
// Refusal the parsing and building steps throw, with helpers that quote user input.
import type { V1Pod } from "@kubernetes/client-node";

/** Why a pod was admitted unchanged or denied; a small fixed set (it is a metric label). */
export type ReasonCode =
  | "not-annotated" | "opted-out" | "already-injected" | "not-a-pod" | "not-create"
  | "injected" | "invalid-annotation" | "origin-not-allowed" | "too-many-files"
  | "reserved-name" | "unknown-container" | "mount-conflict" | "invalid-pod" | "windows-pod";

/** A pod the webhook will not inject; `message` says what is wrong and how to fix it. */
export class Refusal extends Error {
  constructor(readonly reason: ReasonCode, message: string) {
    super(message);
    this.name = "Refusal";
  }
}

const MAX_QUOTED = 80;

/**
 * User text as it appears in a message: JSON-quoted (control characters escaped)
 * and cut to a readable length by code point, so a 200 kB annotation stays a line.
 */
export function quote(text: string, max = MAX_QUOTED): string {
  const points = [...text];
  const shown = points.length > max ? points.slice(0, max - 1).join("") + "…" : text;
  return JSON.stringify(shown);
}

/** `cache.io/files entry 2 ("ftp://x/y")`: where in the annotation a problem is. */
export function entryLabel(annotation: string, index: number, text: string): string {
  return `${annotation} entry ${index} (${quote(text)})`;
}

/** How messages name the pod: by name, or by generateName for controller-made pods. */
export function podLabel(pod: V1Pod): string {
  const meta = pod.metadata;
  if (typeof meta?.name === "string" && meta.name) return `pod ${quote(meta.name)}`;
  if (typeof meta?.generateName === "string" && meta.generateName) return `pod ${quote(meta.generateName)} (generateName)`;
  return "";
}
