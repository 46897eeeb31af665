// The native tests' minimal framework: TEST registers a case, CHECK / CHECK_EQ /
// CHECK_MSG record failures (from any thread), REQUIRE stops the case, RunTests runs the
// selected cases. No dependencies beyond the standard library.
//
// Usage of each test binary: <test> [--scale=F] [--list] [name-substring ...]
//   --scale=F (or HOTMETER_STRESS_SCALE=F) multiplies the stress tests' work (g_scale).
// The last line printed is always "N passed, M failed"; the exit status is 1 if M > 0.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

struct TestCase {
  const char* name;
  void (*fn)();
};

inline std::vector<TestCase>& Tests() {
  static std::vector<TestCase> tests;
  return tests;
}

struct Registrar {
  Registrar(const char* name, void (*fn)()) { Tests().push_back({name, fn}); }
};

inline std::atomic<long> g_failures{0};  // CHECK failures in the running test
inline std::mutex g_print_mu;            // serialises failure output across threads
inline double g_scale = 1.0;
constexpr long kMaxPrintedFailures = 25;

inline void Fail(const char* file, int line, const std::string& what) {
  long n = g_failures.fetch_add(1) + 1;
  if (n > kMaxPrintedFailures) return;
  std::lock_guard<std::mutex> lock(g_print_mu);
  std::fprintf(stderr, "    %s:%d: CHECK failed: %s\n", file, line, what.c_str());
  if (n == kMaxPrintedFailures) std::fprintf(stderr, "    (further failures not printed)\n");
}

inline std::string Escape(const std::string& s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      r += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      r += buf;
    }
  }
  return r + "\"";
}

template <class T>
std::string Show(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return Escape(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_floating_point_v<T>) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(v));
    return buf;
  } else if constexpr (std::is_integral_v<T>) {
    return std::to_string(v);
  } else if constexpr (std::is_enum_v<T>) {
    return std::to_string(static_cast<long long>(v));
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    std::string r = "[";
    for (size_t i = 0; i < v.size(); i++) r += (i ? ", " : "") + Show(v[i]);
    return r + "]";
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    std::string r = "[";
    for (size_t i = 0; i < v.size(); i++) r += (i ? ", " : "") + Escape(v[i]);
    return r + "]";
  } else {
    return "<?>";
  }
}

template <class A, class B>
bool Equal(const A& a, const B& b) {
  if constexpr (std::is_integral_v<A> && std::is_integral_v<B> && !std::is_same_v<A, bool> &&
                !std::is_same_v<B, bool>) {
    return std::cmp_equal(a, b);
  } else {
    return a == b;
  }
}

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) Fail(__FILE__, __LINE__, #cond);                \
  } while (0)

#define CHECK_MSG(cond, msg)                                                    \
  do {                                                                          \
    if (!(cond)) Fail(__FILE__, __LINE__, std::string(#cond ": ") + (msg));     \
  } while (0)

#define CHECK_EQ(a, b)                                                                    \
  do {                                                                                    \
    const auto& check_a_ = (a);                                                           \
    const auto& check_b_ = (b);                                                           \
    if (!Equal(check_a_, check_b_)) {                                                     \
      Fail(__FILE__, __LINE__,                                                            \
           std::string(#a " == " #b "  (") + Show(check_a_) + " vs " + Show(check_b_) + ")"); \
    }                                                                                     \
  } while (0)

// Stops the current test function when a precondition for the rest of it fails.
#define REQUIRE(cond)                                            \
  do {                                                           \
    if (!(cond)) {                                               \
      Fail(__FILE__, __LINE__, "REQUIRE " #cond);                \
      return;                                                    \
    }                                                            \
  } while (0)

#define TEST(name)                                          \
  void test_##name();                                       \
  const Registrar registrar_##name(#name, &test_##name);    \
  void test_##name()

// Parses the options above, runs the selected tests, prints the summary line.
inline int RunTests(int argc, char** argv) {
  if (const char* env = std::getenv("HOTMETER_STRESS_SCALE")) g_scale = std::atof(env);
  std::vector<std::string> filters;
  bool list = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--scale=", 0) == 0) {
      g_scale = std::atof(a.c_str() + 8);
    } else if (a == "--list") {
      list = true;
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: %s [--scale=F] [--list] [name-substring ...]\n", argv[0]);
      return 0;
    } else {
      filters.push_back(a);
    }
  }
  if (!(g_scale > 0)) g_scale = 1.0;
  if (list) {
    for (const TestCase& t : Tests()) std::printf("%s\n", t.name);
    return 0;
  }
  int passed = 0, failed = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const TestCase& t : Tests()) {
    if (!filters.empty() &&
        std::none_of(filters.begin(), filters.end(),
                     [&](const std::string& f) { return std::string(t.name).find(f) != std::string::npos; })) {
      continue;
    }
    g_failures.store(0);
    const auto t0 = std::chrono::steady_clock::now();
    std::printf("[ RUN  ] %s\n", t.name);
    std::fflush(stdout);
    try {
      t.fn();
    } catch (const std::exception& e) {
      Fail(__FILE__, __LINE__, std::string("exception: ") + e.what());
    } catch (...) {
      Fail(__FILE__, __LINE__, "unknown exception");
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const long f = g_failures.load();
    std::fflush(stderr);
    if (f == 0) {
      passed++;
      std::printf("[  OK  ] %s (%.0f ms)\n", t.name, ms);
    } else {
      failed++;
      std::printf("[ FAIL ] %s: %ld check(s) failed (%.0f ms)\n", t.name, f, ms);
    }
    std::fflush(stdout);
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("(%.2f s, stress scale %g)\n", total, g_scale);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
