// NODE_IP: the node's address from the downward API, so a container can reach the
// node cache on its hostPort as http://$(NODE_IP):<port>.
import type { V1Container, V1EnvVar } from "@kubernetes/client-node";
import { RESERVED } from "../shared/protocol.js";

export function nodeIpEnv(): V1EnvVar {
  return { name: RESERVED.nodeIpEnv, valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } };
}

/**
 * Prepend NODE_IP (so later env values may use `$(NODE_IP)`) unless the container
 * already defines it: theirs is left alone. Mutates the given (copied) container.
 */
export function addNodeIp(container: V1Container): void {
  if (container.env?.some((e) => e.name === RESERVED.nodeIpEnv)) return;
  container.env = [nodeIpEnv(), ...(container.env ?? [])];
}
