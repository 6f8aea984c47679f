// The pure half of the SSH executor: what it says to a host (every remote
// shell script and command line, each value quoted) and how it reads the
// answers, plus the run's handle. No I/O here, so each rule is tested
// without a host (tests/daemon/executors/ssh/ssh_run_test.cc).
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/executor.h"

namespace amld::daemon::ssh {

inline constexpr char kLaunchScriptName[] = "ssh-launch.sh";    // in the run folder
inline constexpr char kLaunchLockName[] = ".amld-launch";       // on the host
inline constexpr char kSyncTmpName[] = ".ssh-sync-tmp";         // rsync's temp files
inline constexpr char kExecutorLogName[] = "ssh-executor.log";  // in system_logs/
inline constexpr char kRemoteToolsDir[] = ".amld/bin";  // kRemoteTools, under the workdir
// amld's Python for runs (run_python.h), under the workdir:
// .amld/<RunPythonFolderName>.
inline constexpr char kRemotePythonParent[] = ".amld";
// PrepareHostAnswer's key for it: "amld-python <folder name>".
inline constexpr char kRemotePythonKey[] = "amld-python";
inline constexpr char kDefaultWorkdir[] = "amld";

// A run on a host, as its handle names it.
struct RemoteRun {
  std::string host;
  int port = 0;
  std::string user;
  std::string remote_dir;  // absolute, on the host
  int64_t shim_pid = 0;
  uint64_t shim_start_time = 0;
  std::string boot_id;
};

// JSON {"boot_id","host","port","remote_dir","shim_pid","shim_start_time",
// "user"} (run_handle.h).
std::string FormatHandle(const RemoteRun& run);
// INVALID_ARGUMENT when a field is missing, the folder is not absolute or
// the pid not positive.
absl::StatusOr<RemoteRun> ParseHandle(const std::string& run_id, const std::string& handle);

// The programs the executor installs into <workdir>/.amld/bin on a host:
// amld-shim supervises every run; amld-launch starts a distributed run's
// processes under it (both static, libc only, so they run on any Linux of
// the same architecture).
inline constexpr const char* kRemoteTools[] = {"amld-shim", "amld-launch"};

// Makes the work folder and prints its absolute path, then "<tool>
// <SHA-256>" for each of kRemoteTools installed there, and "amld-python
// <python_folder>" when .amld/<python_folder> is there (python_folder: a
// RunPythonFolderName, "" for none). `workdir`: as configured ("" → amld;
// "~/x" → x, relative to the login's home).
std::string PrepareHostScript(const std::string& workdir, const std::string& python_folder = "");
struct PreparedHost {
  std::string remote_workdir;  // absolute
  // Tool name → digest of the copy installed on the host; absent when none.
  // kRemotePythonKey → the Python folder's name, when it is there.
  std::map<std::string, std::string> installed;
};
absl::StatusOr<PreparedHost> ParsePrepareHostAnswer(const std::string& out,
                                                    const std::string& host_name);

// Moves an uploaded tool (`tmp`) into <dir>/<name> and records its digest
// beside it (<name>.sha256), each by rename: a run starting meanwhile sees
// the old binary or the new one.
std::string InstallToolScript(const std::string& tmp, const std::string& dir,
                              const std::string& name, const std::string& digest);

// Moves an uploaded folder (`tmp`) to `dir` unless another launch put it
// there first (then `tmp` goes); exits 0 when `dir` is there after.
std::string InstallFolderScript(const std::string& tmp, const std::string& dir);

// The script that starts the run on the host, written into the run folder
// (so it travels with it and stays as a record; no command-line length
// limit). A mkdir lock makes it idempotent: run again (a retry after a
// dropped connection), it reports the first start instead of starting
// twice. The run's environment is LaunchSpec.run_env with paths under the
// daemon's run folder moved to `remote_dir`. `tools`: the host's folder of
// kRemoteTools; a distributed run's command is wrapped in its amld-launch.
// `python_dir`: the host's copy of amld's Python for runs, put first on the
// run's PYTHONPATH (before run_env's, else the login's) when
// spec.run_python; "" for none.
std::string LaunchScript(const LaunchSpec& spec, const std::string& remote_dir,
                         const std::string& tools, const std::string& python_dir = "");
// The launch script's answer: "boot <id>" then the shim's "ok <pid>
// <starttime>" (→ the run) or "error <message>" (FAILED_PRECONDITION).
absl::StatusOr<RemoteRun> ParseLaunchAnswer(const CommandResult& answer, RemoteRun run,
                                            const std::string& host_name);

// For a run whose handle was never recorded: prints "boot <id>" and, when
// the launch script got as far as its lock in `remote_dir`, what it
// reported (waiting for it like a second run of the script would), else
// "none". Starts nothing.
std::string FindLaunchScript(const std::string& remote_dir);
// FindLaunchScript's answer: the run as ParseLaunchAnswer reads it, or
// NOT_FOUND for "none".
absl::StatusOr<RemoteRun> ParseFindLaunchAnswer(const CommandResult& answer, RemoteRun run,
                                                const std::string& host_name);

// True (exit 0) when the shim of `run` still runs: same boot, same pid,
// same start time (field 22 of /proc/PID/stat).
std::string ShimAliveTest(const RemoteRun& run);
// Prints "alive" or "ended", then "wd" or "nowd", then (when ended) the
// exit file, if any.
std::string ProbeScript(const RemoteRun& run);
// SIGTERM to the shim, when it is still the shim.
std::string CancelScript(const RemoteRun& run);
// Removes the run's wd/ and launch lock (the rest stays as a record).
std::string CleanUpScript(const RemoteRun& run);

// What the host said about a run (ProbeScript's answer).
struct Probe {
  bool alive = false;
  bool wd_present = false;
  std::optional<std::string> exit_json;  // when ended and the file exists
};
absl::StatusOr<Probe> ParseProbe(const CommandResult& answer);

// The remote std log from byte `offset` (0-based) on: `follow`, as it is
// written until the shim is gone (tail -F --pid, which checks every 0.2 s);
// else what it has now.
std::string TailCommand(const RemoteRun& run, int64_t offset, bool follow);

}  // namespace amld::daemon::ssh
