#!/usr/bin/env bash
# Runs the whole vitest suite once against an AddressSanitizer + UndefinedBehaviorSanitizer
# build of the addon, and fails on any sanitizer report.
#
#   scripts/asan-test.sh [vitest args...]      e.g. scripts/asan-test.sh test/fuzz-native.test.ts
#
# 1. Builds the addon with HOTMETER_SANITIZE=1 (binding.gyp: -fsanitize=address,undefined,
#    -O1 -g, Debug) in a staged copy of binding.gyp + native/ under build-asan/, so the
#    repo's build/Release (what everyone else's tests and benches load) is never touched.
#    Rebuilds are incremental (sources are copied with their timestamps).
# 2. Runs vitest under scripts/asan-node.sh (libasan preloaded, leak checks off) with
#    HOTMETER_ADDON_PATH pointing at that build (src/sdk/native.ts loads it instead of
#    build/Release). vitest's forked test processes, worker threads and child node
#    processes inherit both, so every test exercises the sanitized addon.
# 3. ASan reports are written to build-asan/reports/asan.<pid> (log_path), which catches
#    them from every process, including children whose output a test swallows. UBSan
#    reports (GCC's combined runtime ignores log_path for them) go to stderr, which the
#    forked test processes inherit, and halt the process (halt_on_error=1). Any report
#    file, or a report pattern in the output, fails the run.
#
# Excluded: test/package.test.ts (--exclude: not run, not reported as skipped). It packs
# the package and installs its prebuilt, unsanitized addon with a compiler-free PATH: it
# tests packaging, not this build, and its staged `npm pack` runs prebuildify (a full
# compiler build) under the preloaded runtime. The plain `npm test` runs it.
#
# Environment:
#   HOTMETER_ASAN_DIR   build + report directory (default: <repo>/build-asan)
#   ASAN_OPTIONS, UBSAN_OPTIONS   appended to the defaults (yours win)
# Output ends with one line "N passed, N failed" (tests; a sanitizer report counts as a
# failure), the format .ci/run totals.
# The JSON results go to test-results/vitest-asan.json (not the plain run's file).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${HOTMETER_ASAN_DIR:-$root/build-asan}"
stage="$dir/stage"
reports="$dir/reports"
log="$dir/vitest.log"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

mkdir -p "$stage" "$reports"
t0="$(now)"

# --- 1. build -------------------------------------------------------------------------
echo "=== asan-test: build (ASan + UBSan, $stage/build/Debug)"
# Mirror binding.gyp and native/ (minus the core tests), keeping timestamps so make only
# rebuilds what changed; removed sources disappear with the old copy.
rm -rf "$stage/native.new"
mkdir -p "$stage/native.new"
(cd "$root/native" && tar --exclude=./test -cf - .) | (cd "$stage/native.new" && tar -xpf -) || {
  echo "asan-test: cannot stage native/" >&2; exit 1; }
rm -rf "$stage/native"
mv "$stage/native.new" "$stage/native"
reconfigure=0
cmp -s "$root/binding.gyp" "$stage/binding.gyp" || reconfigure=1
[[ -f "$stage/build/Makefile" ]] || reconfigure=1
cp -p "$root/binding.gyp" "$stage/binding.gyp"
ln -sfn "$root/node_modules" "$stage/node_modules"
# npm run puts npm's own node-gyp on PATH and passes the user's npm config (nodedir, ...),
# exactly as `npm run build:asan` does in the repo.
cat >"$stage/package.json" <<'EOF'
{
  "name": "hotmeter-asan-build",
  "private": true,
  "scripts": {
    "configure": "node-gyp configure --debug",
    "build": "node-gyp build --debug --jobs ${JOBS:-2}"
  }
}
EOF
export HOTMETER_SANITIZE=1
if [[ $reconfigure -eq 1 ]]; then
  (cd "$stage" && rm -rf build && npm run --silent configure) || { echo "asan-test: node-gyp configure failed" >&2; exit 1; }
fi
(cd "$stage" && npm run --silent build) || { echo "asan-test: node-gyp build failed" >&2; exit 1; }
addon="$stage/build/Debug/hotmeter.node"
[[ -f "$addon" ]] || { echo "asan-test: $addon was not built" >&2; exit 1; }
# (no `| grep -q`: with pipefail, nm's SIGPIPE when grep quits early would fail the test)
if [[ "$(nm -D "$addon" 2>/dev/null | grep -c '__asan_')" == 0 ]]; then
  echo "asan-test: $addon is not instrumented (no __asan_ symbols)" >&2
  exit 1
fi
t1="$(now)"

# --- 2. run ---------------------------------------------------------------------------
echo "=== asan-test: vitest under scripts/asan-node.sh (HOTMETER_ADDON_PATH=$addon)"
rm -f "$reports"/*
export HOTMETER_ADDON_PATH="$addon"
# ASan reports go to files, one per process; a child whose stderr is piped cannot hide one.
export ASAN_OPTIONS="log_path=$reports/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
mkdir -p "$root/test-results"
cd "$root"
bash scripts/asan-node.sh node_modules/vitest/vitest.mjs run \
  --exclude test/package.test.ts \
  --reporter=default --reporter=json --outputFile.json=test-results/vitest-asan.json "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
t2="$(now)"

# --- 3. verdict -----------------------------------------------------------------------
sanitizer_report='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer|AddressSanitizer:DEADLYSIGNAL'
found=0
shopt -s nullglob
for f in "$reports"/*; do
  echo "=== asan-test: sanitizer report $f" >&2
  cat "$f" >&2
  found=1
done
if grep -Eq "$sanitizer_report" "$log"; then
  echo "=== asan-test: sanitizer report in the test output ($log)" >&2
  grep -En "$sanitizer_report" "$log" | head -20 >&2
  found=1
fi

passed=0
failed=0
if [[ -f test-results/vitest-asan.json ]]; then
  read -r passed failed < <(node -e '
    const r = require("./test-results/vitest-asan.json");
    console.log(r.numPassedTests, r.numFailedTests + (r.numPendingTests || 0) + (r.numTodoTests || 0));')
fi
echo "=== asan-test: build $(elapsed "$t0" "$t1") s, tests $(elapsed "$t1" "$t2") s"
if [[ $found -ne 0 ]]; then
  echo "asan-test: FAILED: sanitizer report(s) found" >&2
  [[ $status -ne 0 ]] || status=1
  failed=$((failed + 1))
elif [[ $status -ne 0 ]]; then
  echo "asan-test: FAILED: vitest exited with $status" >&2
  [[ $failed -gt 0 ]] || failed=1
else
  echo "asan-test: no sanitizer reports"
fi
echo "$passed passed, $failed failed"
exit "$status"
