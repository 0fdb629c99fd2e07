// The embedded default policy: what `cache-io webhook` and `cache-io cache` use when
// no policy file is given, and what deploy/ ships in its ConfigMap.
export const DEFAULT_POLICY_YAML = `# cache-io policy. Every field is optional; the values shown are the defaults
# except where a comment says otherwise. Reference: docs/POLICY.md.
origins:
  allow: ["*"]            # host patterns files may come from; narrow this in production
  schemes: [https, http]
  allowPrivate: []        # hosts or CIDRs that may be private/loopback (in-cluster origins)
injection:
  maxFiles: 16
  mountPath: /cache
  mode: mount             # mount (zero-copy hostPath) or copy (emptyDir)
  onInvalid: deny         # deny, or warn (admit unmutated with a warning)
namespaces: {}            # per-namespace overrides: injection fields, originsAllow, fetcher.resources, diskShare
identity:
  mode: required          # required (file requests need a verified pod token), optional (rollout: checked, anonymous still served) or off
  tokenExpirationSeconds: 600
  maxFillsPerNamespace: 8 # origin fills in flight per caller namespace (verified callers)
  diskSharePerNamespace: 1  # share of cache.diskBudget one namespace's files may hold (1: no cap; namespaces.<ns>.diskShare overrides)
fetcher:
  image: curlimages/curl:8.11.1
  imagePullPolicy: IfNotPresent
  runAsUser: 65532
  retries: 10
  resources:
    requests: {cpu: 250m, memory: 32Mi}   # limit/request ratios of 4 and 2 pass typical LimitRanges
    limits: {cpu: "1", memory: 64Mi}
cache:
  root: /var/lib/cache-io
  port: 8585
  diskBudget: 50Gi
  maxFileSize: 20Gi
  revalidateAfter: 1h
  connectTimeout: 10s
  idleTimeout: 60s
  fillTimeout: 1h
  originRetries: 3
  recentUseWindow: 10m    # a file requested this recently is protected (within recentUseShare)
  emptyDirGrace: 10m      # an empty object dir younger than this survives the startup scan
  recentUseShare: 0.5     # at most this share of diskBudget is protected by recent requests alone
  recentUseMaxKeys: 10000
  maxStale: 24h           # how long past revalidateAfter a copy is served while the origin errors
  maxDownloads: 256       # downloads served at once (all clients)
  maxDownloadsPerClient: 32
  sendTimeout: 60s        # a client that takes no bytes this long is cut
  maxFills: 32            # origin fills in flight (503 above)
  maxFillsPerHost: 8
  abandonGrace: 10s       # a fill nobody waits for any more is abandoned after this
  keyIgnoreQuery: [default]  # query parameters left out of keys (default: S3/GCS/Azure SAS/OSS/CloudFront signatures)
  parts: {size: 16Mi, concurrency: 8, minFileSize: 32Mi, maxConnections: 32}  # parallel ranged fills (docs/FILLS.md)
  peers: {enabled: true, port: 8586, maxBandwidth: 0, idleTimeout: 10s, maxTries: 2}  # the cluster tier: fills from the owning node cache first (docs/PEERS.md)
  proxies: []             # forward proxies for origin fetches, per host pattern (docs/PROXIES.md)
  prewarm: []
credentials: []           # private origins: see docs/PRIVATE-ORIGINS.md
prepull:
  images: []
  pauseImage: registry.k8s.io/pause:3.10
  imagePullSecrets: []
`;
