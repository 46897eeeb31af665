#!/bin/sh
# Runs node with the AddressSanitizer runtime preloaded, for the addon built by
# `npm run build:asan` (ASan + UBSan, build/Debug). Node itself is not instrumented,
# so libasan must come first in the library list: LD_PRELOAD does that.
#
#   scripts/asan-node.sh scripts/addon-smoke.js
#   scripts/asan-node.sh node_modules/vitest/vitest.mjs run test/smoke.test.ts
#
# detect_leaks=0: V8 and Node keep allocations alive until exit by design, so
# LeakSanitizer would report noise. UBSan stops at the first error (the addon is built
# without -fno-sanitize-recover, so halt_on_error is what makes a report fatal).
# Your own ASAN_OPTIONS / UBSAN_OPTIONS are appended and win over these defaults.
# Linux + GCC (override the compiler with CC=clang, which must match the build).
set -eu

cc=${CC:-gcc}
libasan=$("$cc" -print-file-name=libasan.so)
case "$libasan" in
  /*) ;;
  *) echo "asan-node.sh: $cc does not know libasan.so (got '$libasan'); install libasan (e.g. libasan8)" >&2; exit 2 ;;
esac
if [ ! -e "$libasan" ]; then
  echo "asan-node.sh: $libasan does not exist" >&2
  exit 2
fi

LD_PRELOAD="$libasan${LD_PRELOAD:+:$LD_PRELOAD}"
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:print_summary=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
exec node "$@"
