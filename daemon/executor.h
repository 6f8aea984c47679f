// Executor: the one interface between the scheduler and the places runs
// execute (this machine now; SSH hosts and Slurm later). The scheduler never
// touches processes itself.
//
// A run's folder (prepared by the daemon before Launch):
//   <run_dir>/wd/                   the materialized snapshot; the process's
//                                   cwd; ./outputs and ./logs live here
//   <run_dir>/user_logs/std_log.txt stdout+stderr, interleaved as written
//   <run_dir>/system_logs/          executor messages
//   <run_dir>/metrics.jsonl         AMLD_METRICS_FILE
//   <run_dir>/exit.json             written atomically by the supervisor
//
// Thread-safety: implementations are thread-safe. The exit callback is
// called from an executor-owned thread, once per launched or re-attached
// run, and must not block for long.
#pragma once

#include <functional>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace amld::daemon {

struct LaunchSpec {
  std::string run_id;
  std::filesystem::path run_dir;
  // argv[0] is looked up in PATH of `env` when it has no '/'.
  std::vector<std::string> argv;
  // The complete environment of the process (the daemon composes it).
  std::vector<std::pair<std::string, std::string>> env;
  // Wall-clock limit from the start of the process; zero means none.
  absl::Duration max_duration = absl::ZeroDuration();
  // Between SIGTERM and SIGKILL on cancel or timeout.
  absl::Duration kill_grace = absl::Seconds(10);
};

// How a run's process ended, from the supervisor's exit file.
struct ExitStatus {
  int exit_code = 0;      // meaningful when signal == 0
  int signal = 0;         // the signal that ended the process, or 0
  bool timed_out = false; // ended because max_duration passed
  bool canceled = false;  // ended because Cancel() was called
  absl::Time start_time;
  absl::Time end_time;
  // Set when the process could not be started at all (e.g. "exec python3:
  // No such file or directory"); then exit_code is 127.
  std::string launch_error;
};

class Executor {
 public:
  // `run_id` and the outcome: the exit status, or an error when the
  // supervisor vanished without writing one ("supervisor lost").
  using ExitCallback =
      std::function<void(const std::string& run_id, absl::StatusOr<ExitStatus> outcome)>;

  virtual ~Executor() = default;

  // Must be called before the first Launch/Reattach.
  virtual void SetExitCallback(ExitCallback callback) = 0;

  // Starts the run under its supervisor and returns once the process is
  // started. Returns an opaque handle the daemon persists for Reattach.
  virtual absl::StatusOr<std::string> Launch(const LaunchSpec& spec) = 0;

  // Takes back a run launched by an earlier daemon process from its handle.
  // If it ended meanwhile, the callback fires promptly with its exit status.
  virtual absl::Status Reattach(const std::string& run_id, const std::filesystem::path& run_dir,
                                const std::string& handle) = 0;

  // Stops the run: SIGTERM to its whole process group, SIGKILL after the
  // grace period. Returns at once; the callback reports the end (canceled).
  // NOT_FOUND when the executor does not know the run.
  virtual absl::Status Cancel(const std::string& run_id) = 0;
};

}  // namespace amld::daemon
