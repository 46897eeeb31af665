// Linked only into the portable Linux prebuilds (HOTMETER_PORTABLE=1, see binding.gyp and
// scripts/prebuild-linux.sh). They are compiled by a current GCC against an old glibc
// (a Debian 11 sysroot) with libstdc++ linked statically, so that they load on glibc 2.28
// and later. The static libstdc++ was built against a newer glibc; this file keeps the
// symbols it pulls in that an old glibc lacks out of the addon's dynamic imports:
//
// - __libc_single_threaded (glibc 2.32): libstdc++'s reference counts and static guards
//   skip atomics while it is non-zero. Ours is always 0, i.e. "maybe threaded": always
//   atomic, which is what glibc before 2.32 gets anyway.
// - arc4random (glibc 2.36): referenced by std::random_device, which the addon never
//   uses; defined here on top of getrandom (glibc 2.25) so the reference resolves
//   inside the addon.
// - exp and log: glibc 2.29 gave them new symbol versions (no SVID error handling,
//   same results). Every object is linked with --wrap=exp,log, and the wrappers call
//   the versions that every glibc since the architecture's first release has.
//
// All definitions are hidden: they resolve references inside the addon only and never
// interpose on the process.
#include <cerrno>
#include <cstddef>
#include <cstdint>

#if defined(__linux__) && defined(__GLIBC__)
#include <sys/random.h>

#define HOTMETER_HIDDEN __attribute__((visibility("hidden")))

#if defined(__x86_64__)
#define HOTMETER_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define HOTMETER_GLIBC_BASE "GLIBC_2.17"
#else
#error "glibc_compat.cc: unknown base symbol version for this architecture"
#endif

extern "C" {

HOTMETER_HIDDEN char __libc_single_threaded = 0;

HOTMETER_HIDDEN uint32_t arc4random(void) {
  uint32_t v = 0;
  for (;;) {
    const ssize_t n = getrandom(&v, sizeof v, 0);
    if (n == static_cast<ssize_t>(sizeof v)) return v;
    if (n < 0 && errno != EINTR) return v;  // never reached: the addon does not use random_device
  }
}

// .symver on an undefined symbol makes every reference to it a reference to that version.
double hotmeter_old_exp(double);
double hotmeter_old_log(double);
__asm__(".symver hotmeter_old_exp, exp@" HOTMETER_GLIBC_BASE);
__asm__(".symver hotmeter_old_log, log@" HOTMETER_GLIBC_BASE);

HOTMETER_HIDDEN double __wrap_exp(double x) { return hotmeter_old_exp(x); }
HOTMETER_HIDDEN double __wrap_log(double x) { return hotmeter_old_log(x); }

}  // extern "C"
#endif
