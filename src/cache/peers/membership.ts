// Who the peers are: the EndpointSlices of the node caches' headless Service
// (label kubernetes.io/service-name), listed and watched with @kubernetes/client-node.
// A peer is a ready endpoint with a node name and an address, one per node; its port is
// the slice's port named `peer`. A failed watch is re-listed from scratch after a
// backoff (1 s doubling to 30 s), keeping the last known peers meanwhile.
import type { KubeConfig, V1EndpointSlice } from "@kubernetes/client-node";
import type { Logger } from "../../shared/log.js";
import type { Peer, PeerSource } from "./types.js";

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** The Service port name the peer port is looked up by. */
export const PEER_PORT_NAME = "peer";

export interface EndpointSliceOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The headless Service's name (cache-io-node-cache-peers). */
  service: string;
  /** cache.peers.port: when a slice has no port named `peer`. */
  defaultPort: number;
  log: Logger;
  /** First re-list delay (tests shorten it). */
  backoffMs?: number;
}

/** The peers of a set of EndpointSlices (pure): ready endpoints with a node and an address, one per node, sorted by node. */
export function peersOf(slices: readonly V1EndpointSlice[], defaultPort: number): Peer[] {
  const byNode = new Map<string, Peer>();
  const ordered = [...slices].sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
  for (const s of ordered) {
    const port = s.ports?.find((p) => p.name === PEER_PORT_NAME)?.port ?? defaultPort;
    for (const e of s.endpoints ?? []) {
      const address = e.addresses?.[0];
      if (e.conditions?.ready === false || !e.nodeName || !address || byNode.has(e.nodeName)) continue;
      byNode.set(e.nodeName, { node: e.nodeName, address, port });
    }
  }
  return [...byNode.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

export class EndpointSliceSource implements PeerSource {
  #peers: readonly Peer[] = [];
  #synced = false;
  #stopped = false;
  #generation = 0;
  #backoff: number;
  #timer: NodeJS.Timeout | undefined;
  #informer: { stop(): Promise<void> } | undefined;
  #firstSync: Promise<void>;
  #markSynced!: () => void;

  constructor(private readonly o: EndpointSliceOptions) {
    this.#backoff = o.backoffMs ?? BACKOFF_MIN_MS;
    this.#firstSync = new Promise((resolve) => (this.#markSynced = resolve));
  }

  /** Start listing and watching; resolves when the first list is in (it keeps retrying until then). */
  start(): Promise<void> {
    void this.#run();
    return this.#firstSync;
  }

  get synced(): boolean {
    return this.#synced;
  }

  peers(): readonly Peer[] {
    return this.#peers;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    void this.#informer?.stop().catch(() => undefined);
    this.#markSynced();
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    const k8s = await import("@kubernetes/client-node");
    const { namespace, service } = this.o;
    const labelSelector = `kubernetes.io/service-name=${service}`;
    const api = this.o.kubeConfig.makeApiClient(k8s.DiscoveryV1Api);
    const informer = new k8s.ListWatch<V1EndpointSlice>(
      `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
      new k8s.Watch(this.o.kubeConfig),
      async () => {
        const list = await api.listNamespacedEndpointSlice({ namespace, labelSelector });
        // After the informer has taken the list in (it does so right when this resolves).
        setImmediate(() => this.#listed(generation, () => informer.list(namespace)));
        return list;
      },
      false,
      labelSelector,
    );
    this.#informer = informer;
    const update = () => {
      if (generation === this.#generation) this.#set(peersOf(informer.list(namespace), this.o.defaultPort));
    };
    informer.on("change", update);
    informer.on("error", (err: unknown) => this.#failed(generation, err));
    informer.start().catch((err: unknown) => this.#failed(generation, err));
  }

  /** A (re-)list is in: the peers are what it said; the backoff starts over. */
  #listed(generation: number, slices: () => readonly V1EndpointSlice[]): void {
    if (generation !== this.#generation || this.#stopped) return;
    this.#set(peersOf(slices(), this.o.defaultPort));
    this.#backoff = this.o.backoffMs ?? BACKOFF_MIN_MS;
    if (!this.#synced) this.o.log.info({ service: this.o.service, namespace: this.o.namespace, peers: this.#peers.length }, "peer list synced");
    this.#synced = true;
    this.#markSynced();
  }

  #failed(generation: number, err: unknown): void {
    if (generation !== this.#generation || this.#stopped) return;
    this.#generation++; // the failed informer's late events are ignored
    void this.#informer?.stop().catch(() => undefined);
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
    const message = (err as Error)?.message ?? String(err);
    this.o.log.warn({ err: message.slice(0, 500), service: this.o.service, namespace: this.o.namespace, retryInMs: delay }, "peer watch (EndpointSlices) failed; listing again after a pause (the last known peers stay in use)");
    this.#timer = setTimeout(() => void this.#run(), delay);
    this.#timer.unref();
  }

  #set(peers: Peer[]): void {
    const before = this.#peers;
    if (before.length === peers.length && before.every((p, i) => p.node === peers[i]!.node && p.address === peers[i]!.address && p.port === peers[i]!.port)) return;
    this.#peers = peers;
    this.o.log.info({ peers: peers.length, nodes: peers.slice(0, 16).map((p) => p.node) }, "peers changed");
  }
}
