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
namespaces: {}            # per-namespace overrides of injection fields and originsAllow
fetcher:
  image: curlimages/curl:8.11.1
  imagePullPolicy: IfNotPresent
  runAsUser: 65532
  retries: 10
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {cpu: 500m, memory: 64Mi}
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
  recentUseWindow: 10m    # a file requested this recently counts as in use (never evicted)
  emptyDirGrace: 10m      # an empty object dir younger than this survives the startup scan
  prewarm: []
prepull:
  images: []
  pauseImage: registry.k8s.io/pause:3.10
  imagePullSecrets: []
`;
