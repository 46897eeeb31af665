#!/usr/bin/env bash
# Builds the two Linux glibc prebuilds, x64 and arm64, that load on glibc 2.28 and later
# (the floor of the official Node.js 20 binaries), on a Debian 12 x64 machine, as root:
#
#   npm run prebuild:linux        # = bash scripts/prebuild-linux.sh
#
# -> prebuilds/linux-x64/hotmeter.glibc.node, prebuilds/linux-arm64/hotmeter.glibc.node
#
# How: the machine's own GCC 12 (and its aarch64 cross GCC 12) compile against a Debian 11
# sysroot (glibc 2.31 headers and link stubs, made with debootstrap and cached, see
# scripts/prebuild-env.sh), with HOTMETER_PORTABLE=1 (binding.gyp): libstdc++ linked
# statically, libgcc shared, native/compat/glibc_compat.cc for what that libstdc++ needs
# beyond glibc 2.28. Debian 11's own g++ 10 cannot build the addon (std::to_chars for
# double needs libstdc++ 11), and Debian 10 is no longer on the Debian mirror. Then
# scripts/check-glibc.sh fails the build if either file needs a GLIBC_ symbol version
# above the floor.
#
# The build runs in a staged copy of binding.gyp, package.json and native/, so the
# checkout's build/ (which tests load first) is left alone. Compile flags are node-gyp's
# Release ones (-O3), as for `npm run prebuild`.
#
# Environment: HOTMETER_PREBUILD_CACHE (default /var/cache/hotmeter-prebuild),
# HOTMETER_PREBUILD_ARCHS (default "x64 arm64"), HOTMETER_GLIBC_FLOOR (default 2.28).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/prebuild-env.sh
source scripts/prebuild-env.sh

if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
  echo "prebuild-linux: builds on Linux x86_64 only (this is $(uname -s)-$(uname -m))" >&2; exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "prebuild-linux: run as root (debootstrap makes the sysroots)" >&2; exit 1
fi

archs=${HOTMETER_PREBUILD_ARCHS:-x64 arm64}
t0=$(date +%s)
pkgs=(debootstrap openssl make python3 g++ binutils)
case " $archs " in *" arm64 "*) pkgs+=(g++-aarch64-linux-gnu binutils-aarch64-linux-gnu) ;; esac
need_apt "${pkgs[@]}"

# Node.js headers for node-gyp (only Node-API's are used): the official distribution's.
nodedir=$(node_dist x64)
node_gyp=${PREBUILD_NODE_GYP:-}
if [ -z "$node_gyp" ]; then
  node_gyp=$(command -v node-gyp || true)
  [ -n "$node_gyp" ] || node_gyp="$(npm prefix -g)/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
fi
[ -e "$node_gyp" ] || { echo "prebuild-linux: node-gyp not found ($node_gyp)" >&2; exit 1; }
[ -d node_modules/prebuildify ] && [ -d node_modules/node-addon-api ] || {
  echo "prebuild-linux: run npm install first (needs prebuildify and node-addon-api)" >&2; exit 1; }

# The sysroots, made side by side when neither is cached yet (debootstrap mostly waits
# on downloads and dpkg): about a minute less on a cold machine.
pids=()
for arch in $archs; do
  case $arch in x64) d=amd64 ;; arm64) d=arm64 ;; *) continue ;; esac
  debian_root "$d" >/dev/null &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || { echo "prebuild-linux: making a Debian sysroot failed" >&2; exit 1; }; done

stage=$(mktemp -d /tmp/hotmeter-prebuild.XXXXXX)
trap 'rm -rf "$stage"' EXIT
cp -a binding.gyp package.json native "$stage/"
rm -rf "$stage/native/test"
ln -s "$ROOT/node_modules" "$stage/node_modules"

# The compiler flags that swap the machine's glibc for the sysroot's. --sysroot alone is
# not enough: Debian's cross GCC searches its own libc (/usr/aarch64-linux-gnu, glibc
# 2.36) before the sysroot, and the native one would look for its libstdc++ headers in
# the sysroot. So: no standard include dirs (-nostdinc), then the compiler's own (libstdc++
# and GCC's builtin headers, in their usual order), then the sysroot's libc headers; and
# the sysroot's library dirs before the compiler's for the link.
sysroot_flags() { # COMPILER LANG SYSROOT TRIPLET
  local cc=$1 lang=$2 sysroot=$3 triplet=$4 d real out
  out="--sysroot=$sysroot -nostdinc"
  while read -r d; do
    real=$(realpath -m "$d")
    case $real in */c++/* | */gcc/* | */gcc-cross/*) out+=" -isystem $real" ;; esac
  done < <(echo | $cc -x "$lang" -E -v - 2>&1 | sed -n '/^#include <...> search starts here:/,/^End of search list/p' | sed -n 's/^ //p')
  out+=" -isystem $sysroot/usr/include/$triplet -isystem $sysroot/usr/include"
  out+=" -L$sysroot/usr/lib/$triplet -L$sysroot/lib/$triplet"
  echo "$out"
}

for arch in $archs; do
  case $arch in
    x64) debarch=amd64; cross=; triplet=x86_64-linux-gnu ;;
    arm64) debarch=arm64; cross=aarch64-linux-gnu-; triplet=aarch64-linux-gnu ;;
    *) echo "prebuild-linux: unknown arch $arch" >&2; exit 1 ;;
  esac
  sysroot=$(debian_root "$debarch")
  say "prebuildify linux-$arch: ${cross}g++ $("${cross}g++" -dumpfullversion) --sysroot=$sysroot"
  # An untagged file there is a machine-specific `npm run prebuild`; a musl one stays.
  rm -rf "$ROOT/prebuilds/linux-$arch/hotmeter.glibc.node" "$ROOT/prebuilds/linux-$arch/hotmeter.node" "$stage/build"
  # CC/CXX carry the sysroot into every compile and the link (node-gyp's make uses them
  # for both). CC_host/CXX_host: gyp's host toolset, unused by this binding.
  (cd "$stage" && env HOTMETER_PORTABLE=1 HOTMETER_SANITIZE= \
    CC="${cross}gcc $(sysroot_flags "${cross}gcc" c "$sysroot" "$triplet")" \
    CXX="${cross}g++ $(sysroot_flags "${cross}g++" c++ "$sysroot" "$triplet")" \
    CC_host=gcc CXX_host=g++ \
    npm_config_nodedir="$nodedir" PREBUILD_NODE_GYP="$node_gyp" JOBS="${JOBS:-2}" \
    node "$ROOT/node_modules/prebuildify/bin.js" --napi --strip --tag-libc --arch "$arch" \
      --strip-bin "${cross}strip" --out "$ROOT")
  ls -l "$ROOT/prebuilds/linux-$arch/"
done

bash scripts/check-glibc.sh ${HOTMETER_GLIBC_FLOOR:+--floor "$HOTMETER_GLIBC_FLOOR"} \
  $(for a in $archs; do echo "prebuilds/linux-$a/hotmeter.glibc.node"; done)
say "done in $(( $(date +%s) - t0 ))s"
