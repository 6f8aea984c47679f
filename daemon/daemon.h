// The amld daemon as a library: Daemon::Start brings up a workspace's daemon
// in this process (tests start it on a temp dir), Run() is amld's main loop
// (start, wait for SIGTERM/SIGINT, shut down cleanly).
//
// Data dir layout (created 0700 when missing):
//   amld.db        the state store (SQLite)
//   cas/           the content-addressed store
//   runs/<run_id>/ wd/, user_logs/std_log.txt, system_logs/, metrics.jsonl,
//                  exit.json (daemon/executor.h)
//   amld.lock      one daemon per data dir; holds the owner's pid
//   amld.log       the daemon's own log (also on stderr)
//
// Shutdown stops listening, ends open calls (streams are cancelled after a
// short grace), lets running work tasks finish and closes the stores. Runs
// keep running under their supervisors; the next daemon re-adopts them.
//
// Thread-safety: Start/Shutdown from one thread; the daemon itself serves
// calls on gRPC's threads.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace amld::daemon {

struct DaemonOptions {
  // Empty: storage::DefaultDataDir() ($AMLD_DATA_DIR, ~/.local/share/amld).
  std::filesystem::path data_dir;
  // Empty: storage::DefaultSocketPath() ($AMLD_SOCKET,
  // $XDG_RUNTIME_DIR/amld/amld.sock, /tmp/amld-$UID/amld.sock). Ignored when
  // a socket is inherited.
  std::filesystem::path socket_path;
  // An inherited listening socket (systemd socket activation), or -1 to
  // bind socket_path. Run() fills it from LISTEN_PID/LISTEN_FDS.
  int listen_fd = -1;
  // Runs at once on the local target; <= 0 means the number of cores.
  int max_concurrent_runs = 0;
  // SIGTERM → SIGKILL grace for cancel and timeout.
  absl::Duration kill_grace = absl::Seconds(10);
  // The run supervisor binary; empty: amld-shim beside the executable.
  std::filesystem::path shim_path;
  // Also log to stderr (always to <data>/amld.log).
  bool log_to_stderr = true;
};

class Daemon {
 public:
  // Everything up and serving on return. FAILED_PRECONDITION when another
  // daemon holds the data dir ("another amld (pid N) is already using …")
  // or answers on the socket.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(DaemonOptions options);
  ~Daemon();  // Shutdown()

  // Idempotent.
  void Shutdown();

  const std::filesystem::path& data_dir() const;
  // Where it listens (for an inherited socket: the socket's bound path).
  const std::filesystem::path& socket_path() const;

 private:
  struct Impl;
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// amld's main: takes a socket-activated listening socket if there is one,
// starts the daemon, waits for SIGTERM or SIGINT, shuts down. Returns the
// start error, or OK after a clean shutdown.
absl::Status Run(DaemonOptions options);

}  // namespace amld::daemon
