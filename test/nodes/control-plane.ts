// A minimal control plane for the node tests until they run on the shared one
// (test/cluster/): etcd, kube-apiserver on 127.0.0.1 (Node,RBAC, NodeRestriction,
// ServiceAccount tokens), kube-controller-manager (all default controllers: service
// accounts, root CA configmaps, GC, DaemonSets, Deployments, Jobs) and kube-scheduler.
// Node tests bind their own pods by spec.nodeName; controllers' pods are scheduled.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issue, Kube, kubeconfig, makeCa, type Pem } from "./kube.js";
import { freePort, killNow, startProc, stopProc, waitFor, type Proc } from "./proc.js";

export interface ControlPlane {
  dir: string;
  server: string;
  kubeconfig: string;
  ca: Pem;
  admin: Pem;
  kube: Kube;
  stop(): Promise<void>;
}

const READY_MS = 180_000;

export async function startControlPlane(bin: string): Promise<ControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), "cache-io-nodes-cp-"));
  const procs: Proc[] = [];
  const emergency = () => procs.forEach(killNow);
  process.once("exit", emergency);
  const stop = async () => {
    process.removeListener("exit", emergency);
    for (const p of [...procs].reverse()) await stopProc(p, 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ca = await makeCa("cache-io-nodes-ca");
    const admin = await issue(ca, "cache-io-nodes-admin", { groups: ["system:masters"] });
    const serving = await issue(ca, "kube-apiserver", { san: { dns: ["localhost", "kubernetes.default.svc"], ips: ["127.0.0.1", "10.96.0.1"] } });
    // The API server's client cert for kubelets (logs, exec): kubelets authorize it through a SubjectAccessReview.
    const kubeletClient = await issue(ca, "kube-apiserver-kubelet-client", { groups: ["system:masters"] });
    const sa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const f = (name: string, text: string) => (writeFileSync(join(dir, name), text, { mode: 0o600 }), join(dir, name));
    const files = {
      ca: f("ca.crt", ca.cert), caKey: f("ca.key", ca.key), cert: f("apiserver.crt", serving.cert), key: f("apiserver.key", serving.key),
      kubeletCert: f("kubelet-client.crt", kubeletClient.cert), kubeletKey: f("kubelet-client.key", kubeletClient.key),
      saKey: f("sa.key", sa.privateKey.export({ type: "pkcs8", format: "pem" }).toString()),
      saPub: f("sa.pub", sa.publicKey.export({ type: "spki", format: "pem" }).toString()),
    };
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = startProc("etcd", join(bin, "etcd"), [
      "--name=default", `--data-dir=${join(dir, "etcd")}`, `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`, "--unsafe-no-fsync", "--log-level=warn",
    ], dir);
    procs.push(etcd);
    await waitFor("etcd /health", async () => ((await (await fetch(`${etcdUrl}/health`)).json()) as { health?: string }).health === "true" || undefined, { timeoutMs: READY_MS, proc: etcd });
    const server = `https://127.0.0.1:${apiPort}`;
    const apiserver = startProc("kube-apiserver", join(bin, "kube-apiserver"), [
      `--etcd-servers=${etcdUrl}`, "--bind-address=127.0.0.1", `--secure-port=${apiPort}`, "--advertise-address=127.0.0.1",
      `--cert-dir=${join(dir, "apiserver-certs")}`, `--tls-cert-file=${files.cert}`, `--tls-private-key-file=${files.key}`, `--client-ca-file=${files.ca}`,
      "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local", `--service-account-key-file=${files.saPub}`, `--service-account-signing-key-file=${files.saKey}`,
      "--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
      // Reach kubelets (logs) at their InternalIP (the bridge address), never by resolving a host name.
      "--kubelet-preferred-address-types=InternalIP",
      `--kubelet-client-certificate=${files.kubeletCert}`, `--kubelet-client-key=${files.kubeletKey}`,
      // Webhooks behind a Service are called at their endpoints (pod IPs on a node bridge): no kube-proxy here.
      "--enable-aggregator-routing=true", "--allow-privileged=true", "--profiling=false",
    ], dir);
    procs.push(apiserver);
    const kube = new Kube(server, ca.cert, admin);
    await waitFor("kube-apiserver /readyz", async () => ((await kube.get("/readyz")).status === 200 ? true : undefined), { timeoutMs: READY_MS, proc: apiserver });
    const adminConfig = join(dir, "admin.kubeconfig");
    writeFileSync(adminConfig, kubeconfig(server, ca.cert, "admin", admin), { mode: 0o600 });
    const kcm = startProc("kube-controller-manager", join(bin, "kube-controller-manager"), [
      `--kubeconfig=${adminConfig}`, `--authentication-kubeconfig=${adminConfig}`, `--authorization-kubeconfig=${adminConfig}`,
      "--use-service-account-credentials", `--root-ca-file=${files.ca}`, `--service-account-private-key-file=${files.saKey}`,
      "--leader-elect=false", "--bind-address=127.0.0.1", `--secure-port=${await freePort()}`,
      `--cluster-signing-cert-file=${files.ca}`, `--cluster-signing-key-file=${files.caKey}`, "--controllers=*",
    ], dir);
    const scheduler = startProc("kube-scheduler", join(bin, "kube-scheduler"), [
      `--kubeconfig=${adminConfig}`, `--authentication-kubeconfig=${adminConfig}`, `--authorization-kubeconfig=${adminConfig}`,
      "--leader-elect=false", "--bind-address=127.0.0.1", `--secure-port=${await freePort()}`,
    ], dir);
    procs.push(kcm, scheduler);
    await waitFor("the default ServiceAccount", async () => ((await kube.get("/api/v1/namespaces/default/serviceaccounts/default")).status === 200 ? true : undefined), { timeoutMs: READY_MS, proc: kcm });
    return { dir, server, kubeconfig: adminConfig, ca, admin, kube, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
