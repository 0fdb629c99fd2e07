// Read a pod's cache.io/* annotations into one validated injection request
// (files, mode, mount path, selected containers). Pure; refuses with a Refusal.
import type { V1Pod } from "@kubernetes/client-node";
import type { NamespaceSettings } from "../policy/load.js";
import { ANNOTATION } from "../shared/protocol.js";
import { parseFiles, type FileRequest } from "./files.js";
import { quote, Refusal } from "./messages.js";

export type Mode = "mount" | "copy";

export interface InjectRequest {
  files: FileRequest[];
  mode: Mode;
  mountPath: string;
  /** Names of the containers (spec.containers) that get the files. */
  containers: string[];
  warnings: string[];
}

const MOUNT_PATH = /^(\/[A-Za-z0-9._-]+)+$/;

/** The annotation's value, or undefined when absent; a non-string value is refused. */
export function annotation(pod: V1Pod, key: string): string | undefined {
  const annotations: unknown = pod.metadata?.annotations;
  if (typeof annotations !== "object" || annotations === null) return undefined;
  const value: unknown = (annotations as Record<string, unknown>)[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new Refusal("invalid-annotation", `${key} must be a string.`);
  return value;
}

export function readRequest(pod: V1Pod, settings: NamespaceSettings, copyOnly: boolean): InjectRequest {
  const files = parseFiles(annotation(pod, ANNOTATION.files) ?? "", settings.injection.maxFiles, settings.origins, settings.keyIgnore);
  const asked = parseMode(annotation(pod, ANNOTATION.mode));
  const warnings: string[] = [];
  if (copyOnly && asked === "mount") {
    warnings.push(
      `${ANNOTATION.mode} "mount" was replaced by "copy": this namespace's Pod Security level forbids hostPath volumes, ` +
        "so the files are copied into an emptyDir by the init container instead.",
    );
  }
  return {
    files,
    mode: copyOnly ? "copy" : (asked ?? settings.injection.mode),
    mountPath: parseMountPath(annotation(pod, ANNOTATION.mountPath)) ?? settings.injection.mountPath,
    containers: selectContainers(pod, annotation(pod, ANNOTATION.containers)),
    warnings,
  };
}

function parseMode(value: string | undefined): Mode | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === "mount" || v === "copy") return v;
  throw new Refusal("invalid-annotation", `${ANNOTATION.mode} ${quote(value)} is not a mode. Use "mount" (read-only hostPath, no copy) or "copy" (copied into an emptyDir).`);
}

function parseMountPath(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  const segments = v.split("/").slice(1);
  if (MOUNT_PATH.test(v) && !segments.some((s) => s === "." || s === "..")) return v;
  throw new Refusal(
    "invalid-annotation",
    `${ANNOTATION.mountPath} ${quote(value)} is not a usable directory. Use an absolute path of letters, digits, ".", "_", "-" and "/", ` +
      'without "." or ".." segments, a trailing or double slash, and not "/" itself, e.g. /cache or /models.',
  );
}

/** The containers that get the files: all of spec.containers, or those the annotation lists. */
function selectContainers(pod: V1Pod, value: string | undefined): string[] {
  const existing = (pod.spec?.containers ?? []).map((c) => c.name);
  if (existing.length === 0) throw new Refusal("invalid-pod", "the pod has no containers (spec.containers is empty).");
  if (value === undefined) return existing;
  const wanted = [...new Set(value.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
  const list = existing.map((n) => quote(n, 63)).join(", ");
  if (wanted.length === 0) {
    throw new Refusal("unknown-container", `${ANNOTATION.containers} is empty. List container names separated by commas (this pod's containers: ${list}), or remove the annotation to give the files to all of them.`);
  }
  const unknown = wanted.filter((n) => !existing.includes(n));
  if (unknown.length) {
    throw new Refusal("unknown-container", `${ANNOTATION.containers} names ${unknown.map((n) => quote(n, 63)).join(", ")}, which ${unknown.length > 1 ? "are not containers" : "is not a container"} of this pod. Use names from spec.containers: ${list}.`);
  }
  return wanted;
}
