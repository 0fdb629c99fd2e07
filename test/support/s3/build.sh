#!/usr/bin/env bash
# Builds versitygw (an S3 gateway that verifies SigV4; posix backend) from the Go module
# proxy into ${CACHE_IO_TOOLS_DIR:-~/.cache/cache-io}/s3-<version>/versitygw, once per
# pinned version (go.mod + go.sum). Prints the binary's path on stdout; progress on stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${CACHE_IO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cache-io}"
want=$(cat "$here/versitygw/go.mod" "$here/versitygw/go.sum" | sha256sum | cut -c1-12)
bin="$cache_root/s3-$want/versitygw"
if [[ ! -x "$bin" ]]; then
  echo "[s3] building versitygw (test/support/s3/versitygw/go.mod) ..." >&2
  start=$SECONDS
  mkdir -p "$(dirname "$bin")"
  (cd "$here/versitygw" && GOFLAGS="-mod=mod -buildvcs=false -trimpath" CGO_ENABLED=0 \
    go build -ldflags "-s -w" -o "$bin.tmp" github.com/versity/versitygw/cmd/versitygw)
  mv "$bin.tmp" "$bin"
  echo "[s3] built versitygw in $((SECONDS - start)) s" >&2
fi
echo "$bin"
