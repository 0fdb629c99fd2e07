//go:build tools

// Pins go.etcd.io/etcd/server/v3 for the test cluster (see ../build.sh).
package tools

import _ "go.etcd.io/etcd/server/v3"
