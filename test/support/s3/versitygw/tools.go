//go:build tools

// Pins versitygw, the S3 implementation the private-origin tests run on loopback.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
