// The local executor: runs on this machine, each under its own supervisor
// process `amld-shim` (shim_main.cc, protocol in shim_protocol.h).
//
// - Launch spawns amld-shim; the shim forks once more so it is not the
//   daemon's child, starts the run's process in its own process group (cwd
//   <run_dir>/wd, stdout+stderr appended to <run_dir>/user_logs/std_log.txt,
//   stdin /dev/null, exactly spec.env), reports back (Launch returns then)
//   and moves itself into a session of its own. Runs outlive the daemon and
//   this object. (Under systemd the unit needs KillMode=process or mixed, or
//   stopping the daemon kills its cgroup, runs included.)
// - The handle is JSON: {"shim_pid":P,"shim_start_time":T,"boot_id":"..."};
//   pid + /proc start time + boot id name the shim, so a reused pid is never
//   mistaken for it.
// - The shim enforces max_duration itself (also while the daemon is down)
//   and writes <run_dir>/exit.json when nothing of the run is left; the
//   executor learns of the end from a pidfd on the shim (no polling) and
//   reads that file. A shim that vanished without it is reported as
//   INTERNAL "supervisor lost: ...".
// - Cancel is SIGTERM to the shim (through its pidfd), which sends SIGTERM to
//   the process group and SIGKILL after kill_grace.
// - The callback may run before Launch/Reattach has returned (a run can be
//   over that fast); it runs on the executor's one thread.
// - The destructor stops that thread; callbacks not yet delivered are
//   dropped (the next Reattach reports those runs again). Runs go on.
//
// Needs Linux >= 5.3 (pidfd_open). Thread-safety: as Executor.
#pragma once

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "daemon/executors/executor.h"

namespace amld::daemon {

struct LocalExecutorOptions {
  std::filesystem::path shim_path;  // path of the amld-shim binary
};

absl::StatusOr<std::unique_ptr<Executor>> NewLocalExecutor(const LocalExecutorOptions& options);

// <folder of the running executable>/amld-shim, where the build and the
// install put it beside amld.
std::filesystem::path ShimPathBesideExecutable();

}  // namespace amld::daemon
