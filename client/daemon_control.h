// Starting and stopping a user-mode amld from the client (`aml daemon
// start|stop`). Start runs the `amld` found beside the running `aml` in its
// own session, detached, with stdout/stderr appended to <data dir>/amld.log,
// and returns once it answers Daemon.GetInfo on the socket; if it exits
// first, the error carries the end of its log (e.g. "another amld (pid N)
// holds the data dir"). Stop sends SIGTERM to the pid the daemon reports and
// waits until that process is gone.
//
// Thread-safety: free functions; StartDaemon forks, so call it before the
// process starts threads of its own that hold locks (gRPC's are fine).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "amld/v1/daemon.pb.h"

namespace amld::client {

struct DaemonStartOptions {
  std::filesystem::path socket;
  std::filesystem::path data_dir;
  // The daemon binary; empty means FindAmldBinary().
  std::filesystem::path amld_binary;
  // More flags for amld, e.g. {"--max-concurrent-runs", "1"}.
  std::vector<std::string> extra_args;
  // How long to wait for the first answer.
  absl::Duration timeout = absl::Seconds(30);
};

struct DaemonStartResult {
  amld::v1::DaemonInfo info;
  // True when a daemon already answered at the socket; nothing was started.
  bool already_running = false;
  std::filesystem::path log_path;
};

// `amld` in the folder of the running executable (/proc/self/exe).
absl::StatusOr<std::filesystem::path> FindAmldBinary();

absl::StatusOr<DaemonStartResult> StartDaemon(const DaemonStartOptions& options);

// Stops the daemon at `socket`. NOT_FOUND when none answers there.
// Returns what the daemon said about itself before it was stopped.
absl::StatusOr<amld::v1::DaemonInfo> StopDaemon(const std::filesystem::path& socket,
                                                absl::Duration timeout = absl::Seconds(30));

}  // namespace amld::client
