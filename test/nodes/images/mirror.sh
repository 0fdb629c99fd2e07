# Sourced by the image build scripts: the Debian mirror this machine's apt already uses
# (deb822 .sources or a classic sources.list), so the scripts name no mirror of their own.
debian_mirror() {
  local uri
  uri=$(sed -n 's#^URIs:[[:space:]]*\([^[:space:]]*/debian\)/\{0,1\}$#\1#p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [[ -n "$uri" ]] || uri=$(sed -n 's#^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]*/debian\)/\{0,1\}[[:space:]].*#\2#p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)
  [[ -n "$uri" ]] || { echo "no Debian mirror found in this machine's apt sources" >&2; return 1; }
  echo "$uri"
}
