#!/usr/bin/env bash
# Builds and runs the native core's tests, one executable per area (native/test/<name>.cc,
# listed in CMakeLists.txt and in core_tests / other_tests below; no Node needed):
#   plain  RelWithDebInfo                              -> build-native/plain
#   asan   Debug, AddressSanitizer + UBSan + LeakSan   -> build-native/asan
#   tsan   RelWithDebInfo, ThreadSanitizer             -> build-native/tsan
# Every build uses -Wall -Wextra -Werror. Any failed test or sanitizer report fails the run.
#
# Usage: scripts/native-test.sh [plain|asan|tsan|all] [core test args...]   (default: all)
#   The args (check.h: --scale=F, name substrings) go to every core_* executable; with name
#   substrings an executable may run none, but together they must run at least one.
#   sketch_test and the prometheus_* executables always run all of their tests.
# Environment:
#   HOTMETER_STRESS_SCALE  multiplies the threaded stress tests' work (default 1)
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
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0 ;;
  *)
    echo "usage: $0 [plain|asan|tsan|all] [core test args...]" >&2
    exit 2 ;;
esac

jobs="${JOBS:-2}"
command -v cmake >/dev/null || { echo "native-test: cmake not found" >&2; exit 1; }

# The core's tests (get the args) and the others (always all of their tests), in run order.
core_tests=(core_aggregator_test core_label_test core_memory_test core_record_map_test core_stress_test core_shared_test)
other_tests=(sketch_test prometheus_format_test prometheus_series_test prometheus_output_test prometheus_stress_test prometheus_stream_test prometheus_protobuf_test)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Patterns that mean a sanitizer reported something, even if the exit status did not say so.
sanitizer_report='ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|ThreadSanitizer: reported|runtime error:|UndefinedBehaviorSanitizer|SUMMARY: (Address|Thread|UndefinedBehavior|Leak)Sanitizer'

run_mode() {
  local m="$1" dir="$root/build-native/$1"
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
  cmake --build "$dir" --target "${core_tests[@]}" "${other_tests[@]}" --parallel "$jobs" || {
    echo "native-test [$m]: build failed" >&2
    return 1
  }
  t1="$(now)"

  echo "=== native-test [$m]: run"
  local -a pre=()
  # GCC 12's TSan runtime cannot map its shadow memory under the high ASLR entropy of
  # some newer kernels ("unexpected memory mapping"); run it without ASLR there.
  if [[ "$m" == tsan ]] && command -v setarch >/dev/null &&
     ! env "${envs[@]}" "$dir/${core_tests[0]}" --list >/dev/null 2>&1; then
    echo "native-test [$m]: TSan runtime failed to start; running with ASLR disabled (setarch -R)"
    pre=(setarch "$(uname -m)" -R)
  fi
  # Each executable's log ends with its "N passed, M failed" line (.ci/run totals them).
  # A core executable given name substrings may select none of its tests ("0 passed").
  local t core_passed=0
  for t in "${core_tests[@]}" "${other_tests[@]}"; do
    [[ $status -eq 0 ]] || break
    local log="$dir/$t.log" is_core=0
    local -a cmd=("${pre[@]}" "$dir/$t")
    if [[ " ${core_tests[*]} " == *" $t "* ]]; then
      is_core=1
      cmd+=("$@")
    fi
    env "${envs[@]}" "${cmd[@]}" 2>&1 | tee "$log" || status=$?
    if [[ $status -eq 0 ]] && grep -Eq "$sanitizer_report" "$log"; then
      echo "native-test [$m]: sanitizer report found in $t output" >&2
      status=1
    fi
    local summary
    summary="$(tail -n 1 "$log")"
    if [[ $status -eq 0 ]] && ! grep -Eq '^[0-9]+ passed, 0 failed$' <<<"$summary"; then
      echo "native-test [$m]: $t: missing or failing summary line" >&2
      status=1
    elif [[ $status -eq 0 && $is_core -eq 0 && "$summary" == "0 passed, 0 failed" ]]; then
      echo "native-test [$m]: $t ran no tests" >&2
      status=1
    elif [[ $status -eq 0 && $is_core -eq 1 ]]; then
      core_passed=$((core_passed + ${summary%% *}))
    fi
  done
  if [[ $status -eq 0 && $core_passed -eq 0 ]]; then
    echo "native-test [$m]: no core test ran (args: $*)" >&2
    status=1
  fi
  t2="$(now)"
  timings+=("$m: build $(elapsed "$t0" "$t1") s, run $(elapsed "$t1" "$t2") s, status $status")
  if [[ $status -ne 0 ]]; then
    echo "native-test [$m]: FAILED (exit $status; logs: $dir/*.log)" >&2
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
