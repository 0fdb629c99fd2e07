// A policy for a test from YAML: every field the test does not name has its default.
import { parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";

export function policyOf(yaml: string): Policy {
  const r = parsePolicy(yaml);
  if (!r.ok) throw new Error(`test policy is invalid: ${r.errors.join("; ")}`);
  return r.policy;
}
