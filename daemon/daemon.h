// The amld daemon as a library: Daemon::Start brings up a workspace's daemon
// in this process (tests start it on a temp dir), Run() is amld's main loop
// (start, wait for SIGTERM/SIGINT, shut down cleanly).
//
// Data dir layout (created 0700 when missing):
//   amld.db        the state store (SQLite)
//   cas/           the content-addressed store
//   runs/<run_id>/ wd/, user_logs/std_log.txt, system_logs/, metrics.jsonl,
//                  exit.json (daemon/executors/executor.h)
//   amld.lock      one daemon per data dir; holds the owner's pid
//   watched-roots  source roots registered with `aml snapshot watch`
//   amld.log       the daemon's own log (also on stderr)
//   amld.yaml      the daemon's config, optional (read by main.cc; config.h)
//
// Shutdown stops listening, ends open calls (streams are cancelled after a
// short grace), lets running work tasks finish and closes the stores. Runs
// keep running under their supervisors; the next daemon re-adopts them.
//
// Thread-safety: Start/Shutdown from one thread; the daemon itself serves
// calls on gRPC's threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

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
  // CPU slots of the local target (ResourceRequest.cpus draws on them);
  // <= 0 means the number of cores.
  int cpus = 0;
  // GPU ids of the local target, handed to runs through
  // CUDA_VISIBLE_DEVICES; distinct.
  std::vector<int> gpus;
  // max_run_duration_seconds for runs that set none; 0: no limit.
  int64_t default_run_duration_seconds = 0;
  // The longest max_run_duration_seconds a run may ask for; 0: no cap.
  int64_t max_run_duration_seconds = 0;
  // SIGTERM → SIGKILL grace for cancel and timeout.
  absl::Duration kill_grace = absl::Seconds(10);
  // Folders of the newest finished runs kept under runs/; older ones are
  // removed (their files stay in the store). 0: each is removed once its run
  // has ended; -1: all are kept.
  int keep_finished_run_folders = 20;
  // Limits on a watched root's snapshot (daemon/watch/watched_roots.h); 0: none.
  int64_t max_snapshot_bytes = int64_t{2} << 30;
  int64_t max_snapshot_files = 100000;
  // Quiet time before a watched root applies the changes it saw.
  absl::Duration watch_settle_delay = absl::Milliseconds(100);
  // The config file the options came from (daemon/config.h), for the log;
  // empty when none was read.
  std::filesystem::path config_file;
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
