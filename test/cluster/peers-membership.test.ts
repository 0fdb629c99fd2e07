// The cluster tier's membership against the real API server: EndpointSliceSource lists
// and watches the EndpointSlices of the peers' headless Service and follows them (ready
// endpoints only, one per node, the port named `peer`); a cut connection to the API
// server is re-listed from scratch once it is back (changes made meanwhile included).
import { KubeConfig } from "@kubernetes/client-node";
import { connect, createServer, type Server, type Socket } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { EndpointSliceSource } from "../../src/cache/peers/membership.js";
import type { Peer } from "../../src/cache/peers/types.js";
import type { Api } from "./api.js";
import { describeCluster } from "./context.js";
import { adminApi, createNamespace, deleteNamespaces, until } from "./kube.js";

const NS = "peers-membership";
const SERVICE = "cache-io-node-cache-peers";
const SLICES = `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`;

type Ep = { node?: string; ip: string; ready?: boolean };

function slice(name: string, eps: Ep[], opts: { service?: string; port?: number | null } = {}) {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, labels: { "kubernetes.io/service-name": opts.service ?? SERVICE } },
    addressType: "IPv4",
    ports: opts.port === null ? [] : [{ name: "peer", port: opts.port ?? 8586, protocol: "TCP" }],
    endpoints: eps.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true }, ...(e.node ? { nodeName: e.node } : {}) })),
  };
}

/** A TCP relay to the API server whose connections can be cut and refused on demand (an API server outage). */
async function relay(target: URL): Promise<{ port: number; cut(): void; resume(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let down = false;
  const server: Server = createServer((client) => {
    if (down) return client.destroy();
    const upstream = connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    client.pipe(upstream).pipe(client);
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const cutAll = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    port: (server.address() as { port: number }).port,
    cut: () => {
      down = true;
      cutAll();
    },
    resume: () => void (down = false),
    close: () => new Promise((r) => {
      cutAll();
      server.close(() => r());
    }),
  };
}

const shown = (peers: readonly Peer[]) => peers.map((p) => `${p.node}=${p.address}:${p.port}`).join(",");

describeCluster("peers from the EndpointSlices of the headless Service", (c) => {
  let api: Api;
  let source: EndpointSliceSource | undefined;
  let proxy: Awaited<ReturnType<typeof relay>> | undefined;
  const logs: string[] = [];

  beforeAll(async () => {
    api = adminApi(c);
    await createNamespace(api, NS);
  });

  afterAll(async () => {
    source?.stop();
    await proxy?.close();
    if (api) await deleteNamespaces(api, [NS]);
  });

  const follows = (want: string) => until(`peers ${want}`, async () => (shown(source!.peers()) === want ? true : undefined), 30_000);

  it("follows creates, readiness updates and deletes; survives a cut connection by listing again", async () => {
    await api.must("POST", SLICES, slice("peers-a", [{ node: "node-b", ip: "10.0.0.2" }, { node: "node-a", ip: "10.0.0.1" }, { node: "node-c", ip: "10.0.0.3", ready: false }, { ip: "10.0.0.9" }]));
    await api.must("POST", SLICES, slice("other-service", [{ node: "node-x", ip: "10.9.9.9" }], { service: "something-else" }));
    proxy = await relay(new URL(c.server));
    const kc = new KubeConfig();
    kc.loadFromFile(c.kubeconfig);
    const cluster = kc.getCurrentCluster()!;
    kc.clusters = kc.clusters.map((x) => (x.name === cluster.name ? { ...x, server: `https://127.0.0.1:${proxy!.port}` } : x));
    const log = pino({ level: "info" }, { write: (line: string) => void logs.push(line) });
    source = new EndpointSliceSource({ kubeConfig: kc, namespace: NS, service: SERVICE, defaultPort: 8586, log, backoffMs: 200 });
    await source.start();
    expect(source.synced).toBe(true);
    // Ready endpoints with a node only (the not-ready one and the one without nodeName left out), sorted; the other Service's slice ignored.
    expect(shown(source.peers())).toBe("node-a=10.0.0.1:8586,node-b=10.0.0.2:8586");

    await api.must("PATCH", `${SLICES}/peers-a`, { endpoints: slice("peers-a", [{ node: "node-a", ip: "10.0.0.1" }, { node: "node-b", ip: "10.0.0.2", ready: false }, { node: "node-c", ip: "10.0.0.3" }]).endpoints });
    await follows("node-a=10.0.0.1:8586,node-c=10.0.0.3:8586");

    // A second slice: a node already known stays once; its port named `peer` is used; a slice without one gets the default.
    await api.must("POST", SLICES, slice("peers-b", [{ node: "node-a", ip: "10.0.1.1" }, { node: "node-d", ip: "10.0.1.4" }], { port: 9586 }));
    await api.must("POST", SLICES, slice("peers-c", [{ node: "node-e", ip: "10.0.2.5" }], { port: null }));
    await follows("node-a=10.0.0.1:8586,node-c=10.0.0.3:8586,node-d=10.0.1.4:9586,node-e=10.0.2.5:8586");

    await api.must("DELETE", `${SLICES}/peers-a`);
    await follows("node-a=10.0.1.1:9586,node-d=10.0.1.4:9586,node-e=10.0.2.5:8586");

    // The API server out of reach: the last known peers stay; changes made meanwhile arrive with the next list.
    proxy.cut();
    await until("the watch failure logged", async () => (logs.some((l) => l.includes("peer watch (EndpointSlices) failed")) ? true : undefined), 30_000);
    expect(shown(source.peers())).toBe("node-a=10.0.1.1:9586,node-d=10.0.1.4:9586,node-e=10.0.2.5:8586");
    await api.must("DELETE", `${SLICES}/peers-b`);
    await api.must("POST", SLICES, slice("peers-f", [{ node: "node-f", ip: "10.0.3.6" }]));
    proxy.resume();
    await follows("node-e=10.0.2.5:8586,node-f=10.0.3.6:8586");
  }, 120_000);
});
