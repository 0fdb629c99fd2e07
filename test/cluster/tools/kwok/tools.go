//go:build tools

// Pins sigs.k8s.io/kwok for the test cluster (see ../build.sh).
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
