// What every suite shares: a temporary folder removed after the test, whole
// files read and written, and waiting for a condition with a generous limit.
//
// Waiting is always "until it happens": a test that needs another thread or
// process to have done something waits for that very thing (a file, a
// status, a line of output) with Eventually, never for a fixed time. Time the
// code under test measures comes from a FakeClock (fake_clock.h) the test
// steps.
//
// Thread-safety: the functions are thread-safe; a TempDir belongs to one test.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace amld::testing {

// Long enough for a loaded 2-core machine running tests side by side; it is
// only ever reached when the test is failing anyway.
inline constexpr absl::Duration kGenerousWait = absl::Seconds(90);

// Polls `condition` (often at first, then every 20 ms) until it returns true
// or `timeout` has passed. Use it as ASSERT_TRUE(Eventually([&] { ... })):
// on failure gtest prints the condition's source and how long it was given.
template <typename Condition>
::testing::AssertionResult Eventually(Condition&& condition,
                                      absl::Duration timeout = kGenerousWait) {
  const absl::Time give_up = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    if (condition()) return ::testing::AssertionSuccess();
    if (absl::Now() >= give_up) {
      return ::testing::AssertionFailure()
             << "still false after waiting " << absl::FormatDuration(timeout);
    }
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
}

// A fresh folder <parent>/<prefix>XXXXXX, which the caller removes. The
// default parent is /tmp rather than $TMPDIR: short, so Unix socket paths
// below it fit in 108 bytes. Aborts the test when it cannot be made.
inline std::filesystem::path MakeTempDir(std::string_view prefix = "amld-test-",
                                         const std::filesystem::path& parent = "/tmp") {
  std::string tmpl = (parent / (std::string(prefix) + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    std::abort();
  }
  return tmpl;
}

// A MakeTempDir folder removed with everything in it at the end of the test.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "amld-test-",
                   const std::filesystem::path& parent = "/tmp")
      : path_(MakeTempDir(prefix, parent)) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

 private:
  std::filesystem::path path_;
};

// Writes `data` to `path` (creating its folders) with `mode`.
inline void WriteFile(const std::filesystem::path& path, std::string_view data,
                      mode_t mode = 0644) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    ASSERT_TRUE(out.good()) << path;
  }
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

// The whole file, or "" when it does not exist.
inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace amld::testing
