// The CRDs the deploy/ overlays need, from the projects' own Go modules (pinned here;
// build.sh copies their CRD YAML next to the binaries). Not built: nothing imports them.
module cache-io.test/cluster-tools/crds

go 1.26

require (
	github.com/cert-manager/cert-manager v1.21.2
	github.com/prometheus-operator/prometheus-operator v0.85.0
)
