// The volumes cache.io adds to a pod and the mounts it adds to the selected
// containers: per-file read-only hostPath subPath mounts, or one emptyDir (copy).
import type { V1Container, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import { objectDir, OBJECT_FILE, RESERVED } from "../shared/protocol.js";
import type { Mode } from "./annotations.js";
import type { FileRequest } from "./files.js";
import { quote, Refusal } from "./messages.js";

/** Name of the hostPath volume of one file's cache directory. */
export function fileVolumeName(file: FileRequest): string {
  return RESERVED.volumePrefix + file.key.slice(0, 16);
}

export function podVolumes(files: FileRequest[], mode: Mode, cacheRoot: string): V1Volume[] {
  if (mode === "copy") return [{ name: RESERVED.copyVolume, emptyDir: {} }];
  return files.map((f) => ({ name: fileVolumeName(f), hostPath: { path: objectDir(cacheRoot, f.key), type: "DirectoryOrCreate" } }));
}

/** What each selected container mounts: the files at `<mountPath>/<name>`, read-only. */
export function appMounts(files: FileRequest[], mode: Mode, mountPath: string): V1VolumeMount[] {
  if (mode === "copy") return [{ name: RESERVED.copyVolume, mountPath, readOnly: true }];
  return files.map((f) => ({ name: fileVolumeName(f), mountPath: `${mountPath}/${f.name}`, subPath: OBJECT_FILE, readOnly: true }));
}

/** The init container writes copies into the emptyDir; in mount mode it mounts nothing. */
export function fetcherMounts(mode: Mode): V1VolumeMount[] {
  return mode === "copy" ? [{ name: RESERVED.copyVolume, mountPath: RESERVED.copyDir }] : [];
}

/** Append mounts to a (copied) container; refuse when it already mounts something there. */
export function addMounts(container: V1Container, mounts: V1VolumeMount[]): void {
  const existing = container.volumeMounts ?? [];
  for (const m of mounts) {
    const clash = existing.find((e) => e.mountPath === m.mountPath);
    if (clash) {
      throw new Refusal(
        "mount-conflict",
        `container ${quote(container.name, 63)} already mounts volume ${quote(clash.name, 63)} at ${quote(m.mountPath)}, where cache.io would put ` +
          `${m.subPath ? "a file" : "its files"}. Set cache.io/mount-path to another directory (or rename the file with #name=FILE).`,
      );
    }
  }
  container.volumeMounts = [...existing, ...mounts];
}
