// The test control plane: etcd, kube-apiserver (127.0.0.1, Node,RBAC, ServiceAccount
// token issuance, the default admission plugins plus NodeRestriction, client-cert admin),
// kube-controller-manager, kube-scheduler and kwok with fake nodes. startCluster() returns
// once a probe pod has been scheduled and marked Running; stop() kills every process group
// and removes the temp dir, also when the start failed half way. `apiAddress` puts the API
// server on another local address (a bridge that network namespaces reach) instead.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Api } from "./api.js";
import { createFakeNodes, FAKE_NODES, kwokArgs, nodesReady, type FakeNode } from "./kwok.js";
import { generate } from "selfsigned";
import { kubeconfig, makePki, writePki, type Pem } from "./pki.js";
import { freePort, killNow, startProc, stopProc, waitFor, type Proc } from "./processes.js";

/** What tests get (via vitest's provide/inject: plain data only). */
export interface ClusterInfo {
  dir: string;
  bin: string;
  server: string;
  /** Admin kubeconfig (client cert in system:masters). */
  kubeconfig: string;
  caFile: string;
  caKeyFile: string;
  ca: string;
  adminCert: string;
  adminKey: string;
  serviceAccountIssuer: string;
  /** CRD YAML from the pinned cert-manager and Prometheus Operator modules (build.sh crds). */
  crds: string;
  nodes: FakeNode[];
  startSeconds: number;
}

export interface Cluster extends ClusterInfo {
  procs: Proc[];
  stop(): Promise<void>;
}

const SA_ISSUER = "https://kubernetes.default.svc.cluster.local";
// Two cores shared with other test runs and builds: generous.
const READY_MS = Number(process.env.CACHE_IO_CLUSTER_READY_MS || 180_000);

function apiserverArgs(p: ReturnType<typeof writePki>, dir: string, etcd: string, port: number, address: string): string[] {
  return [
    `--etcd-servers=${etcd}`,
    `--bind-address=${address}`, `--secure-port=${port}`, `--advertise-address=${address}`,
    `--cert-dir=${join(dir, "apiserver-certs")}`,
    `--tls-cert-file=${p.apiCert}`, `--tls-private-key-file=${p.apiKey}`, `--client-ca-file=${p.ca}`,
    "--authorization-mode=Node,RBAC",
    "--enable-admission-plugins=NodeRestriction",
    `--service-account-issuer=${SA_ISSUER}`,
    `--service-account-key-file=${p.saPub}`, `--service-account-signing-key-file=${p.saKey}`,
    "--service-cluster-ip-range=10.96.0.0/16",
    // The endpoint reconciler refuses a loopback advertise address; nothing here needs it.
    "--endpoint-reconciler-type=none",
    "--allow-privileged=true",
    "--profiling=false",
    "--event-ttl=10m",
  ];
}

/** The API server's serving cert for `ip` as well (pki.ts makes it for 127.0.0.1 only). */
async function servingCertFor(ca: Pem, ip: string): Promise<Pem> {
  const c = await generate([{ name: "commonName", value: "kube-apiserver" }], {
    keyType: "ec", curve: "P-256", algorithm: "sha256",
    notBeforeDate: new Date(Date.now() - 5 * 60_000), notAfterDate: new Date(Date.now() + 2 * 86_400_000),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2 as const, value: "localhost" }, { type: 7 as const, ip: "127.0.0.1" }, { type: 7 as const, ip }] },
    ],
  });
  return { cert: c.cert, key: c.private };
}

export interface ClusterOptions {
  nodes?: FakeNode[];
  log?: (s: string) => void;
  /**
   * The local IPv4 address the API server binds to and advertises (default 127.0.0.1), in
   * its serving cert too; `server` and every kubeconfig then name it. For callers in other
   * network namespaces (a bridge address of this host): the address must exist already.
   */
  apiAddress?: string;
}

export async function startCluster(bin: string, opts: ClusterOptions = {}): Promise<Cluster> {
  const started = Date.now();
  const log = opts.log ?? (() => {});
  const nodes = opts.nodes ?? FAKE_NODES;
  const dir = mkdtempSync(join(tmpdir(), "cache-io-cluster-"));
  const procs: Proc[] = [];
  const emergency = () => {
    procs.forEach(killNow);
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", emergency);
  const stop = async () => {
    process.removeListener("exit", emergency);
    for (const p of [...procs].reverse()) await stopProc(p);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const pki = await makePki();
    const address = opts.apiAddress ?? "127.0.0.1";
    if (address !== "127.0.0.1") pki.apiserver = await servingCertFor(pki.ca, address);
    const files = writePki(dir, pki);
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort(address)];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = startProc("etcd", join(bin, "etcd"), [
      "--name=default", `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=2147483648",
    ], dir);
    procs.push(etcd);
    await waitFor("etcd /health", async () => {
      const r = await fetch(`${etcdUrl}/health`);
      return ((await r.json()) as { health?: string }).health === "true" ? true : undefined;
    }, { timeoutMs: READY_MS, proc: etcd });
    log(`etcd ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);

    const apiserver = startProc("kube-apiserver", join(bin, "kube-apiserver"), apiserverArgs(files, dir, etcdUrl, apiPort, address), dir);
    procs.push(apiserver);
    const server = `https://${address}:${apiPort}`;
    const api = new Api(server, pki.ca.cert, pki.admin);
    await waitFor("kube-apiserver /readyz", async () => ((await api.get("/readyz")).status === 200 ? true : undefined), { timeoutMs: READY_MS, proc: apiserver, intervalMs: 500 });
    log(`kube-apiserver ready on ${server} (${((Date.now() - started) / 1000).toFixed(1)} s)`);

    const admin = join(dir, "admin.kubeconfig");
    writeFileSync(admin, kubeconfig(server, pki.ca.cert, "admin", { clientCert: pki.admin.cert, clientKey: pki.admin.key }), { mode: 0o600 });
    const kcm = startProc("kube-controller-manager", join(bin, "kube-controller-manager"), [
      `--kubeconfig=${admin}`, `--authentication-kubeconfig=${admin}`, `--authorization-kubeconfig=${admin}`,
      "--use-service-account-credentials", `--root-ca-file=${files.ca}`, `--service-account-private-key-file=${files.saKey}`,
      `--cluster-signing-cert-file=${files.ca}`, `--cluster-signing-key-file=${files.caKey}`,
      "--leader-elect=false", "--bind-address=127.0.0.1", `--secure-port=${await freePort()}`,
      "--controllers=*", "--concurrent-gc-syncs=5",
    ], dir);
    const scheduler = startProc("kube-scheduler", join(bin, "kube-scheduler"), [
      `--kubeconfig=${admin}`, `--authentication-kubeconfig=${admin}`, `--authorization-kubeconfig=${admin}`,
      "--leader-elect=false", "--bind-address=127.0.0.1", `--secure-port=${await freePort()}`,
    ], dir);
    const kwok = startProc("kwok", join(bin, "kwok"), kwokArgs(admin, join(bin, "kwok-stages.yaml")), dir);
    procs.push(kcm, scheduler, kwok);

    await createFakeNodes(api, nodes);
    await waitFor("the fake nodes Ready (kwok) and untainted (node lifecycle controller)", () => nodesReady(api, nodes), { timeoutMs: READY_MS, proc: kwok, intervalMs: 500 });
    await waitFor("the default ServiceAccount (controller manager)", async () => ((await api.get("/api/v1/namespaces/default/serviceaccounts/default")).status === 200 ? true : undefined), { timeoutMs: READY_MS, proc: kcm, intervalMs: 500 });
    await probePod(api, scheduler);
    const startSeconds = (Date.now() - started) / 1000;
    log(`control plane ready in ${startSeconds.toFixed(1)} s (${dir})`);
    return {
      dir, bin, server, kubeconfig: admin, caFile: files.ca, caKeyFile: files.caKey, ca: pki.ca.cert,
      adminCert: pki.admin.cert, adminKey: pki.admin.key, serviceAccountIssuer: SA_ISSUER, crds: join(bin, "..", "crds"), nodes, startSeconds, procs, stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A pod the real scheduler binds and kwok marks Running: the whole chain works. */
async function probePod(api: Api, scheduler: Proc): Promise<void> {
  const path = "/api/v1/namespaces/default/pods";
  await api.must("POST", path, {
    apiVersion: "v1", kind: "Pod", metadata: { name: "cluster-ready-probe" },
    spec: { containers: [{ name: "c", image: "registry.k8s.io/pause:3.10" }], terminationGracePeriodSeconds: 0 },
  });
  await waitFor("a probe pod scheduled and Running", async () => {
    const p = (await api.get(`${path}/cluster-ready-probe`)).body;
    return p.status?.phase === "Running" && p.status?.hostIP ? true : undefined;
  }, { timeoutMs: READY_MS, proc: scheduler, intervalMs: 500 });
  await api.req("DELETE", `${path}/cluster-ready-probe`, { gracePeriodSeconds: 0 });
}
