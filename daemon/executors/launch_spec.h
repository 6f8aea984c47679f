// The checks every executor makes of a LaunchSpec (executor.h) before it
// starts anything, so a malformed spec is refused the same way, with the
// same words, whichever target it was sent to.
//
// Thread-safety: pure functions (ValidateLaunchSpec reads the file system).
#pragma once

#include <filesystem>
#include <string_view>

#include "absl/status/status.h"
#include "daemon/executors/executor.h"

namespace amld::daemon {

bool HasNul(std::string_view s);

// INVALID_ARGUMENT "cannot launch run ID: why" when the run id is not a
// plain file name, the command is empty, an argument or the environment
// holds a NUL byte or a bad name, a duration is negative or the run folder's
// path holds a NUL byte; FAILED_PRECONDITION when the run folder has no wd/
// (it was not prepared).
absl::Status ValidateLaunchSpec(const LaunchSpec& spec);

// A distributed run's logs in `run_dir`, empty, so `aml run logs --rank N
// -f` follows each from its first byte: user_logs/std_log_process_<rank>.txt
// for every rank, rank 0's being user_logs/std_log.txt under its per-rank
// name too (a hard link, as amld-launch makes it). Nothing for one process.
absl::Status CreateRankLogs(const std::filesystem::path& run_dir,
                            const LaunchSpec::Processes& processes);

}  // namespace amld::daemon
