# Sourced by scripts/prebuild-linux.sh and scripts/prebuild-test.sh (bash, as root).
#
# Provides, cached under $HOTMETER_PREBUILD_CACHE (default /var/cache/hotmeter-prebuild)
# and keyed by what they contain, so a second run on the same machine downloads nothing:
#   debian_root ARCH    a Debian 11 (bullseye, glibc 2.31) tree for amd64 or arm64, made
#                       with debootstrap: the --sysroot of the Linux prebuilds, and the
#                       root the load tests run the official Node.js binaries in
#   node_dist ARCH      the official Node.js 20 binary distribution for x64 or arm64, from
#                       the npm registry's node-linux-<arch> package (headers and bin/node)
#   need_apt PKG...     apt-get install of whatever of PKG is not installed yet
# Each prints the path on stdout; progress goes to stderr.

HOTMETER_PREBUILD_CACHE=${HOTMETER_PREBUILD_CACHE:-/var/cache/hotmeter-prebuild}
DEBIAN_SUITE=bullseye
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# libc6-dev: glibc's headers, crt files and link stubs (the sysroot); libstdc++6 and
# libgcc-s1 are what the official node binary needs at run time.
DEBIAN_INCLUDE=libc6-dev,linux-libc-dev,libstdc++6,libgcc-s1
NODE_MAJOR=20

say() { echo "[prebuild $(date +%T)] $*" >&2; }

need_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2
}

# relative_links DIR: absolute symlinks inside DIR (libm.so -> /lib/<triplet>/libm.so.6)
# become relative, so that DIR works as a --sysroot as well as a chroot.
relative_links() {
  local dir=$1 link target
  while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    ln -sfn "$(realpath -m -s --relative-to="$(dirname "$link")" "$dir$target")" "$link"
  done < <(find "$dir/usr" "$dir/lib" "$dir/lib64" -type l -lname '/*' -print0 2>/dev/null)
}

# debian_root amd64|arm64 -> path of a complete tree (read-only by convention: copy it
# before changing anything inside).
debian_root() {
  local arch=$1 key dir tmp
  key=$(printf '%s\n' "$DEBIAN_SUITE" "$arch" minbase "$DEBIAN_INCLUDE" "$DEBIAN_MIRROR" v2 | sha256sum | cut -c1-12)
  dir=$HOTMETER_PREBUILD_CACHE/roots/debian-$DEBIAN_SUITE-$arch-$key
  if [ -f "$dir/.complete" ]; then echo "$dir"; return 0; fi
  need_apt debootstrap >&2 || return 1
  tmp=$dir.tmp.$$
  rm -rf "$dir" "$tmp"
  mkdir -p "$(dirname "$dir")"
  say "debootstrap $DEBIAN_SUITE $arch (minbase + $DEBIAN_INCLUDE) -> $dir"
  if [ "$arch" = "$(dpkg --print-architecture)" ]; then
    debootstrap --variant=minbase --include="$DEBIAN_INCLUDE" "$DEBIAN_SUITE" "$tmp" "$DEBIAN_MIRROR" >&2 || {
      say "debootstrap failed (log: $tmp/debootstrap/debootstrap.log)"; return 1; }
  else
    # A foreign tree is never run as a whole (no second stage, which would need
    # binfmt_misc): unpacking its packages gives the cross sysroot, and the runtime root
    # for qemu-aarch64 -L.
    debootstrap --foreign --arch="$arch" --variant=minbase --include="$DEBIAN_INCLUDE" \
      "$DEBIAN_SUITE" "$tmp" "$DEBIAN_MIRROR" >&2 || {
      say "debootstrap --foreign failed (log: $tmp/debootstrap/debootstrap.log)"; return 1; }
    local deb
    for deb in "$tmp"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$tmp" || return 1; done
  fi
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  relative_links "$tmp"
  # Record what the tree holds, then publish it atomically.
  ls "$tmp"/lib/*/libc.so.6 "$tmp"/usr/include/stdio.h >/dev/null || { say "incomplete tree $tmp"; return 1; }
  touch "$tmp/.complete"
  mv "$tmp" "$dir"
  echo "$dir"
}

# node_dist x64|arm64 -> path of the unpacked official Node.js $NODE_MAJOR distribution.
# The newest $NODE_MAJOR.x is asked of the registry once per run; the tarball is kept
# under its exact version and checked against the registry's integrity hash.
node_dist() {
  local arch=$1 pkg=node-linux-$1 version integrity dir tgz
  version=$(npm view "$pkg@$NODE_MAJOR" version --json 2>/dev/null | node -e '
    const v = [].concat(JSON.parse(require("fs").readFileSync(0, "utf8")));
    const n = (s) => s.split(".").map(Number);
    v.sort((a, b) => n(a)[0] - n(b)[0] || n(a)[1] - n(b)[1] || n(a)[2] - n(b)[2]);
    console.log(v.pop() || "");') || version=
  if [ -z "$version" ]; then
    # Offline: take the newest one already unpacked.
    dir=$(ls -d "$HOTMETER_PREBUILD_CACHE/node/$pkg-$NODE_MAJOR".*/ 2>/dev/null | sort -V | tail -1)
    [ -n "$dir" ] && [ -f "$dir/.complete" ] && { say "registry unreachable; using ${dir%/}"; echo "${dir%/}"; return 0; }
    say "cannot resolve $pkg@$NODE_MAJOR from the npm registry"; return 1
  fi
  dir=$HOTMETER_PREBUILD_CACHE/node/$pkg-$version
  if [ -f "$dir/.complete" ]; then echo "$dir"; return 0; fi
  mkdir -p "$HOTMETER_PREBUILD_CACHE/node"
  tgz=$HOTMETER_PREBUILD_CACHE/node/$pkg-$version.tgz
  integrity=$(npm view "$pkg@$version" dist.integrity 2>/dev/null)
  if [ ! -f "$tgz" ] || [ "sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)" != "$integrity" ]; then
    say "npm pack $pkg@$version"
    (cd "$HOTMETER_PREBUILD_CACHE/node" && npm pack "$pkg@$version" --silent >/dev/null) || return 1
  fi
  [ "sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)" = "$integrity" ] || {
    say "$tgz does not match the registry's integrity $integrity"; return 1; }
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  tar -xzf "$tgz" -C "$dir.tmp" --strip-components=1 || return 1
  touch "$dir.tmp/.complete"
  mv "$dir.tmp" "$dir"
  echo "$dir"
}
