// FakeTreeWatcher: a TreeWatcher (daemon/watch/tree_watcher.h) the test drives.
// Watches are ids handed out per folder path; nothing is reported unless
// the test says so, the way the kernel would (Emit, EmitOverflow), on the
// test's own thread. A watch limit makes AddWatch fail as ENOSPC does.
//
// Thread-safety: thread-safe; the sink runs on the thread that emits.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "daemon/watch/tree_watcher.h"

namespace amld::daemon::testing {

class FakeTreeWatcher final : public TreeWatcher {
 public:
  explicit FakeTreeWatcher(Sink sink) : sink_(std::move(sink)) {}

  absl::StatusOr<uint64_t> AddWatch(const std::filesystem::path& dir) override {
    absl::MutexLock lock(&mu_);
    auto it = ids_.find(dir.string());
    if (it != ids_.end()) return it->second;
    std::error_code ec;
    if (!std::filesystem::is_directory(std::filesystem::symlink_status(dir, ec))) {
      return absl::NotFoundError(absl::StrCat(dir.string(), " is not a folder"));
    }
    if (limit_ >= 0 && static_cast<int>(ids_.size()) >= limit_) {
      return absl::ResourceExhaustedError("out of inotify watches (fs.inotify.max_user_watches)");
    }
    const uint64_t id = next_id_++;
    ids_[dir.string()] = id;
    return id;
  }

  void RemoveWatch(uint64_t watch_id) override {
    absl::MutexLock lock(&mu_);
    for (auto it = ids_.begin(); it != ids_.end(); ++it) {
      if (it->second == watch_id) {
        ids_.erase(it);
        return;
      }
    }
  }

  // The id of the watch on `dir`, if any.
  std::optional<uint64_t> IdOf(const std::filesystem::path& dir) const {
    absl::MutexLock lock(&mu_);
    auto it = ids_.find(dir.string());
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> WatchedDirs() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [dir, id] : ids_) out.push_back(dir);
    return out;
  }
  void set_watch_limit(int limit) {
    absl::MutexLock lock(&mu_);
    limit_ = limit;
  }

  // An event about entry `name` of the watched folder `dir`. False (and
  // nothing sent) when `dir` is not watched.
  bool Emit(const std::filesystem::path& dir, const std::string& name, bool is_dir = false,
            bool created = false) {
    std::optional<uint64_t> id = IdOf(dir);
    if (!id) return false;
    TreeEvent e;
    e.watch_id = *id;
    e.name = name;
    e.is_dir = is_dir;
    e.created = created;
    sink_({e});
    return true;
  }
  void EmitBatch(std::vector<TreeEvent> events) { sink_(std::move(events)); }
  void EmitOverflow() {
    TreeEvent e;
    e.overflow = true;
    sink_({e});
  }
  // An event for a watch that was never made.
  void EmitUnknown() {
    TreeEvent e;
    e.watch_id = 999999;
    e.name = "x";
    sink_({e});
  }

 private:
  Sink sink_;
  mutable absl::Mutex mu_;
  std::map<std::string, uint64_t> ids_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int limit_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace amld::daemon::testing
