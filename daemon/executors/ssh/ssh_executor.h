// The SSH executor: runs go to one machine reached with OpenSSH (one
// executor per ssh compute target; connection handling in ssh_remote.h).
//
// On the host, under the target's workdir (relative paths are relative to
// the login's home):
//   <workdir>/.amld/bin/amld-shim          the daemon's own supervisor binary
//   <workdir>/.amld/bin/amld-launch        and the starter of a distributed
//                                          run's processes, each copied when
//                                          its SHA-256 differs (<name>.sha256
//                                          beside it). Both are static: the
//                                          host must run Linux on the
//                                          daemon's CPU architecture.
//   <workdir>/<run_id>/                    a copy of the daemon's run folder:
//                                          wd/ (the snapshot; cwd), user_logs/,
//                                          system_logs/, metrics.jsonl, exit.json
// The host needs /bin/sh, GNU coreutils (tail --pid) and rsync.
//
// - Launch: the run folder goes over with rsync; then one ssh call starts
//   amld-shim detached (it forks, leaves the ssh session with setsid, and
//   runs the script in its own process group) with the login environment
//   plus LaunchSpec.run_env (paths under the daemon's run folder rewritten
//   to the remote one). The shim's "ok <pid> <starttime>" line comes back on
//   that call. Starting is idempotent (a mkdir lock on the host), so a retry
//   after a dropped connection never starts the run twice. Launch returns
//   the handle, JSON {"host","port","user","remote_dir","shim_pid",
//   "shim_start_time","boot_id"}.
// - Following, one thread per run: a remote `tail -c +N -F --pid=<shim>` over
//   ssh appends the run's output to the daemon's user_logs/std_log.txt as it
//   is written (N = the local size + 1, so nothing is copied twice), and ends
//   when the shim is gone — that is the exit detection (tail checks the pid
//   every 0.2 s; no inotifywait needed). Every sync_interval, wd/outputs/,
//   wd/logs/ (rsync --delete), metrics.jsonl and system_logs/amld-shim.log
//   (appended in place) are pulled into the daemon's run folder, where the
//   daemon's live ingestion sees them. A distributed run (one node: its
//   processes started by amld-launch on the host, as on the local target)
//   also brings back each rank's log and system_logs/amld-processes.json
//   and amld-launch-failure.txt, so `aml run logs --rank N` and the failed
//   rank's name work as locally (rank logs lag by up to sync_interval).
// - End: exit.json is read over ssh, the log caught up, outputs/logs pulled
//   once more comparing checksums, the remote wd/ removed (the small rest of
//   the remote run folder stays as a record), and the exit callback fires.
//   No exit.json: "supervisor lost". Outputs that cannot be copied back turn
//   a successful run into a failure saying so.
// - Cancel: SIGTERM to the remote shim (checked by pid, /proc start time and
//   boot id, never a reused pid), which sends SIGTERM to the run's process
//   group and SIGKILL after kill_grace. max_duration is enforced by the shim.
// - Reattach: from the handle, on the run's thread: asks the host whether
//   the shim still runs (pid + start time + boot id via /proc) — then
//   follows it again — or reads its exit.json.
// - The host unreachable (ssh fails to connect): each ssh/rsync call is
//   tried `attempts` times with doubling backoff; then the run ends FAILED
//   with ssh's own message. A follower whose connection drops asks the host
//   directly before giving up.
// - The destructor stops the threads (and their ssh processes) without
//   calling back and joins them; runs go on on the host and are
//   re-adopted by Reattach. Every thread is owned and joined (a finished
//   one by the next launch).
// The code: ssh_executor_impl.h says which file holds what.
//
// Thread-safety: as Executor.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/executor.h"
#include "daemon/executors/run_python.h"
#include "daemon/executors/ssh/ssh_remote.h"

namespace amld::daemon {

struct SshExecutorOptions {
  SshEndpoint endpoint;
  // The folder on the host that holds the runs; "" means "amld", relative
  // paths (and "~/...") are relative to the login's home.
  std::string workdir;
  // The daemon's amld-shim (ShimPathBesideExecutable()), copied to the host.
  std::filesystem::path shim_path;
  // amld's Python for runs, copied to <workdir>/.amld/python-<digest>/ on
  // the host once and put first on the PYTHONPATH of runs that ask for it
  // (LaunchSpec.run_python); empty: runs get none.
  RunPython run_python;
  // Local folder for known_hosts and the control socket (<data>/ssh).
  std::filesystem::path state_dir;
  // Outputs, logs/ and metrics are pulled this often while a run runs.
  absl::Duration sync_interval = absl::Seconds(3);
  // Connection attempts per ssh/rsync call, and the first backoff.
  int attempts = 3;
  absl::Duration backoff = absl::Seconds(1);
  absl::Duration connect_timeout = absl::Seconds(10);
  // Limits per call: short commands, and copies of snapshots and outputs.
  absl::Duration command_timeout = absl::Seconds(60);
  absl::Duration transfer_timeout = absl::Minutes(30);
  // Runs ssh and rsync; null: the system's (SystemCommandRunner). Tests
  // give a fake.
  std::shared_ptr<CommandRunner> runner;
  // System mode: this executor serves one submitter of the target (the
  // registry keeps one per target and user, executor_registry.h). Every ssh
  // and rsync runs as them (ssh_remote.h), so their own keys, known_hosts
  // and login are used; state_dir is theirs. Their runs' folders are given
  // to them before the copy to the host and again at the end. A target's
  // identity_file they may not read fails the launch saying so. Launch
  // refuses a spec whose run_as is not this account.
  std::optional<RunAs> run_as;
};

// INVALID_ARGUMENT for an empty host or a relative shim path;
// FAILED_PRECONDITION when amld-shim is missing or the state folder cannot
// be made. Does not contact the host.
absl::StatusOr<std::unique_ptr<Executor>> NewSshExecutor(const SshExecutorOptions& options);

}  // namespace amld::daemon
