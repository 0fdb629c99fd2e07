// The one Service pods on a test node need without kube-proxy: `kubernetes`
// (10.96.0.1:443). A DNAT rule for packets from the node's bridge sends it to a TCP
// relay on the node IP, which pipes to the API server on 127.0.0.1. remove() deletes the
// rule and closes the relay; nothing else on the host changes.
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { must, run } from "./proc.js";

export const KUBERNETES_SERVICE_IP = "10.96.0.1";

export interface ServiceProxy {
  port: number;
  rule: string[];
  remove(): Promise<void>;
}

export function dnatRule(bridge: string, nodeIp: string, port: number): string[] {
  return ["-t", "nat", "PREROUTING", "-i", bridge, "-d", `${KUBERNETES_SERVICE_IP}/32`, "-p", "tcp", "--dport", "443", "-j", "DNAT", "--to-destination", `${nodeIp}:${port}`];
}

/** iptables args: insert ("-I") or delete ("-D") `rule` (table first, then the chain). */
function iptables(op: "-I" | "-D", rule: string[]): string[] {
  const [t, table, chain, ...rest] = rule;
  return [t!, table!, op, chain!, ...rest];
}

export async function startServiceProxy(bridge: string, nodeIp: string, api: { host: string; port: number }): Promise<ServiceProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(api.port, api.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, nodeIp, () => resolve()));
  const port = (server.address() as { port: number }).port;
  const rule = dnatRule(bridge, nodeIp, port);
  await must("iptables", iptables("-I", rule));
  return {
    port,
    rule,
    remove: async () => {
      while ((await run("iptables", iptables("-D", rule))).code === 0) { /* every copy */ }
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
