// A stand-in for a Service in front of webhook replicas (kube-proxy has no host-side
// equivalent here): a TCP proxy on 127.0.0.1 that sends each new connection to the next
// backend of its current set, round robin. Taking a backend out of the set (its endpoint
// turning not-ready) leaves established connections alone, as conntrack does.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpProxy {
  port: number;
  backends: number[];
  connections: number;
  close(): Promise<void>;
}

export async function startTcpProxy(backends: number[]): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let next = 0;
  const proxy = { port: 0, backends: [...backends], connections: 0, close: async () => {} } as TcpProxy;
  const server: Server = createServer((client) => {
    const ports = proxy.backends;
    if (!ports.length) return client.destroy();
    const port = ports[next++ % ports.length]!;
    proxy.connections++;
    const upstream = connect(port, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => (s === client ? upstream : client).destroy());
    }
    client.pipe(upstream).pipe(client);
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.port = (server.address() as { port: number }).port;
  proxy.close = () => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return proxy;
}
