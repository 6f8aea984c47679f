// FakeWatcher: the one fake of the Watcher interface (daemon/watch/watcher.h)
// for every suite that watches. Watches are ids handed out per inode's path
// (read back from /proc/self/fd); nothing is reported unless the test says
// so, the way the kernel would. A watch limit makes AddWatch fail as ENOSPC
// does.
//
// Two ways to drive a caller:
//   - by hand: build events with Entry() and hand them to the caller's own
//     entry point (LiveIngester::HandleEvents);
//   - through Wait: Emit* queue a batch for the caller's event thread and
//     return once that thread has taken it and come back to Wait, i.e. has
//     handled it — so a test steps on as if delivery were synchronous.
//
// Thread-safety: thread-safe.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "daemon/watch/watcher.h"

namespace amld::testing {

using daemon::Watcher;
using daemon::WatchEvent;
using daemon::WatchKind;

class FakeWatcher final : public Watcher {
 public:
  absl::StatusOr<int> AddWatch(int fd, WatchKind kind) override {
    std::error_code ec;
    const std::filesystem::path path =
        std::filesystem::read_symlink(absl::StrCat("/proc/self/fd/", fd), ec);
    if (ec) return absl::NotFoundError(absl::StrCat("fd ", fd, " is not open"));
    if (kind != WatchKind::kFile && !std::filesystem::is_directory(path, ec)) {
      return absl::NotFoundError(absl::StrCat(path.string(), " is not a folder"));
    }
    absl::MutexLock lock(&mu_);
    auto it = ids_.find(path.string());
    if (it != ids_.end()) return it->second;
    if (limit_ >= 0 && static_cast<int>(ids_.size()) >= limit_) {
      return absl::ResourceExhaustedError(
          "out of inotify watches (fs.inotify.max_user_watches is 8192)");
    }
    const int id = next_id_++;
    ids_[path.string()] = id;
    return id;
  }

  void RemoveWatch(int watch) override {
    absl::MutexLock lock(&mu_);
    removed_.push_back(watch);
    for (auto it = ids_.begin(); it != ids_.end(); ++it) {
      if (it->second == watch) {
        ids_.erase(it);
        return;
      }
    }
  }

  void Wait(absl::Duration timeout, std::vector<WatchEvent>* events) override {
    absl::MutexLock lock(&mu_);
    handled_ = taken_;  // the caller is back: what it took is handled
    auto ready = [this]() {
      mu_.AssertHeld();
      return !queue_.empty() || woken_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    woken_ = false;
    if (queue_.empty()) return;
    events->insert(events->end(), queue_.front().begin(), queue_.front().end());
    queue_.erase(queue_.begin());
    ++taken_;
  }

  void Wake() override {
    absl::MutexLock lock(&mu_);
    ++wakes_;
    woken_ = true;
  }

  // --- for the test

  // The id of the watch on `dir`, if any.
  std::optional<int> IdOf(const std::filesystem::path& dir) const {
    absl::MutexLock lock(&mu_);
    auto it = ids_.find(dir.string());
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  bool Watches(const std::filesystem::path& dir) const { return IdOf(dir).has_value(); }
  std::vector<std::string> WatchedDirs() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [dir, id] : ids_) out.push_back(dir);
    return out;
  }
  // At most `limit` watches at once; -1: no limit.
  void set_watch_limit(int limit) {
    absl::MutexLock lock(&mu_);
    limit_ = limit;
  }
  int wakes() const {
    absl::MutexLock lock(&mu_);
    return wakes_;
  }
  std::vector<int> removed() const {
    absl::MutexLock lock(&mu_);
    return removed_;
  }

  // An event about entry `name` of the watched folder `dir` (watch -1 when
  // `dir` is not watched).
  WatchEvent Entry(const std::filesystem::path& dir, const std::string& name, bool is_dir = false,
                   bool created = false) const {
    return WatchEvent{WatchEvent::Kind::kEntry, IdOf(dir).value_or(-1), name, is_dir, created};
  }

  // Delivers Entry(...) through Wait. False (and nothing sent) when `dir`
  // is not watched.
  bool Emit(const std::filesystem::path& dir, const std::string& name, bool is_dir = false,
            bool created = false) {
    if (!Watches(dir)) return false;
    return EmitBatch({Entry(dir, name, is_dir, created)});
  }
  // Delivers `events` through Wait, in one batch; false when the caller did
  // not handle it within 30 s.
  bool EmitBatch(std::vector<WatchEvent> events) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(events));
    const int64_t mine = taken_ + static_cast<int64_t>(queue_.size());
    auto handled = [&]() {
      mu_.AssertHeld();
      return handled_ >= mine;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&handled), absl::Seconds(30));
  }
  bool EmitOverflow() {
    WatchEvent e;
    e.kind = WatchEvent::Kind::kOverflow;
    e.reason = daemon::kOverflowReason;
    return EmitBatch({e});
  }
  // An event for a watch that was never made.
  bool EmitUnknown() { return EmitBatch({WatchEvent{WatchEvent::Kind::kEntry, 999999, "x"}}); }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, int> ids_ ABSL_GUARDED_BY(mu_);
  int next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int limit_ ABSL_GUARDED_BY(mu_) = -1;
  int wakes_ ABSL_GUARDED_BY(mu_) = 0;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> removed_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<WatchEvent>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t taken_ ABSL_GUARDED_BY(mu_) = 0;    // batches a Wait took
  int64_t handled_ ABSL_GUARDED_BY(mu_) = 0;  // of those, handled (the caller waits again)
};

}  // namespace amld::testing
