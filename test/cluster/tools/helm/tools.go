//go:build tools

// Pins helm.sh/helm/v3 for the test cluster (see ../build.sh).
package tools

import _ "helm.sh/helm/v3/cmd/helm"
