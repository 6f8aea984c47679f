// LiveIngester: stores a run's outputs/, logs/ and metrics while it runs,
// so ListFiles, DownloadFile and GetMetrics show them before it ends, and
// makes the ingest at its end incremental.
//
// Pipeline (watchman's shape: the watcher only collects changed paths; a
// separate step reads them once they have settled):
//   events (Watcher) → HandleEvents: map each to a pending item in the
//   settle queue (daemon/watch/settle_queue.h)
//     a file in outputs/ or logs/ changed   → store it `settle` after its last
//                                             change, at most `max_delay`
//                                             after its first
//     a folder appeared (or was moved in)   → at once: watch it, then list
//                                             it; changed files found there
//                                             are pending like the above
//     metrics.jsonl was written             → read new lines `metrics_delay`
//                                             after the first write
//     queue overflow, or an event for a     → full rescan of every watched
//     watch the ingester does not know        run (reason logged): nothing
//                                             is ever left stale
//   RunDue: takes the items due by the clock and stores the results
//   (StateStore::PutArtifacts / RemoveArtifacts / AppendMetrics).
// Durability: files go into the CAS without an fsync each
// (artifact_sync.h). A file stored is recorded (PutArtifacts) only after
// ContentStore::SyncPending has made it durable; that sync happens at most
// once per `durable_interval` while runs run (files stored meanwhile wait,
// and a flush is due when the interval ends) and once in Finish, so a run
// writing 10,000 outputs costs one sync at its end, not 20,000 fsyncs.
// Each run's wd/outputs/ and wd/logs/ are watched recursively, wd/ for
// those two names and the run folder for metrics.jsonl. Folders are
// watched before they are listed, so a file created before its folder's
// watch landed is still found. When the kernel refuses more watches
// (fs.inotify.max_user_watches), the run is rescanned every
// `degraded_rescan_interval` instead, and the daemon log says so and how to
// raise the limit (daemon/watch/inotify.h: WatchLimitFix).
//
// Metrics follow metrics_tail.h; malformed lines are reported in the run's
// system_logs/amld-metrics.log. Its "kind" lines change the run's record:
// tags, properties, display name and a requested failure at once (the run
// manager applies the failure at the end), uploads (uploads/<name> of the
// run folder) at once, model registrations at Finish, from the run's
// recorded artifacts.
//
// TensorBoard event files (`events.out.tfevents.*` anywhere under logs/,
// daemon/ingest/tf_events.h) are stored like every other log file, and
// their scalars are read into the run's metrics as they grow: after each
// pass that stored such a file, and for every one of them at a rescan and
// at Finish. Each value is stored with its file and record's end offset
// (StateStore::AppendMetrics's source), so a restarted daemon resumes each
// file where the last stopped, and metrics.jsonl's count (metrics_tail.h)
// counts only its own values. Malformed records go to amld-metrics.log.
//
// The watcher and the clock are the nondeterministic edges: tests feed
// HandleEvents by hand and call RunDue with a fake clock, without threads or
// sleeps. IngestLoop runs the same two steps on one thread for the daemon.
//
// Thread-safety: thread-safe. One mutex guards the watch table and the
// pending items and is never held across file reads; each run's files are
// read under that run's own mutex (taken before the table's, never after),
// so Finish waits only for its own run.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/ingest/artifact_sync.h"
#include "daemon/ingest/metrics_tail.h"
#include "base/clock.h"
#include "daemon/watch/settle_queue.h"
#include "daemon/watch/watcher.h"
#include "daemon/executors/run_folder.h"
#include "storage/cas.h"
#include "storage/state/state_store.h"

namespace spdlog {
class logger;
}

namespace amld::daemon {

struct LiveIngesterOptions {
  // A file is stored this long after its last change...
  absl::Duration settle = absl::Milliseconds(200);
  // ...but no later than this after its first unstored change, so a log
  // written without pause still shows up.
  absl::Duration max_delay = absl::Seconds(2);
  // New metric lines are read this long after the first write.
  absl::Duration metrics_delay = absl::Milliseconds(100);
  // See storage/file_stamp.h; other than kRacyWindow only in tests.
  absl::Duration racy_window = amld::storage::kRacyWindow;
  // Rescan period of a run that could not get all its watches.
  absl::Duration degraded_rescan_interval = absl::Seconds(5);
  // At most one CAS sync this often while runs run (see Durability above):
  // the longest a stored file waits before ListFiles shows it.
  absl::Duration durable_interval = absl::Seconds(1);
};

// All must outlive the ingester. `watcher` may be null: then nothing is
// watched and Finish reads everything at the end. `log` may be null.
struct LiveIngesterDeps {
  amld::storage::StateStore* store = nullptr;
  amld::storage::ContentStore* cas = nullptr;
  Watcher* watcher = nullptr;
  base::Clock* clock = nullptr;
  std::shared_ptr<spdlog::logger> log;
};

struct IngestStats {
  int64_t files_read = 0;  // files hashed into the CAS
  int64_t rescans = 0;     // full rescans of a run (the first one at Watch included)
  int64_t overflows = 0;   // inotify queue overflows
  int64_t unknown_watch_events = 0;
  int64_t metrics_stored = 0;
  int64_t metric_lines_skipped = 0;  // malformed lines
  int64_t cas_syncs = 0;             // SyncPending calls before recording files
};

class LiveIngester {
 public:
  LiveIngester(LiveIngesterDeps deps, LiveIngesterOptions options);
  ~LiveIngester();
  LiveIngester(const LiveIngester&) = delete;
  LiveIngester& operator=(const LiveIngester&) = delete;

  // Starts watching the run: a full scan is due at once (it also takes in
  // what is there already, and what an earlier daemon stored). Call before
  // the run's process starts, and when a restarted daemon re-adopts it.
  // Watching a watched run does nothing.
  void Watch(const std::string& run_id, const RunPaths& paths);
  // Stops watching a run that ends without a process (nothing to finish).
  // Quick: never waits for file reads.
  void Forget(const std::string& run_id);
  // The run's process has ended: stops watching it and brings its
  // artifacts up to date — re-reading only files changed since they were
  // stored, removing those gone — plus user_logs/std_log.txt, and stores the
  // metric lines not read yet (a last line without newline included). Works
  // for a run never watched (then every file is read). `skipped` gets
  // "path: why" for files not stored. Errors are the store's.
  absl::Status Finish(const std::string& run_id, const RunPaths& paths,
                      std::vector<std::string>* skipped);

  // The pipeline's two steps (IngestLoop's thread calls them; tests too).
  void HandleEvents(const std::vector<WatchEvent>& events);
  // Does everything due by the clock's now; returns when the next pending
  // item is due (absl::InfiniteFuture() when none is).
  absl::Time RunDue();

  IngestStats stats() const;

 private:
  struct RunState;
  enum class Work { kRescan, kPath, kMetrics, kFlush };
  struct WorkKey {
    std::string run_id;
    Work work;
    std::string rel;  // kPath: "outputs/…" or "logs/…"
    auto operator<=>(const WorkKey&) const = default;
  };
  // kRescan: why; empty for other work.
  using Reason = std::string;
  using Item = std::pair<WorkKey, Reason>;
  enum class Role { kRunFolder, kWd, kTree };
  struct WatchTarget {
    std::string run_id;
    Role role;
    std::string rel;  // kTree: the folder ("outputs/a")
  };

  void ScheduleLocked(const std::string& run_id, Work work, const std::string& rel,
                      absl::Duration delay, std::string reason = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RescanAllLocked(const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleEventLocked(const WatchEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<RunState> DetachLocked(const std::string& run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddWatch(RunState& run, Role role, const std::string& rel, int dir_fd);

  void Process(RunState& run, const std::vector<Item>& items);
  absl::Status Seed(RunState& run);
  void WatchRunFolders(RunState& run);
  void ReadMetrics(RunState& run, bool at_end);
  // Reads the scalars appended to these events files (paths under wd/).
  void ReadTfEvents(RunState& run, const std::vector<std::string>& files, bool at_end);
  // Every events file stored for the run.
  static std::vector<std::string> KnownTfEventsFiles(const RunState& run);
  void ReportMetricWarnings(RunState& run, const std::vector<std::string>& warnings);
  // A "kind" line of the metrics file (metrics_tail.h): labels and uploads
  // at once, model registrations kept for RegisterModels at Finish.
  absl::Status ApplyRecord(RunState& run, RunRecordLine record);
  void RegisterModels(RunState& run);
  void Apply(RunState& run, const ArtifactSync::Changes& changes);
  // Records the run's stored-but-unrecorded files after one CAS sync, when
  // the last sync is `durable_interval` old; otherwise schedules a kFlush.
  void RecordStored(RunState& run);
  // One SyncPending, counted; `last_sync_` moves on.
  absl::Status SyncStore();

  LiveIngesterDeps deps_;
  LiveIngesterOptions options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<RunState>> runs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int, WatchTarget> watches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_set<int>> watches_of_run_ ABSL_GUARDED_BY(mu_);
  // Watches removed whose kWatchEnded has not arrived: their late events
  // are expected, not a reason to rescan.
  absl::flat_hash_set<int> retired_ ABSL_GUARDED_BY(mu_);
  SettleQueue<WorkKey, Reason> pending_ ABSL_GUARDED_BY(mu_);

  std::atomic<int64_t> files_read_{0};
  std::atomic<int64_t> rescans_{0};
  std::atomic<int64_t> overflows_{0};
  std::atomic<int64_t> unknown_watch_events_{0};
  std::atomic<int64_t> metrics_stored_{0};
  std::atomic<int64_t> metric_lines_skipped_{0};
  std::atomic<int64_t> cas_syncs_{0};
  absl::Mutex sync_mu_;
  absl::Time last_sync_ ABSL_GUARDED_BY(sync_mu_) = absl::InfinitePast();
};

// Runs a LiveIngester's pipeline on one thread: RunDue, then wait on the
// watcher until events arrive or the next item is due, then HandleEvents.
// Sleeps in the watcher while nothing is pending.
class IngestLoop {
 public:
  IngestLoop(LiveIngester* ingester, Watcher* watcher, base::Clock* clock);
  ~IngestLoop();  // stops the thread and joins it
  IngestLoop(const IngestLoop&) = delete;
  IngestLoop& operator=(const IngestLoop&) = delete;

 private:
  void Loop();
  LiveIngester* ingester_;
  Watcher* watcher_;
  base::Clock* clock_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace amld::daemon
