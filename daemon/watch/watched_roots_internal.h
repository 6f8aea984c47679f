// The state of one watched root, shared by the files that implement
// WatchedRoots (watched_roots.h). Internal to daemon/watch/.
//
// Thread-safety: as marked on each field.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/watch/watch_tree.h"
#include "daemon/watch/watched_roots.h"
#include "storage/ignore.h"

namespace amld::daemon {

// Changes seen and not yet applied.
struct WatchedRoots::Pending {
  absl::flat_hash_set<std::string> paths;        // entries to look at again
  absl::flat_hash_set<std::string> rescan_dirs;  // folders to walk again
  bool rules_changed = false;                    // an ignore file changed
  std::string full_rescan;                       // non-empty: why
  bool empty() const { return paths.empty() && rescan_dirs.empty() && full_rescan.empty(); }
  size_t size() const { return paths.size() + rescan_dirs.size() + (full_rescan.empty() ? 0 : 1); }
};

struct WatchedRoots::ProcessResult {
  absl::Status status;
  int64_t applied = 0;
  bool rescanned = false;
  std::optional<watch_tree::Digest> digest;
  int64_t file_count = 0;
  int64_t total_bytes = 0;
};

struct WatchedRoots::Root {
  std::filesystem::path path;
  absl::Time registered;
  // Whose folder it is, and the identity its reads take (set when that
  // needs a change: a root daemon reading a user's folder). Fixed at
  // creation.
  std::optional<RootOwner> owner;
  std::optional<amld::base::FsIdentity> read_as;
  uid_t owner_uid() const { return owner ? owner->uid : ::geteuid(); }
  // Takes the owner's filesystem identity on this thread for a read of the
  // root (nothing changes where the daemon reads as itself). Never around a
  // write of the CAS: what is created meanwhile would be the owner's.
  absl::StatusOr<amld::base::ScopedFsIdentity> ReadAs() const {
    return amld::base::ScopedFsIdentity::Take(read_as ? &*read_as : nullptr);
  }
  // Watched because it was submitted repeatedly (WatchAutomatically), not
  // registered: not persisted, and dropped when least recently used. Both
  // guarded by WatchedRoots::mu_.
  bool automatic = false;
  absl::Time last_used;

  // Held while changes are applied; guards tree, rules and linked.
  absl::Mutex work_mu;
  std::unique_ptr<watch_tree::DirNode> tree;  // null until the first scan succeeds
  std::unique_ptr<amld::storage::IgnoreRules> rules;
  // Files with more than one name: a write through a name outside this
  // folder's watches sends no event, so each is stat'ed again on every pass.
  std::set<std::string> linked;

  // The rest is guarded by WatchedRoots::mu_. When changes are due is kept
  // in WatchedRoots::settle_.
  Pending pending;
  bool removed = false;  // unwatched
  bool scanning = true;  // no scan finished yet
  std::string degraded;  // why it is DEGRADED
  std::string error;     // why it is in ERROR
  std::string over_limit;
  watch_tree::Digest digest;
  int64_t file_count = 0;
  int64_t total_bytes = 0;
  absl::Time last_change = absl::InfinitePast();
  int64_t rescans = 0;
  std::string last_rescan_reason;
  absl::Time last_rescan_time;
  absl::flat_hash_map<std::string, int> watch_of_dir;
};

// FAILED_PRECONDITION when `path` is on a file system where changes made
// elsewhere send no inotify event (NFS, CIFS, FUSE, ...).
absl::Status CheckLocalFileSystem(const std::filesystem::path& path);

// `s` with `context` in front of its message.
absl::Status Annotate(const absl::Status& s, std::string_view context);

}  // namespace amld::daemon
