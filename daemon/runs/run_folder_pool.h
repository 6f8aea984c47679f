// RunFolderPool: the folders under <data>/runs that belong to no one run's
// lifecycle — spares made ahead of time, and the removal of finished runs'
// folders beyond the newest keep_finished_run_folders. The run manager
// (run_manager.h) is its only user: it asks for a prepared folder at
// PREPARING, says when a launch went out and when a run has ended.
//
// Spares (latency; figures in docs/ARCHITECTURE.md "Run folder"): creating
// folders costs ~0.2-1 ms each, so a spare (runs/.spare: wd/,
// user_logs/std_log.txt, system_logs/) is renamed into place at PREPARING
// and the next one made after the launch. The snapshot just launched, when
// small (64 MiB, 5,000 blobs), is also copied into a filled spare
// (runs/.spare-with-<digest>, one at a time): the next run of the same
// snapshot takes it with one rename instead of materializing. Nothing writes
// into a spare, and a run's own copy is never shared. Spare names start with
// '.', which no run id does.
//
// Retention: once a run is terminal its outputs, logs and metrics are in the
// CAS and the state store, which is what clients read from then; its folder
// is a scratch copy. Only the folders of the newest keep_finished_run_folders
// finished runs are kept; older ones are removed on the housekeeping runner.
// Start() applies the same rule, by end time in the state store, to the
// folders earlier daemons left. A folder is removed only when the store says
// its run is terminal, whatever the caller believed; folders of runs the
// store does not know are left alone (and named in the log).
//
// Thread-safety: thread-safe. Its own mutex guards the list of finished
// folders and the random source of temporary names, never file system work;
// it is independent of the run manager's lock (called with it held or not).
// Spares are built under a temporary name and renamed into place, and a
// rename onto an existing spare fails, so concurrent makers never clash.
#pragma once

#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "base/task_runner.h"
#include "daemon/executors/run_folder.h"
#include "storage/cas.h"
#include "storage/state/state_store.h"

namespace spdlog {
class logger;
}

namespace amld::daemon {

struct RunFolderPoolOptions {
  // <data>/runs: each run gets runs/<run_id>/ (RunPathsFor).
  std::filesystem::path runs_root;
  // Folders of finished runs kept (the newest by end time); older ones are
  // removed. 0: each is removed once its run has finished;
  // kKeepAllRunFolders: none is ever removed.
  int keep_finished_run_folders = 20;
};

// RunFolderPoolOptions::keep_finished_run_folders: never remove a run folder.
inline constexpr int kKeepAllRunFolders = -1;

// All must outlive the pool; `log` must not be null.
struct RunFolderPoolDeps {
  amld::storage::StateStore* store = nullptr;  // which runs are terminal, and when they ended
  amld::storage::ContentStore* cas = nullptr;  // snapshots to materialize
  // Low-priority work nobody waits for: filling a spare, removing folders.
  base::TaskRunner* housekeeping = nullptr;
  std::shared_ptr<spdlog::logger> log;
};

class RunFolderPool {
 public:
  RunFolderPool(RunFolderPoolDeps deps, RunFolderPoolOptions options);
  RunFolderPool(const RunFolderPool&) = delete;
  RunFolderPool& operator=(const RunFolderPool&) = delete;

  // Call once, first: at daemon start, before any run is prepared or ends.
  // Removes spares an earlier daemon left (a filled one may hold a snapshot
  // no run needs) and half-made ones, makes a fresh spare, and lists the
  // finished runs' folders found, removing those beyond the limit.
  void Start();

  RunPaths PathsFor(const std::string& run_id) const;

  // Makes runs/<run_id>/ with `snapshot` materialized in wd/ and wd/outputs,
  // wd/logs created: a filled spare of that snapshot when there is one, else
  // the spare, else built here. Whatever an earlier attempt left there is
  // removed first. FAILED_PRECONDITION when the snapshot has an entry named
  // outputs or logs that is not a folder.
  absl::Status Prepare(const std::string& run_id, const amld::storage::Digest& snapshot);

  // After a run of `snapshot` was launched: makes the next spare now and
  // posts filling a spare with `snapshot` to the housekeeping runner.
  void Launched(const amld::storage::Digest& snapshot);

  // `run_id` is terminal and its files are stored: its folder joins the
  // finished ones, and those beyond the newest keep_finished_run_folders are
  // removed on the housekeeping runner.
  void Finished(const std::string& run_id);

  // Removes an ended run's folder now (before its record is deleted), and
  // forgets it among the finished ones.
  void RemoveFolderOf(const std::string& run_id);

 private:
  std::filesystem::path SparePath() const;
  std::filesystem::path FilledSparePath(const amld::storage::Digest& root) const;
  void ReplenishSpare();
  void FillSpareWith(const amld::storage::Digest& root);
  // Builds a spare under a temporary name and renames it to `dest`; with
  // `snapshot`, materialized into its wd/.
  void MakeSpare(const std::filesystem::path& dest, const amld::storage::Digest* snapshot);
  void RemoveSpares(bool filled, bool temporary);
  // The terminal runs whose folders earlier daemons left, oldest end first.
  std::vector<std::string> ScanFinishedFolders();
  void PruneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveRunFolders(const std::vector<std::string>& run_ids);

  const RunFolderPoolDeps deps_;
  const RunFolderPoolOptions options_;

  absl::Mutex mu_;
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
  // Terminal runs whose folders may still exist, oldest end first.
  std::deque<std::string> finished_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amld::daemon
