// The contract between the local executor (inside the daemon) and amld-shim,
// the supervisor process of one local run. Both sides link this file; the
// shim is a small static binary, so nothing here may use Abseil or other
// shared libraries.
//
// Invocation (see local_executor.cc for the caller, shim_main.cc for the
// callee):
//   amld-shim --run-dir=DIR --max-duration-ns=N --grace-ns=N -- ARGV...
//   amld-shim --foreground ... (the Slurm executor's job step): no fork, no
//   report on kReadyFd, no new session; exits with the run's status (exit
//   code, or 128 + signal) after writing exit.json.
// - The shim's environment is exactly the run's environment; the shim adds
//   nothing and hands its own environment to the process (so PATH lookup of
//   ARGV[0] uses the run's PATH).
// - fd kReadyFd is the write end of a pipe. The supervisor writes one line,
//   "ok <pid> <starttime>\n" (its own pid and /proc start time) once the
//   process is forked into its own process group, or "error <message>\n"
//   when it could not start it, and closes it.
// - The shim's stderr is <run_dir>/system_logs/amld-shim.log. It is started
//   in a process group of its own (not a session: it calls setsid itself
//   once the run's process is started).
// - Cancel is SIGTERM (or SIGINT) to the supervisor pid: it sends SIGTERM to
//   the run's process group, then SIGKILL after the grace period.
// - When the run has ended and nothing of it is left, the supervisor writes
//   <run_dir>/exit.json (FormatExitRecord) atomically and exits.
//
// Thread-safety: free functions are thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace amld::daemon::shim {

inline constexpr int kReadyFd = 3;
inline constexpr char kExitFileName[] = "exit.json";
inline constexpr char kShimLogName[] = "amld-shim.log";  // in system_logs/
inline constexpr char kStdLogPath[] = "user_logs/std_log.txt";

// The content of exit.json.
struct ExitRecord {
  int exit_code = 0;  // meaningful when signal == 0
  int signal = 0;     // the signal that ended the process, or 0
  bool timed_out = false;
  bool canceled = false;
  int64_t start_time_ns = 0;  // Unix time, CLOCK_REALTIME
  int64_t end_time_ns = 0;
  std::string launch_error;  // non-empty when exec (or chdir) failed
  // Summed over the whole process tree (RUSAGE_CHILDREN of the supervisor).
  int64_t user_cpu_ns = 0;
  int64_t system_cpu_ns = 0;
  int64_t max_rss_kb = 0;
};

// One JSON object on one line, e.g. {"version":1,"exit_code":3,...}.
std::string FormatExitRecord(const ExitRecord& record);

// Parses FormatExitRecord's output. On failure returns nullopt and says why
// in *error.
std::optional<ExitRecord> ParseExitRecord(std::string_view json, std::string* error);

// Field 22 of /proc/<pid>/stat (clock ticks after boot), which together with
// the pid names one process for the lifetime of the machine's boot. pid 0
// means the calling process. nullopt when the process does not exist.
std::optional<uint64_t> ReadProcessStartTime(pid_t pid);

}  // namespace amld::daemon::shim
