#!/usr/bin/env bash
# Builds and runs the native core's tests (native/test/core_test.cc, then
# native/test/sketch_test.cc and native/test/prometheus_test.cc with no arguments; no Node
# needed), and native/test/prometheus_stream_test.cc (the streamed scrape):
#   plain  RelWithDebInfo                              -> build-native/plain
#   asan   Debug, AddressSanitizer + UBSan + LeakSan   -> build-native/asan
#   tsan   RelWithDebInfo, ThreadSanitizer             -> build-native/tsan
# Every build uses -Wall -Wextra -Werror. Any failed test or sanitizer report fails the run.
#
# Usage: scripts/native-test.sh [plain|asan|tsan|all] [core_test args...]   (default: all)
# Environment:
#   HOTMETER_STRESS_SCALE  multiplies the threaded stress test's work (default 1)
#   JOBS                   build parallelism (default 2)
#   CXX                    compiler for a fresh build directory (default: cmake's choice)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${1:-all}"
[[ $# -gt 0 ]] && shift
case "$mode" in
  plain|asan|tsan) modes=("$mode") ;;
  all) modes=(plain asan tsan) ;;
  -h|--help)
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0 ;;
  *)
    echo "usage: $0 [plain|asan|tsan|all] [core_test args...]" >&2
    exit 2 ;;
esac

jobs="${JOBS:-2}"
command -v cmake >/dev/null || { echo "native-test: cmake not found" >&2; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Patterns that mean a sanitizer reported something, even if the exit status did not say so.
sanitizer_report='ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|ThreadSanitizer: reported|runtime error:|UndefinedBehaviorSanitizer|SUMMARY: (Address|Thread|UndefinedBehavior|Leak)Sanitizer'

run_mode() {
  local m="$1" dir="$root/build-native/$1" log="$root/build-native/$1/core_test.log"
  shift
  local -a cfg=(-DCMAKE_CXX_FLAGS=-Werror -DHOTMETER_SANITIZE=OFF -DHOTMETER_TSAN=OFF)
  local -a envs=()
  case "$m" in
    plain)
      cfg+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    asan)
      cfg+=(-DCMAKE_BUILD_TYPE=Debug -DHOTMETER_SANITIZE=ON)
      envs=("ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
            "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}") ;;
    tsan)
      cfg+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOTMETER_TSAN=ON)
      envs=("TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}") ;;
  esac

  echo "=== native-test [$m]: configure + build ($dir)"
  local t0 t1 t2 status=0
  t0="$(now)"
  cmake -S "$root" -B "$dir" "${cfg[@]}" >"$dir.configure.log" 2>&1 || {
    cat "$dir.configure.log" >&2
    echo "native-test [$m]: cmake configure failed" >&2
    return 1
  }
  cmake --build "$dir" --target core_test sketch_test prometheus_test prometheus_stream_test --parallel "$jobs" || {
    echo "native-test [$m]: build failed" >&2
    return 1
  }
  t1="$(now)"

  echo "=== native-test [$m]: run"
  local -a cmd=("$dir/core_test" "$@")
  # GCC 12's TSan runtime cannot map its shadow memory under the high ASLR entropy of
  # some newer kernels ("unexpected memory mapping"); run it without ASLR there.
  if [[ "$m" == tsan ]] && command -v setarch >/dev/null &&
     ! env "${envs[@]}" "$dir/core_test" --list >/dev/null 2>&1; then
    echo "native-test [$m]: TSan runtime failed to start; running with ASLR disabled (setarch -R)"
    cmd=(setarch "$(uname -m)" -R "${cmd[@]}")
  fi
  env "${envs[@]}" "${cmd[@]}" 2>&1 | tee "$log" || status=$?
  t2="$(now)"

  if [[ $status -eq 0 ]] && grep -Eq "$sanitizer_report" "$log"; then
    echo "native-test [$m]: sanitizer report found in output" >&2
    status=1
  fi
  if [[ $status -eq 0 ]] && ! tail -n 1 "$log" | grep -Eq '^[1-9][0-9]* passed, 0 failed$'; then
    echo "native-test [$m]: missing or failing summary line" >&2
    status=1
  fi
  # The distribution aggregators' tests (native/test/sketch_test.cc) and the Prometheus
  # serializer's (native/test/prometheus_test.cc), always all of them.
  local extra
  for extra in sketch_test prometheus_test prometheus_stream_test; do
    [[ $status -eq 0 ]] || break
    local slog="$dir/$extra.log"
    local -a scmd=("$dir/$extra")
    if [[ "${cmd[0]}" == setarch ]]; then scmd=(setarch "$(uname -m)" -R "${scmd[@]}"); fi
    env "${envs[@]}" "${scmd[@]}" 2>&1 | tee "$slog" || status=$?
    if [[ $status -eq 0 ]] && grep -Eq "$sanitizer_report" "$slog"; then
      echo "native-test [$m]: sanitizer report found in $extra output" >&2
      status=1
    fi
    if [[ $status -eq 0 ]] && ! tail -n 1 "$slog" | grep -Eq '^[1-9][0-9]* passed, 0 failed$'; then
      echo "native-test [$m]: $extra: missing or failing summary line" >&2
      status=1
    fi
    t2="$(now)"
  done
  timings+=("$m: build $(elapsed "$t0" "$t1") s, run $(elapsed "$t1" "$t2") s, status $status")
  if [[ $status -ne 0 ]]; then
    echo "native-test [$m]: FAILED (exit $status; log: $log)" >&2
    return "$status"
  fi
  echo "native-test [$m]: ok"
}

mkdir -p "$root/build-native"
timings=()
overall=0
for m in "${modes[@]}"; do
  mkdir -p "$root/build-native/$m"
  if ! run_mode "$m" "$@"; then
    overall=1
  fi
done
echo "=== native-test summary"
for t in "${timings[@]}"; do echo "  $t"; done
if [[ $overall -ne 0 ]]; then
  echo "native-test: FAILED" >&2
else
  echo "native-test: all passed"
fi
exit "$overall"
