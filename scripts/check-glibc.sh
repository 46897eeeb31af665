#!/usr/bin/env bash
# Checks what a Linux glibc prebuild needs from the system it loads on, from its dynamic
# symbol table (objdump -T) and its NEEDED entries (objdump -p):
#
#   bash scripts/check-glibc.sh [--floor 2.28] FILE.node...
#
# Fails a file when it
# - references a GLIBC_ symbol version above the floor (default 2.28: the glibc of the
#   official Node.js 20 binaries' build platform; they need it themselves),
# - references GLIBCXX_ or CXXABI_ versions (libstdc++ must be linked in statically),
# - references a libgcc_s version above GCC_7.0.0 (libgcc_s of GCC 7, older than the
#   compiler of any glibc 2.28 distribution),
# - leaves a symbol undefined without a version that is not Node's (napi_*, node_api_*,
#   uv_*): that is a libc symbol the sysroot lacked, which would fail at load or call,
# - needs a shared library other than libc, libm, libpthread, libdl, libgcc_s, ld.so.
# Prints one line per file ("ok" or "FAIL" with the reasons); exits 1 if any failed.
set -uo pipefail
floor=2.28
if [ "${1:-}" = --floor ]; then floor=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [--floor X.Y] FILE.node..." >&2; exit 2; }

# Highest of a list of dotted versions, one per line.
vmax() { sort -V | tail -1; }
# vle A B: A <= B as versions.
vle() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }

objdump_for() {
  case $(od -An -tu2 -j18 -N2 "$1" | tr -d ' ') in
    62) echo objdump ;;                       # EM_X86_64
    183) command -v aarch64-linux-gnu-objdump || echo objdump ;;  # EM_AARCH64
    *) echo objdump ;;
  esac
}

bad=0
for f in "$@"; do
  if [ ! -f "$f" ]; then echo "FAIL $f: no such file"; bad=1; continue; fi
  od=$(objdump_for "$f")
  syms=$("$od" -T "$f") || { echo "FAIL $f: $od -T failed"; bad=1; continue; }
  needed=$("$od" -p "$f" | awk '$1 == "NEEDED" { print $2 }' | sort -u | tr '\n' ' ')
  why=()
  glibc=$(grep -o 'GLIBC_[0-9.]*' <<<"$syms" | sed 's/GLIBC_//' | vmax)
  [ -n "$glibc" ] || why+=("no GLIBC_ versions at all (not a glibc build?)")
  if [ -n "$glibc" ] && ! vle "$glibc" "$floor"; then
    why+=("needs GLIBC_$glibc > $floor: $(grep -E "GLIBC_($(grep -o 'GLIBC_[0-9.]*' <<<"$syms" | sed 's/GLIBC_//' | sort -uV |
      while read -r v; do vle "$v" "$floor" || printf '%s|' "${v//./\\.}"; done | sed 's/|$//'))\)" <<<"$syms" |
      awk '{ print $NF }' | sort -u | tr '\n' ' ')")
  fi
  cxx=$(grep -oE '(GLIBCXX|CXXABI)_[0-9.]*' <<<"$syms" | sort -uV | tr '\n' ' ')
  [ -z "$cxx" ] || why+=("needs the system libstdc++: $cxx")
  gcc=$(grep -o '(GCC_[0-9.]*)' <<<"$syms" | tr -d '()' | sed 's/GCC_//' | vmax)
  if [ -n "$gcc" ] && ! vle "$gcc" 7.0.0; then why+=("needs libgcc_s GCC_$gcc > 7.0.0"); fi
  # Weak references may stay unresolved. objdump -T: an unversioned reference has "Base" (binutils >= 2.35) or nothing in the
  # version column, a versioned one "(VERSION)".
  unver=$(awk '$0 ~ /\*UND\*/ && $2 != "w" { n = NF; if ($(n-1) == "Base" || $(n-2) == "*UND*") print $n }' <<<"$syms" |
    grep -vE '^(napi_|node_api_|uv_)' | grep -vE '^(_ITM_|__gmon_start__|_Jv_RegisterClasses)' | tr '\n' ' ')
  [ -z "$unver" ] || why+=("unversioned undefined symbols: $unver")
  for lib in $needed; do
    case $lib in
      libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | libgcc_s.so.1 | ld-linux*.so.*) ;;
      *) why+=("needs $lib") ;;
    esac
  done
  summary="max GLIBC_$glibc (floor $floor), max libgcc_s GCC_${gcc:-none}, NEEDED: ${needed% }"
  if [ ${#why[@]} -eq 0 ]; then
    echo "ok   $f: $summary"
  else
    echo "FAIL $f: $summary"
    printf '       %s\n' "${why[@]}"
    bad=1
  fi
done
exit $bad
