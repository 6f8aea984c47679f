// The one place where executor kinds are wired into the daemon: the
// factories the ExecutorRegistry (executor_registry.h) calls to make the
// executor of an ssh or slurm compute target from its stored settings.
//
// Thread-safety: the factories are thread-safe (they copy what they need).
#pragma once

#include <filesystem>

#include "daemon/executors/executor_registry.h"
#include "daemon/executors/run_python.h"

namespace amld::daemon {

struct ExecutorFactoryOptions {
  // The daemon's data dir: ssh keeps known_hosts and its control sockets in
  // <data>/ssh.
  std::filesystem::path data_dir;
  // The daemon's amld-shim, which remote executors copy to their hosts.
  std::filesystem::path shim_path;
  // amld's Python for runs (<data>/run-python), which they install too.
  RunPython run_python;
  // System mode: ssh targets get an executor per submitter (ssh_as), whose
  // ssh runs as them with its state (the control socket) in
  // <data>/ssh-users/<uid>.
  bool system_mode = false;
};

// ssh: NewSshExecutor (daemon/executors/ssh/ssh_executor.h).
// slurm: NewSlurmExecutor (daemon/executors/slurm/slurm_executor.h).
ExecutorFactories MakeExecutorFactories(const ExecutorFactoryOptions& options);

}  // namespace amld::daemon
