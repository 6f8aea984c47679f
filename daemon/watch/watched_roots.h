// WatchedRoots: source folders registered with the daemon (`aml snapshot
// watch DIR`), kept hashed and stored as they change, so that a submit of a
// watched folder costs one round trip instead of a walk and an upload.
//
// Pipeline (after watchman's): a Watcher (watcher.h) reports changed names,
// per watched folder; OnEvents (on a thread that waits on the watcher) only
// records them as pending and puts the root in the settle queue
// (settle_queue.h). Once a root has been quiet for the settle delay (or at
// most max_settle after its first pending change), the worker applies the
// changes: it stats
// each changed path, hashes and stores a changed file in the CAS, and walks
// a new folder (BuildSnapshot of that subfolder, watches added for each of
// its folders). The current tree stays in memory as one node per folder;
// a change clears the cached digest of the nodes on its path only, and the
// next snapshot re-encodes just those (storing each new Directory blob;
// watch_tree.h). A file's stamp may vouch for its digest in a later walk
// only when it was not too recent to trust (storage/file_stamp.h).
//
// Ignore files: a change to an .amlignore/.gitignore re-reads the rules and
// walks that folder again, so files it newly ignores leave the tree and
// files it newly includes enter it. `.git` and the sync cookies
// (`.amld-cookie-*`) are always left out, in client walks too.
//
// Never stale (Sync): before returning a tree, the daemon writes a cookie
// file into the root and waits for its event; the kernel queues events in
// order, so every change made before the call has been read by then. The
// pending changes are applied at once (no settle delay) and the tree is
// returned. A queue overflow or an event for a watch the daemon never made
// marks every root for a full rescan (the reason and time are kept and
// listed); overflow also releases waiting cookies, since the rescan comes
// after them. Out of inotify watches (ENOSPC) → DEGRADED: the root's
// watches are dropped, Sync refuses (the client walks), and List says which
// sysctl to raise, to what (inotify.h: WatchLimitFix). A root whose folder is removed, unreadable, holds a name
// or link a snapshot refuses, or is over the limits is in ERROR: Sync
// refuses with the reason, and the next change retries.
//
// Persistence: registered roots are kept in `state_file` (one C-escaped
// absolute path per line, written atomically); after a restart each is
// scanned in full again in the background (files already in the CAS are
// hashed, not stored again).
//
// Security: a root has an owner, whose folder it is. In user mode (no
// owner given) the daemon reads it as itself, the same user who registered
// it. A system-mode daemon (root) is given the caller (SO_PEERCRED) as the
// owner, and every read of the root — each stat, open, walk (its hashing
// threads too), ignore file and inotify_add_watch (which checks read
// permission with the thread's fsuid) — and the sync cookie's write take
// the owner's filesystem identity (base/fs_identity.h), while the CAS is
// written as the daemon: a user cannot watch, nor have stored, what they
// cannot read. Calls that name an `as_owner` (a user who is no admin) act
// only on that user's roots (PERMISSION_DENIED naming the owner's uid).
// The owner (uid and primary gid) is persisted with the root.
//
// Code: watched_roots.cc (the calls below and the worker),
// watched_roots_events.cc (events → pending), watched_roots_scan.cc
// (pending → tree: stat, hash, walk, watches), watched_roots_persist.cc
// (the state file), watch_tree.h (the tree).
//
// Thread-safety: thread-safe. Lock order: a root's work mutex, then mu_;
// OnEvents takes only mu_, so the watcher's thread never waits for hashing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "amld/v1/snapshots.pb.h"
#include "base/clock.h"
#include "base/fs_identity.h"
#include "daemon/watch/settle_queue.h"
#include "daemon/watch/watcher.h"
#include "storage/cas.h"

namespace spdlog {
class logger;
}

namespace amld::daemon {

struct WatchedRootsOptions {
  // Where registrations are kept; empty: not persisted.
  std::filesystem::path state_file;
  // The daemon's data dir: no root may lie inside it (each object the CAS
  // stored would be a change to store again, without end). Empty: no check.
  std::filesystem::path data_dir;
  // Quiet time after the last event before changes are applied.
  absl::Duration settle_delay = absl::Milliseconds(100);
  // Changes wait at most this long after the first of a burst.
  absl::Duration max_settle = absl::Seconds(2);
  // How long Sync waits for its cookie's event.
  absl::Duration cookie_timeout = absl::Seconds(10);
  // Snapshot limits; 0 means none. Over them a root is in ERROR and Sync
  // fails with RESOURCE_EXHAUSTED listing the largest files.
  int64_t max_snapshot_bytes = 0;
  int64_t max_snapshot_files = 0;
  // Hashing threads for walks; 0: one per core.
  int hash_threads = 0;
  // False in stepping tests: nothing is applied until RunDueWork() or Sync.
  bool run_worker_thread = true;
  // Whether clients on this machine may hand their folders over for the
  // daemon to read (Snapshots.IngestLocalFolder, local_ingest.h); amld.yaml
  // `local_ingest: false` turns it off (clients then upload).
  bool local_ingest = true;
  // Folders watched automatically at most (WatchAutomatically; amld.yaml
  // `auto_watch_roots`); 0: none.
  int max_auto_roots = 8;
};

// Whose folder a root is (system mode: the caller who watched it).
struct RootOwner {
  uid_t uid = 0;
  gid_t gid = 0;  // primary group
};

struct WatchedRootsDeps {
  amld::storage::ContentStore* cas = nullptr;
  base::Clock* clock = nullptr;
  std::shared_ptr<spdlog::logger> log;  // may be null
};

class WatchedRoots {
 public:
  WatchedRoots(WatchedRootsDeps deps, WatchedRootsOptions options);
  ~WatchedRoots();  // Shutdown()
  WatchedRoots(const WatchedRoots&) = delete;
  WatchedRoots& operator=(const WatchedRoots&) = delete;

  // Takes the watcher (a thread of its own waits on it and hands its events
  // to OnEvents), loads the registered roots (each scanned again in the
  // background, reason "daemon restart") and starts the worker. Call once.
  // Errors: a state file that cannot be read (not a missing one).
  absl::Status Start(std::unique_ptr<Watcher> watcher);
  // Stops the worker and the watcher; waiting Syncs fail with UNAVAILABLE.
  // Call after the gRPC server stopped. Idempotent.
  void Shutdown();

  const WatchedRootsOptions& options() const { return options_; }

  // See Snapshots.WatchRoot in proto/amld/v1/snapshots.proto: registers and
  // scans `path` in full before returning (codes as documented there).
  // `owner`: read it as them (see "Security" above); absent: as the daemon.
  // A folder already watched for another owner is PERMISSION_DENIED.
  absl::StatusOr<amld::v1::WatchedRoot> Watch(const std::filesystem::path& path,
                                              std::optional<RootOwner> owner = std::nullopt);
  // Watches `path` because it was submitted repeatedly (LocalIngest): like
  // Watch, but returns at once (the worker scans it), is not persisted, and
  // the least recently used of more than options.max_auto_roots such roots
  // is dropped. A folder already watched, or one Watch would refuse, is left
  // as it is (the error says why). A later Watch of it registers it.
  absl::Status WatchAutomatically(const std::filesystem::path& path);
  // See Snapshots.UnwatchRoot. `as_owner`: only a root of theirs.
  absl::StatusOr<amld::v1::WatchedRoot> Unwatch(const std::filesystem::path& path,
                                                std::optional<uid_t> as_owner = std::nullopt);
  // Every root, sorted by path.
  std::vector<amld::v1::WatchedRoot> List() const;
  // See Snapshots.GetWatchedSnapshot and the file comment. `as_owner`: only
  // a root of theirs.
  absl::StatusOr<amld::v1::GetWatchedSnapshotResponse> Sync(
      const std::filesystem::path& path, std::optional<uid_t> as_owner = std::nullopt);

  // For CAS garbage collection: adds the digest of every root's last
  // published tree to `trees` (the caller keeps their Directory blobs and
  // everything below) and every file of the current trees to `blobs`
  // (changes already stored, not yet published). Waits for a root whose
  // changes are being applied.
  void AddLiveDigests(std::vector<amld::storage::Digest>* trees,
                      absl::flat_hash_set<amld::storage::Digest>* blobs) const;

  // Applies the changes of every root whose settle time has passed on the
  // clock; returns how many roots it processed. The worker calls it; tests
  // call it to step.
  int RunDueWork();

  // What the watcher reported (public for tests that drive it by hand).
  void OnEvents(const std::vector<WatchEvent>& events);

 private:
  struct Root;
  struct Pending;
  struct ProcessResult;

  // watched_roots.cc: the calls and the worker.
  void WorkerLoop();
  std::shared_ptr<Root> FindRoot(const std::filesystem::path& path) const;
  // PERMISSION_DENIED unless `r` is `as_owner`'s (absent: anyone's).
  static absl::Status CheckOwner(const Root& r, std::optional<uid_t> as_owner);
  // A new root at `canon` (not yet in roots_), read as `owner`.
  std::shared_ptr<Root> NewRoot(const std::filesystem::path& canon,
                                std::optional<RootOwner> owner) const;
  absl::Status CheckNotInDataDir(const std::filesystem::path& canon) const;
  absl::Status CheckNoOverlap(const std::filesystem::path& path) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  amld::v1::WatchedRoot DescribeLocked(const Root& r) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets a root: no more watches or settling. Its Root object lives on
  // while a call holds it.
  void RemoveRootLocked(Root& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // watched_roots_persist.cc: the state file.
  absl::Status LoadRegistered();
  absl::Status Persist();

  // watched_roots_events.cc: event bookkeeping, under mu_.
  void EventLoop();
  void MarkPathLocked(Root& r, const std::string& rel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequestFullRescanLocked(Root& r, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleEventLocked(const WatchEvent& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // watched_roots_scan.cc: processing, under the root's work mutex.
  ProcessResult Process(Root& r);
  absl::Status FullScan(Root& r, const std::string& reason);
  absl::Status ApplyChanges(Root& r, Pending& p);
  absl::Status ApplyPath(Root& r, const std::string& rel, std::vector<std::string>* rescan_dirs);
  absl::Status StoreFile(Root& r, const std::string& rel, std::vector<std::string>* rescan_dirs);
  absl::Status ScanSubtree(Root& r, const std::string& rel_dir, bool apply_limits);
  void RemoveEntry(Root& r, const std::string& rel);
  absl::StatusOr<bool> SyncWatches(Root& r, const std::string& rel_dir);
  // Stops the watches of `rel_dir` and every folder below it.
  void DropWatchesLocked(Root& r, const std::string& rel_dir) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops the watch of exactly `rel_dir`.
  void DropWatchLocked(Root& r, const std::string& rel_dir) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetDegraded(Root& r, const absl::Status& why);
  void Publish(Root& r, bool changed);
  std::string LimitProblem(Root& r);

  WatchedRootsDeps deps_;
  WatchedRootsOptions options_;
  std::unique_ptr<Watcher> watcher_;
  std::thread worker_;
  std::thread events_;  // EventLoop

  mutable absl::Mutex mu_;
  absl::CondVar work_ready_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, std::shared_ptr<Root>> roots_ ABSL_GUARDED_BY(mu_);
  // Roots (by path) with changes pending, until they settle.
  SettleQueue<std::string> settle_ ABSL_GUARDED_BY(mu_);
  struct WatchTarget {
    Root* root = nullptr;
    std::string rel_dir;
  };
  absl::flat_hash_map<int, WatchTarget> watches_ ABSL_GUARDED_BY(mu_);
  // Removed by us; their queued events are expected, not a reason to rescan.
  absl::flat_hash_set<int> retired_watches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> cookies_waiting_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> cookies_seen_ ABSL_GUARDED_BY(mu_);
  uint64_t next_cookie_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Mutex persist_mu_;
};

}  // namespace amld::daemon
