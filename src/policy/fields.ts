// Field types shared by the policy's schema files: byte quantities and durations, given
// as Kubernetes-style strings or plain numbers, become numbers (bytes, milliseconds).
import { z } from "zod";
import { parseBytes, parseDuration } from "./units.js";

export const bytes = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = parseBytes(v);
  if (n === null) {
    ctx.addIssue({ code: "custom", message: `"${v}" is not a byte quantity (examples: 512Mi, 50Gi, 1000000)` });
    return z.NEVER;
  }
  return n;
});

export const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const n = parseDuration(v);
  if (n === null) {
    ctx.addIssue({ code: "custom", message: `"${v}" is not a duration (examples: 500ms, 30s, 10m, 1h)` });
    return z.NEVER;
  }
  return n;
});
