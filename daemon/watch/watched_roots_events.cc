// WatchedRoots (watched_roots.h): what the watcher reports → changes
// pending per root, in the settle queue.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/watch/watched_roots_internal.h"

namespace amld::daemon {

using namespace watch_tree;  // NOLINT: the tree's helpers, internal

void WatchedRoots::EventLoop() {
  std::vector<WatchEvent> events;
  while (true) {
    events.clear();
    watcher_->Wait(absl::InfiniteDuration(), &events);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (!events.empty()) OnEvents(events);
  }
}

void WatchedRoots::OnEvents(const std::vector<WatchEvent>& events) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  for (const WatchEvent& e : events) HandleEventLocked(e);
  work_ready_.SignalAll();
}

void WatchedRoots::MarkPathLocked(Root& r, const std::string& rel) {
  r.pending.paths.insert(rel);
  settle_.Add(r.path.string());
}

void WatchedRoots::RequestFullRescanLocked(Root& r, const std::string& reason) {
  r.pending.full_rescan = reason;
  settle_.Add(r.path.string());
}

void WatchedRoots::HandleEventLocked(const WatchEvent& e) {
  using Kind = WatchEvent::Kind;
  if (e.kind == Kind::kOverflow) {
    const std::string reason =
        e.reason.empty() ? kOverflowReason : e.reason;
    for (auto& [path, r] : roots_) RequestFullRescanLocked(*r, reason);
    // The rescan comes after every waiting cookie was written, so it sees
    // what those callers need.
    cookies_seen_.insert(cookies_waiting_.begin(), cookies_waiting_.end());
    cookies_waiting_.clear();
    return;
  }
  auto it = watches_.find(e.watch);
  if (it == watches_.end()) {
    if (e.kind == Kind::kWatchEnded) {
      retired_watches_.erase(e.watch);
      return;
    }
    if (retired_watches_.contains(e.watch)) return;
    for (auto& [path, r] : roots_) {
      RequestFullRescanLocked(*r, absl::StrCat("event for an unknown watch (", e.watch, ")"));
    }
    return;
  }
  Root& r = *it->second.root;
  const std::string dir = it->second.rel_dir;
  if (e.kind == Kind::kWatchEnded || e.kind == Kind::kSelfGone) {
    if (dir.empty()) {
      r.error = absl::StrCat("the folder ", r.path.string(),
                             " was removed or moved away; watch it again with `aml snapshot "
                             "watch` (submits walk it on the client until then)");
      DropWatchesLocked(r, "");
      // Changes still pending must not be applied to a tree nobody watches.
      RequestFullRescanLocked(r, "the folder was removed or moved");
      return;
    }
    if (e.kind == Kind::kWatchEnded) {
      auto w = r.watch_of_dir.find(dir);
      if (w != r.watch_of_dir.end() && w->second == e.watch) r.watch_of_dir.erase(w);
      watches_.erase(e.watch);
    }
    MarkPathLocked(r, dir);
    return;
  }
  if (e.name.empty()) {  // about the watched folder itself (its attributes)
    if (!dir.empty()) MarkPathLocked(r, dir);
    return;
  }
  if (dir.empty() && absl::StartsWith(e.name, kCookiePrefix)) {
    if (e.created && cookies_waiting_.erase(e.name) > 0) cookies_seen_.insert(e.name);
    return;
  }
  MarkPathLocked(r, Join(dir, e.name));
  if (IsIgnoreFileName(e.name)) {
    r.pending.rules_changed = true;
    r.pending.rescan_dirs.insert(dir);
  }
}

void WatchedRoots::DropWatchesLocked(Root& r, const std::string& rel_dir) {
  std::vector<std::string> under;
  for (const auto& [dir, id] : r.watch_of_dir) {
    if (IsUnder(dir, rel_dir)) under.push_back(dir);
  }
  for (const std::string& dir : under) DropWatchLocked(r, dir);
}

void WatchedRoots::DropWatchLocked(Root& r, const std::string& rel_dir) {
  auto it = r.watch_of_dir.find(rel_dir);
  if (it == r.watch_of_dir.end()) return;
  const int id = it->second;
  r.watch_of_dir.erase(it);
  auto target = watches_.find(id);
  // A folder moved elsewhere in the tree may own this watch now.
  if (target == watches_.end() || target->second.root != &r || target->second.rel_dir != rel_dir) {
    return;
  }
  watches_.erase(target);
  retired_watches_.insert(id);
  if (watcher_ != nullptr) watcher_->RemoveWatch(id);
}

}  // namespace amld::daemon
