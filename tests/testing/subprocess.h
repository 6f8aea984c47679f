// Running real binaries from tests: a child process with its stdout and
// stderr captured in files (no pipe can fill up and stall it), optional
// extra environment variables, a working directory, and a generous timeout
// after which it is killed (and the test told so).
//
// Thread-safety: a Subprocess is used by one thread.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "tests/testing/test_util.h"

namespace amld::testing {

struct ProcessOptions {
  std::vector<std::pair<std::string, std::string>> env;  // set (or override) these
  std::vector<std::string> unset_env;                    // remove these
  std::filesystem::path cwd;                             // empty: the test's
  absl::Duration timeout = absl::Seconds(120);
};

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed by one
  bool timed_out = false;
  std::string out;
  std::string err;
};

class Subprocess {
 public:
  // Starts argv[0] (a path) with the options; aborts the test on failure.
  Subprocess(const std::vector<std::string>& argv, const ProcessOptions& options = {});
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // What it has written to stdout so far.
  std::string StdoutSoFar() const;
  void Signal(int sig);
  // Waits for the exit (killing it after the timeout) and returns the result.
  ProcessResult Wait();

 private:
  pid_t pid_ = -1;
  std::filesystem::path out_path_, err_path_;
  absl::Time deadline_;
  std::optional<ProcessResult> result_;
};

// Starts, waits, returns.
ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options = {});

}  // namespace amld::testing
