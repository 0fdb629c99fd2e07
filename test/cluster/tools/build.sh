#!/usr/bin/env bash
# Builds the test cluster's binaries from the Go module proxy into a cache outside the
# clone, once per pinned version: ${CACHE_IO_TOOLS_DIR:-~/.cache/cache-io}/k8s-<version>/bin.
# Usage: build.sh [kubernetes|etcd|kwok|crds|helm|actionlint ...]   (default: all)
# Prints the bin directory on stdout; progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
cache_root="${CACHE_IO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cache-io}"
bin="$cache_root/k8s-${K8S_VERSION}/bin"
mkdir -p "$bin"
export GOFLAGS="-mod=mod -buildvcs=false -trimpath" CGO_ENABLED=0
log() { echo "[cluster-tools] $*" >&2; }

# build NAME MODULE_DIR PACKAGE [LDFLAGS]: skips a binary whose stamp matches the inputs.
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-}
  local stamp="$bin/.$name.stamp" want
  want=$(cat "$here/versions.env" "$here/$dir/go.mod" "$here/$dir/go.sum" | sha256sum | cut -d' ' -f1)
  if [[ -x "$bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  log "building $name ($pkg) ..."
  local start=$SECONDS
  (cd "$here/$dir" && go build -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$want" > "$stamp"
  log "built $name in $((SECONDS - start)) s"
}

k8s_ldflags() {
  local v=${K8S_VERSION#v} ; local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  local p=k8s.io/component-base/version
  echo "-X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  echo "-X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
}

# kwok's own stage definitions (node init + lease heartbeat, the general pod lifecycle),
# taken from the pinned module, as one config file beside the binary; each pod step takes
# 100 ms instead of kwok's 1-6 s (tests wait for Running, and nothing here needs realism).
kwok_stages() {
  local dir; dir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  local s=$dir/kustomize/stage out="$bin/kwok-stages.yaml"
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/general/pod-create pod/general/pod-init-container-running pod/general/pod-init-container-completed \
    pod/general/pod-ready pod/general/pod-complete pod/general/pod-delete; do
    echo "---"; cat "$s/$f.yaml"
  done | sed -e '/jitterDurationMilliseconds: 5000$/d' -e 's/durationMilliseconds: 1000$/durationMilliseconds: 100/' > "$out.tmp"
  mv "$out.tmp" "$out"
}

# The CRDs the deploy/ overlays need (cert-manager, Prometheus Operator), copied from the
# modules pinned in crds/go.mod into $bin/../crds/<project>/.
fetch_crds() {
  local out="$bin/../crds" stamp="$bin/.crds.stamp" want
  want=$(cat "$here/crds/go.mod" "$here/crds/go.sum" | sha256sum | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  log "downloading the CRD modules (crds/go.mod) ..."
  local cm po
  cm=$(cd "$here/crds" && go mod download -json github.com/cert-manager/cert-manager | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  po=$(cd "$here/crds" && go mod download -json github.com/prometheus-operator/prometheus-operator | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$out" && mkdir -p "$out/cert-manager" "$out/prometheus-operator"
  cp "$cm"/deploy/crds/*.yaml "$out/cert-manager/"
  cp "$po"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$out/prometheus-operator/"
  chmod -R u+w "$out"
  echo "$want" > "$stamp"
  log "CRDs in $out"
}

targets=("$@")
((${#targets[@]})) || targets=(kubernetes etcd kwok crds helm actionlint)
for t in "${targets[@]}"; do
  case $t in
    kubernetes)
      for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
        build "$c" kubernetes "k8s.io/kubernetes/cmd/$c" "$(k8s_ldflags | tr '\n' ' ')"
      done ;;
    etcd) build etcd etcd go.etcd.io/etcd/server/v3 ;;
    crds) fetch_crds ;;
    kwok) build kwok kwok sigs.k8s.io/kwok/cmd/kwok; kwok_stages ;;
    helm) build helm helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" ;;
    actionlint) build actionlint actionlint github.com/rhysd/actionlint/cmd/actionlint ;;
    *) echo "unknown target: $t" >&2; exit 2 ;;
  esac
done
echo "$bin"
