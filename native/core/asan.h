// HOTMETER_POISON / HOTMETER_UNPOISON: mark memory a pool holds as unusable under
// AddressSanitizer (any access is then reported), no-ops otherwise.
#pragma once

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOTMETER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HOTMETER_ASAN 1
#endif
#ifdef HOTMETER_ASAN
#include <sanitizer/asan_interface.h>
#define HOTMETER_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define HOTMETER_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define HOTMETER_POISON(p, n) ((void)(p), (void)(n))
#define HOTMETER_UNPOISON(p, n) ((void)(p), (void)(n))
#endif
