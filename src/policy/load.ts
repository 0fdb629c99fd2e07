// Parse and validate a policy document; resolve what applies to one namespace.
import { parseDocument } from "yaml";
import type { z } from "zod";
import type { OriginRules } from "../shared/origin.js";
import { DEFAULT_POLICY_YAML } from "./default.js";
import { policySchema, type InjectionSettings, type Policy } from "./schema.js";

export type PolicyResult = { ok: true; policy: Policy } | { ok: false; errors: string[] };

function describe(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.join(".") : "(top level)";
  if (issue.code === "unrecognized_keys") return `${path}: unknown field(s) ${issue.keys.join(", ")}`;
  return `${path}: ${issue.message}`;
}

/** Validate a policy given as YAML (or JSON) text; errors name each bad field. */
export function parsePolicy(text: string): PolicyResult {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length) return { ok: false, errors: doc.errors.map((e) => `YAML: ${e.message}`) };
  const data: unknown = doc.toJS() ?? {};
  if (typeof data !== "object" || Array.isArray(data)) return { ok: false, errors: ["(top level): must be a mapping"] };
  const parsed = policySchema.safeParse(data);
  if (!parsed.success) return { ok: false, errors: parsed.error.issues.map(describe) };
  return { ok: true, policy: parsed.data };
}

let defaultPolicyCache: Policy | undefined;

/** The embedded default policy. */
export function defaultPolicy(): Policy {
  if (!defaultPolicyCache) {
    const r = parsePolicy(DEFAULT_POLICY_YAML);
    if (!r.ok) throw new Error(`embedded default policy is invalid: ${r.errors.join("; ")}`);
    defaultPolicyCache = r.policy;
  }
  return defaultPolicyCache;
}

/** What the webhook applies to pods in one namespace. */
export interface NamespaceSettings {
  injection: InjectionSettings;
  origins: OriginRules;
  fetcherResources: Policy["fetcher"]["resources"];
  /** How file keys are computed (cache.keyIgnoreQuery); the node cache uses the same. */
  keyIgnore: Policy["cache"]["keyIgnoreQuery"];
}

export function settingsFor(policy: Policy, namespace: string | undefined): NamespaceSettings {
  const o = (namespace && policy.namespaces[namespace]) || {};
  const { originsAllow, fetcher, diskShare: _share, ...injection } = o;
  return {
    injection: { ...policy.injection, ...stripUndefined(injection) },
    origins: { ...policy.origins, allow: originsAllow ?? policy.origins.allow },
    fetcherResources: fetcher?.resources ?? policy.fetcher.resources,
    keyIgnore: policy.cache.keyIgnoreQuery,
  };
}

/** The share of cache.diskBudget one namespace's files may hold, and the field that sets it. */
export function diskShareOf(policy: Policy, namespace: string): { share: number; field: string } {
  const own = Object.hasOwn(policy.namespaces, namespace) ? policy.namespaces[namespace]!.diskShare : undefined;
  return own === undefined
    ? { share: policy.identity.diskSharePerNamespace, field: "identity.diskSharePerNamespace" }
    : { share: own, field: `namespaces.${namespace}.diskShare` };
}

/** The node cache serves every namespace: it allows the union of all allow-lists. */
export function cacheOriginRules(policy: Policy): OriginRules {
  const allow = new Set(policy.origins.allow);
  for (const ns of Object.values(policy.namespaces)) for (const a of ns.originsAllow ?? []) allow.add(a);
  return { ...policy.origins, allow: [...allow] };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
