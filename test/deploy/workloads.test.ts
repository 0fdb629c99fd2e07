// The rendered workloads: the webhook Deployment/Service/PDB agree with each other and
// with the server's flags; the node cache DaemonSet matches the shipped policy; every
// pod's security context is Pod Security "restricted" where the component allows it.
import type { V1Container, V1PodSpec } from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_POLICY_YAML } from "../../src/policy/default.js";
import { PEER_TOKEN_FILE } from "../../src/cli/cache.js";
import { parsePolicy } from "../../src/policy/load.js";
import { TOKEN_AUDIENCE } from "../../src/shared/identity.js";
import { find, kustomize, podSpecOf, selects, type Obj } from "./k8s.js";

const PSA = "pod-security.kubernetes.io/enforce";
let objs: Obj[];
beforeAll(async () => {
  objs = await kustomize("deploy/default");
});
const spec = (kind: string, name: string): V1PodSpec => podSpecOf(find(objs, kind, name))!;
const argAfter = (c: V1Container, flag: string) => c.args![c.args!.indexOf(flag) + 1];
const allContainers = (s: V1PodSpec) => [...(s.initContainers ?? []), ...s.containers];

/** What Pod Security "restricted" requires of a container (pod-level values count). */
function restrictedViolations(s: V1PodSpec): string[] {
  return allContainers(s).flatMap((c) => {
    const sc = { ...s.securityContext, ...c.securityContext };
    const v: string[] = [];
    if (sc.runAsNonRoot !== true) v.push(`${c.name}: runAsNonRoot`);
    if (sc.runAsUser === 0) v.push(`${c.name}: runAsUser 0`);
    if (c.securityContext?.allowPrivilegeEscalation !== false) v.push(`${c.name}: allowPrivilegeEscalation`);
    if (JSON.stringify(c.securityContext?.capabilities?.drop) !== '["ALL"]' || c.securityContext?.capabilities?.add) v.push(`${c.name}: capabilities`);
    if (sc.seccompProfile?.type !== "RuntimeDefault") v.push(`${c.name}: seccomp`);
    if (c.securityContext?.readOnlyRootFilesystem !== true) v.push(`${c.name}: readOnlyRootFilesystem`);
    if (c.ports?.some((p) => p.hostPort)) v.push(`${c.name}: hostPort`);
    return v;
  }).concat((s.volumes ?? []).filter((v) => v.hostPath).map((v) => `volume ${v.name}: hostPath`), s.hostNetwork ? ["hostNetwork"] : []);
}

describe("webhook", () => {
  it("Service 443 -> the container's named port -> the port the server is told to listen on", () => {
    const svc = find(objs, "Service", "cache-io-webhook");
    const c = spec("Deployment", "cache-io-webhook").containers[0]!;
    const port = svc.spec.ports[0];
    expect(port.port).toBe(443);
    const target = c.ports!.find((p) => p.name === port.targetPort)!;
    expect(target.containerPort).toBe(8443);
    expect(argAfter(c, "--port")).toBe("8443");
    expect(argAfter(c, "--host")).toBe("0.0.0.0");
    expect(c.args).toContain("--no-generate-certs");
    expect(selects({ matchLabels: svc.spec.selector }, find(objs, "Deployment", "cache-io-webhook").spec.template.metadata.labels)).toBe(true);
  });

  it("mounts the TLS Secret (without the CA key) and the policy where its flags point", () => {
    const s = spec("Deployment", "cache-io-webhook");
    const c = s.containers[0]!;
    const mountOf = (volume: string) => c.volumeMounts!.find((m) => m.name === volume)!;
    const certs = s.volumes!.find((v) => v.name === "certs")!.secret!;
    expect(certs.secretName).toBe("cache-io-webhook-tls");
    expect(certs.items!.map((i) => i.key).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    expect(mountOf("certs").mountPath).toBe(argAfter(c, "--certs"));
    expect(s.volumes!.find((v) => v.name === "policy")!.configMap!.name).toBe("cache-io-policy");
    expect(`${mountOf("policy").mountPath}/policy.yaml`).toBe(argAfter(c, "--policy"));
  });

  it("2 replicas spread by hostname, a PDB that keeps one, HTTPS probes, resources, no API token", () => {
    const d = find(objs, "Deployment", "cache-io-webhook");
    expect(d.spec.replicas).toBe(2);
    const s = spec("Deployment", "cache-io-webhook");
    const term = s.affinity!.podAntiAffinity!.preferredDuringSchedulingIgnoredDuringExecution![0]!.podAffinityTerm;
    expect(term.topologyKey).toBe("kubernetes.io/hostname");
    expect(selects(term.labelSelector!, d.spec.template.metadata.labels)).toBe(true);
    const pdb = find(objs, "PodDisruptionBudget", "cache-io-webhook");
    expect(pdb.spec.minAvailable).toBe(1);
    expect(selects(pdb.spec.selector, d.spec.template.metadata.labels)).toBe(true);
    const c = s.containers[0]!;
    expect(c.readinessProbe!.httpGet).toMatchObject({ scheme: "HTTPS", path: "/readyz", port: "https" });
    expect(c.livenessProbe!.httpGet).toMatchObject({ scheme: "HTTPS", path: "/healthz", port: "https" });
    expect(c.resources!.requests).toBeDefined();
    expect(c.resources!.limits!.memory).toBeDefined();
    expect(s.automountServiceAccountToken).toBe(false);
    expect(find(objs, "ServiceAccount", "cache-io-webhook").automountServiceAccountToken).toBe(false);
  });
});

describe("node cache", () => {
  const policy = () => {
    const r = parsePolicy(find(objs, "ConfigMap", "cache-io-policy").data["policy.yaml"]);
    if (!r.ok) throw new Error(r.errors.join());
    return r.policy;
  };

  it("the ConfigMap ships the embedded default policy byte for byte", () => {
    expect(find(objs, "ConfigMap", "cache-io-policy").data["policy.yaml"]).toBe(DEFAULT_POLICY_YAML);
  });

  it("hostPort and hostPath come from the shipped policy; the root is mounted at the same path", () => {
    const s = spec("DaemonSet", "cache-io-cache");
    const c = s.containers[0]!;
    expect(c.ports![0]).toMatchObject({ containerPort: policy().cache.port, hostPort: policy().cache.port });
    const root = s.volumes!.find((v) => v.hostPath)!;
    expect(root.hostPath).toEqual({ path: policy().cache.root, type: "DirectoryOrCreate" });
    expect(c.volumeMounts!.find((m) => m.name === root.name)!.mountPath).toBe(policy().cache.root);
    expect(argAfter(c, "--policy")).toBe("/etc/cache-io/policy/policy.yaml");
  });

  it("runs everywhere, outranks workloads, has probes, and NODE_NAME from the downward API", () => {
    const s = spec("DaemonSet", "cache-io-cache");
    expect(s.tolerations).toEqual([{ operator: "Exists" }]);
    const pc = find(objs, "PriorityClass", s.priorityClassName!);
    expect(pc.value).toBe(1_000_000_000);
    const c = s.containers[0]!;
    expect(c.env).toContainEqual({ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } });
    expect(c.readinessProbe!.httpGet).toMatchObject({ path: "/readyz", port: "http" });
    expect(c.livenessProbe!.httpGet).toMatchObject({ path: "/healthz", port: "http" });
    expect(c.resources!.limits!.memory).toBeDefined();
  });

  it("the cluster tier: a headless Service over its pods' peer port (no hostPort), the env the CLI reads, its own short-lived token where the CLI looks", () => {
    const ds = find(objs, "DaemonSet", "cache-io-cache");
    const s = spec("DaemonSet", "cache-io-cache");
    const c = s.containers[0]!;
    const peer = c.ports!.find((p) => p.name === "peer")!;
    expect(peer).toEqual({ name: "peer", containerPort: policy().cache.peers.port, protocol: "TCP" });
    const svc = find(objs, "Service", "cache-io-node-cache-peers");
    expect(svc.spec.clusterIP).toBe("None");
    expect(selects({ matchLabels: svc.spec.selector }, ds.spec.template.metadata.labels)).toBe(true);
    expect(svc.spec.ports).toEqual([{ name: "peer", port: policy().cache.peers.port, targetPort: "peer", protocol: "TCP" }]);
    expect(c.env).toEqual(expect.arrayContaining([
      { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
      { name: "CACHE_IO_SERVICE_ACCOUNT", valueFrom: { fieldRef: { fieldPath: "spec.serviceAccountName" } } },
      { name: "CACHE_IO_PEERS_SERVICE", value: "cache-io-node-cache-peers" },
    ]));
    const vol = s.volumes!.find((v) => v.projected)!;
    expect(vol.projected!.sources).toEqual([{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: 3600, path: "token" } }]);
    const mount = c.volumeMounts!.find((m) => m.name === vol.name)!;
    expect(`${mount.mountPath}/token`).toBe(PEER_TOKEN_FILE);
    expect(mount.readOnly).toBe(true);
  });

  it("uid 0 with no capabilities, no privilege escalation, read-only root, RuntimeDefault seccomp", () => {
    const c = spec("DaemonSet", "cache-io-cache").containers[0]!;
    expect(c.securityContext).toMatchObject({
      runAsUser: 0, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] }, seccompProfile: { type: "RuntimeDefault" },
    });
    expect(c.securityContext!.capabilities!.add).toBeUndefined();
    expect(find(objs, "Namespace", "cache-io").metadata.labels![PSA]).toBe("privileged");
  });
});

describe("security contexts", () => {
  it.each([
    ["Deployment", "cache-io-webhook"],
    ["Deployment", "cache-io-prepull-controller"],
    ["Job", "cache-io-certs"],
    ["CronJob", "cache-io-certs-renew"],
  ])("%s/%s is Pod Security restricted", (kind, name) => {
    expect(restrictedViolations(spec(kind, name))).toEqual([]);
  });

  it("the node cache breaks restricted only where it must: uid 0, hostPath, hostPort", () => {
    expect(restrictedViolations(spec("DaemonSet", "cache-io-cache")).sort()).toEqual(["cache: hostPort", "cache: runAsNonRoot", "cache: runAsUser 0", "volume cache-root: hostPath"]);
  });

  it("the check itself catches a missing drop ALL", () => {
    const s = structuredClone(spec("Deployment", "cache-io-webhook"));
    delete s.containers[0]!.securityContext!.capabilities;
    expect(restrictedViolations(s)).toEqual(["webhook: capabilities"]);
  });
});

describe("cert bootstrap and pre-pull controller", () => {
  it("the Job and CronJob run `certs install` for the webhook's Secret, Service and config, in their own namespace", () => {
    for (const [kind, name] of [["Job", "cache-io-certs"], ["CronJob", "cache-io-certs-renew"]] as const) {
      const c = spec(kind, name).containers[0]!;
      expect(c.args!.slice(0, 2)).toEqual(["certs", "install"]);
      expect(argAfter(c, "--secret")).toBe(spec("Deployment", "cache-io-webhook").volumes!.find((v) => v.name === "certs")!.secret!.secretName);
      expect(argAfter(c, "--service")).toBe("cache-io-webhook");
      expect(argAfter(c, "--webhook-config")).toBe("cache-io");
      expect(argAfter(c, "--namespace")).toBe("$(POD_NAMESPACE)");
      expect(c.env).toContainEqual({ name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } });
    }
    expect(find(objs, "CronJob", "cache-io-certs-renew").spec.concurrencyPolicy).toBe("Forbid");
  });

  it("the pre-pull controller reconciles from the mounted policy with the cache-io image", () => {
    const c = spec("Deployment", "cache-io-prepull-controller").containers[0]!;
    expect(c.args!.slice(0, 2)).toEqual(["prepull", "reconcile"]);
    expect(argAfter(c, "--image")).toBe("$(CACHE_IO_IMAGE)");
    expect(c.env!.find((e) => e.name === "CACHE_IO_IMAGE")!.value).toBe(c.image);
    expect(argAfter(c, "--policy")).toBe("/etc/cache-io/policy/policy.yaml");
  });
});
