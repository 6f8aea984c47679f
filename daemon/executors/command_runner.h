// Runs a short external command (sbatch, squeue, scancel, ...) to
// completion and captures what it printed. For the executors that drive
// other systems through their command-line clients.
//
// The command gets the calling process's environment (or the one given),
// stdin /dev/null, no other inherited descriptor, and is killed (SIGKILL) when it runs past its
// timeout, so a hung client never hangs the caller.
//
// Thread-safety: thread-safe (each call owns its child and pipes).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace amld::daemon {

struct CommandResult {
  int exit_code = 0;  // meaningful when signal == 0
  int signal = 0;     // the signal that ended it, or 0
  std::string out;    // stdout
  std::string err;    // stderr
  bool ok() const { return exit_code == 0 && signal == 0; }
  // "exit code 1: <stderr, trimmed>" for messages.
  std::string Describe() const;
};

// argv[0] is looked up in PATH when it has no '/'. NOT_FOUND when it cannot
// be executed (with the name), DEADLINE_EXCEEDED when it ran past `timeout`
// (it is killed), INTERNAL for pipe/spawn failures. A command that ran and
// failed is OK here: look at CommandResult.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout);

// The same with exactly `env` ("NAME=value" entries) as the command's
// environment; PATH lookup of argv[0] uses the caller's PATH.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         const std::vector<std::string>& env);

}  // namespace amld::daemon
