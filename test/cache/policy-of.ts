// A policy for a test from YAML: every field the test does not name has its default,
// except identity: these tests run a node cache without an API server to verify tokens,
// so a policy that does not name `identity:` gets `identity: {mode: "off"}` (anonymous
// callers); the identity tests name their mode.
import { parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";

export function policyOf(yaml: string): Policy {
  const r = parsePolicy(/^identity:/m.test(yaml) ? yaml : `identity: {mode: "off"}\n${yaml}`);
  if (!r.ok) throw new Error(`test policy is invalid: ${r.errors.join("; ")}`);
  return r.policy;
}
