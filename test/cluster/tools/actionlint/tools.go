//go:build tools

// Pins github.com/rhysd/actionlint for the test cluster (see ../build.sh).
package tools

import _ "github.com/rhysd/actionlint/cmd/actionlint"
