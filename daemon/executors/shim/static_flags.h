// Command-line parsing shared by the static helper binaries amld-shim and
// amld-launch (daemon/executors/launch/), which link nothing but libc and so
// cannot use CLI11 or Abseil: "--name=value" flags and non-negative numbers.
//
// Thread-safety: pure functions (ParseNonNegative uses errno).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace amld::daemon::shim {

// The value of `arg` when it is `flag` ("--run-dir=") followed by a value
// (the value may be empty), else null. Points into `arg`.
inline const char* FlagValue(const char* arg, std::string_view flag) {
  return std::string_view(arg).substr(0, flag.size()) == flag ? arg + flag.size() : nullptr;
}

// A whole non-negative decimal number, all of `text`; false otherwise.
inline bool ParseNonNegative(const char* text, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < 0) return false;
  *out = v;
  return true;
}

}  // namespace amld::daemon::shim
