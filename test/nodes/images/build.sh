#!/usr/bin/env bash
# Build the test nodes' images without a registry, as docker-save archives that
# `ctr images import` takes: pause (a static binary compiled here), curl 8.x (Debian
# bookworm-backports' .debs extracted into a rootfs, non-root, no shell) and a static
# busybox for the app containers. Cached in ~/.cache/cache-io/images/<key>/, keyed by
# this script, pause.c and the exact .deb versions; prints that directory.
#   bash test/nodes/images/build.sh            # build (or reuse) and print the dir
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${CACHE_IO_IMAGES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cache-io/images}"
CURL_VERSION="8.14.1-2+deb13u2~bpo13+1"
apt_dir="$cache/apt"
mkdir -p "$apt_dir"/{lists/partial,archives/partial,etc}
touch "$apt_dir/status"
source "$(dirname "$0")/mirror.sh"
mirror=$(debian_mirror)
cat >"$apt_dir/etc/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm-backports main
SRC
# A private apt: its own sources, lists, archives and an empty dpkg status, so the
# host's apt state is never touched and every dependency lands in the download set.
APT=(-o "Dir::Etc::SourceList=$apt_dir/etc/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir" -o "Dir::State::status=$apt_dir/status"
  -o APT::Architecture=amd64 -o APT::Install-Recommends=false -o APT::Sandbox::User=root -qq)
if [[ ! -f "$apt_dir/updated" || -n "$(find "$apt_dir/updated" -mmin +1440)" ]]; then
  apt-get "${APT[@]}" update >&2 && touch "$apt_dir/updated"
fi
PKGS=("curl=$CURL_VERSION" "libcurl4=$CURL_VERSION" busybox-static)
plan="$(apt-get "${APT[@]}" install -s "${PKGS[@]}" 2>&1 | sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*/\1=\2/p' | sort)" || true
grep -q "^curl=$CURL_VERSION$" <<<"$plan" || { echo "build.sh: cannot resolve curl $CURL_VERSION from bookworm-backports (apt said: $(apt-get "${APT[@]}" install -s "${PKGS[@]}" 2>&1 | tail -3)); update CURL_VERSION in $0" >&2; exit 1; }
key="$(cat "$0" "$here/pause.c" <(echo "$plan") | sha256sum | cut -c1-16)"
out="$cache/$key"
if [[ -f "$out/done" ]]; then echo "$out"; exit 0; fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
echo "building test images into $out" >&2

# image NAME REF ROOTFS CONFIG_JSON: a one-layer docker-save archive $work/NAME.tar
image() {
  local name="$1" ref="$2" rootfs="$3" config="$4" d="$work/$1.img"
  mkdir -p "$d"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$d/layer.tar" .
  local diff; diff="$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"
  mkdir -p "$d/$diff" && mv "$d/layer.tar" "$d/$diff/layer.tar"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$config" "$diff" >"$d/config.json"
  local cfg; cfg="$(sha256sum "$d/config.json" | cut -d' ' -f1)"
  mv "$d/config.json" "$d/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$ref" "$diff" >"$d/manifest.json"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$d" -cf "$work/$name.tar" .
}
users() {
  mkdir -p "$1/etc" "$1/tmp" && chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
}
PATH_ENV='"Env":["PATH=/usr/local/bin:/usr/bin:/bin"]'

# pause
mkdir -p "$work/pause/bin"
gcc -static -O2 -o "$work/pause/bin/pause" "$here/pause.c"
strip "$work/pause/bin/pause"
image pause registry.k8s.io/pause:3.10 "$work/pause" '{"Entrypoint":["/bin/pause"],"User":"65535:65535"}'

# curl (and its shared libraries) from .debs; no shell, no busybox
apt-get "${APT[@]}" install -d -y "${PKGS[@]}" >&2
mkdir -p "$work/curl"
for deb in $(cut -d= -f1 <<<"$plan"); do
  [[ "$deb" == busybox-static ]] && continue
  f="$(ls "$apt_dir/archives/${deb}_"*.deb | head -1)"
  dpkg-deb -x "$f" "$work/curl"
done
rm -rf "$work/curl/usr/share/doc" "$work/curl/usr/share/man" "$work/curl/usr/share/locale" "$work/curl/usr/share/lintian"
users "$work/curl"
[[ ! -e "$work/curl/bin/sh" && ! -e "$work/curl/usr/bin/sh" ]] || { echo "build.sh: the curl image must have no shell" >&2; exit 1; }
version="$(chroot "$work/curl" /usr/bin/curl --version | head -1)"
echo "curl image: $version" >&2
grep -q '^curl 8\.' <<<"$version" || { echo "build.sh: want curl 8.x, got: $version" >&2; exit 1; }
image curl cache-io.test/curl:8.14.1 "$work/curl" "{\"Entrypoint\":[\"curl\"],\"User\":\"65532:65532\",$PATH_ENV}"

# busybox (static) for the app containers of the tests
mkdir -p "$work/bb"
dpkg-deb -x "$(ls "$apt_dir/archives/busybox-static_"*.deb | head -1)" "$work/bb"
rm -rf "$work/bb/usr/share"
for a in $("$work/bb/bin/busybox" --list); do [[ -e "$work/bb/bin/$a" ]] || ln -s busybox "$work/bb/bin/$a"; done
users "$work/bb"
image busybox cache-io.test/busybox:1 "$work/bb" "{\"Entrypoint\":[\"/bin/sh\"],\"User\":\"65532:65532\",$PATH_ENV}"

mkdir -p "$out"
mv "$work"/*.tar "$out/"
printf 'registry.k8s.io/pause:3.10 pause.tar\ncache-io.test/curl:8.14.1 curl.tar\ncache-io.test/busybox:1 busybox.tar\n' >"$out/images.txt"
touch "$out/done"
echo "$out"
