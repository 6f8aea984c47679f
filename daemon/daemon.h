// The amld daemon as a library: Daemon::Start brings up a workspace's daemon
// in this process (tests start it on a temp dir), Run() is amld's main loop
// (start, wait for SIGTERM/SIGINT, shut down cleanly).
//
// Data dir layout (created 0700 when missing; an existing one is made
// private at start and the daemon's umask is 077: daemon/data_dir.h):
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

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/ingest/live_ingester.h"
#include "daemon/runs/run_manager.h"
#include "daemon/services/access.h"
#include "daemon/watch/watched_roots.h"
#include "daemon/web/web_server.h"
#include "storage/state/gc.h"

namespace amld::daemon {

// The daemon's defaults for watched roots: snapshots up to 2 GiB and
// 100,000 files (WatchedRootsOptions alone has no limits).
inline WatchedRootsOptions DaemonWatchedRootsDefaults() {
  WatchedRootsOptions o;
  o.max_snapshot_bytes = int64_t{2} << 30;
  o.max_snapshot_files = 100000;
  return o;
}

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
  // Each part's settings, owned by the struct of the part that uses them:
  // amld.yaml (config.h) and the flags (main.cc) fill them in place and
  // Start hands them on as they are, adding only what derives from the data
  // dir (runs.folders.runs_root, watched_roots.state_file) and the process
  // (runs.base_env). A new setting touches the parser, its struct and its
  // user.
  //
  // The run queue and lifecycle (run_manager.h). Here max_concurrent_runs
  // and cpus <= 0 (their defaults) mean the number of cores.
  RunManagerOptions runs;
  // Live ingestion of running runs' files (live_ingester.h).
  LiveIngesterOptions ingest;
  // Watched source roots (watched_roots.h).
  WatchedRootsOptions watched_roots = DaemonWatchedRootsDefaults();
  // The web view (web_server.h): off until amld.yaml's web.enabled or the
  // first `aml ui`.
  WebOptions web;
  // CAS garbage collection (storage/state/gc.h; amld.yaml gc_interval_seconds,
  // gc_grace_seconds).
  amld::storage::CasCollectorOptions gc;
  // The config file the options came from (daemon/config.h), for the log;
  // empty when none was read.
  std::filesystem::path config_file;
  // The run supervisor binary; empty: amld-shim beside the executable.
  std::filesystem::path shim_path;
  // Also log to stderr (always to <data>/amld.log).
  bool log_to_stderr = true;
  // System mode (`amld --system`): one daemon, run by root, shared by the
  // machine's users. Empty paths default to /var/lib/amld and
  // /run/amld/amld.sock; the socket is 0666 (anyone may connect, access is
  // decided per call: access.h), runs run as their submitters
  // (runs.run_as_submitter), and the data dir is laid out for that
  // (data_dir.h). Start refuses it unless the process runs as root.
  bool system_mode = false;
  // Who may do what in system mode (amld.yaml admin_group,
  // users_manage_targets); `system_mode` is copied into it by Start.
  AccessOptions access;
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
