#!/bin/sh
# Builds and tests this platform's prebuild, from a clean checkout. One matrix job of
# .github/workflows/prebuild.yml runs it: on Linux inside a node:20-alpine (musl)
# container, on macOS and Windows (Git Bash) on the runner. (The Linux glibc prebuilds,
# which must load on glibc 2.28, are made by scripts/prebuild-linux.sh instead; this
# script still works in node:20-bookworm, but its file needs that machine's glibc.)
# Leaves prebuilds/<platform>-<arch>/hotmeter[.glibc|.musl].node for upload.
#
#   sh scripts/ci-prebuild.sh
#
# On Linux the file is tagged with its libc (--tag-libc), so the glibc and the musl
# builds of one architecture can sit side by side in prebuilds/linux-<arch>/.
set -eu

if [ -f /etc/alpine-release ]; then
  # node:20-alpine has no toolchain; node-gyp needs python3, make and a C++20 compiler.
  apk add --no-cache build-base python3
fi
platform=$(node -p process.platform)
echo "node $(node --version), npm $(npm --version), $platform-$(node -p process.arch)"

# --ignore-scripts: no install script, so nothing is compiled before prebuildify.
if ! npm ci --ignore-scripts --no-audit --no-fund; then
  echo "ci-prebuild: npm ci failed (package-lock.json out of sync?); falling back to npm install" >&2
  npm install --ignore-scripts --no-audit --no-fund
fi
npm run build:ts
rm -rf prebuilds build
if [ "$platform" = linux ]; then
  npm run prebuild -- --tag-libc
else
  npm run prebuild
fi

# prebuildify moved the addon out of build/Release, so this must load the prebuild.
node scripts/addon-smoke.js --expect-prebuild

if [ "$platform" != win32 ]; then
  # Pack what we have (dist/ + this platform's prebuild, no lifecycle scripts) and
  # install it where no compiler is on PATH.
  rm -f hotmeter-*.tgz
  npm pack --ignore-scripts
  node scripts/pack-test.js --tarball hotmeter-*.tgz
  rm -f hotmeter-*.tgz
fi
ls -lR prebuilds
