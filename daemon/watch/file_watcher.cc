#include "daemon/watch/file_watcher.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "daemon/watch/inotify.h"

namespace amld::daemon {

FileWatcher::FileWatcher(std::unique_ptr<Watcher> watcher) : watcher_(std::move(watcher)) {
  thread_ = std::thread([this] { Loop(); });
}

FileWatcher::~FileWatcher() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  watcher_->Wake();
  thread_.join();
}

absl::StatusOr<uint64_t> FileWatcher::Watch(int fd, Callback callback) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<int> added = watcher_->AddWatch(fd, WatchKind::kFile);
  if (absl::IsResourceExhausted(added.status())) {
    return absl::ResourceExhaustedError(
        absl::StrCat(added.status().message(), "; ", WatchLimitFix(1)));
  }
  AMLD_ASSIGN_OR_RETURN(int watch, std::move(added));
  const uint64_t id = next_id_++;
  by_watch_[watch].emplace_back(id, std::move(callback));
  watch_of_[id] = watch;
  return id;
}

void FileWatcher::Unwatch(uint64_t watch_id) {
  absl::MutexLock lock(&mu_);
  auto it = watch_of_.find(watch_id);
  if (it == watch_of_.end()) return;
  const int watch = it->second;
  watch_of_.erase(it);
  auto& list = by_watch_[watch];
  std::erase_if(list, [&](const auto& w) { return w.first == watch_id; });
  if (list.empty()) {
    by_watch_.erase(watch);
    watcher_->RemoveWatch(watch);
  }
}

void FileWatcher::Loop() {
  std::vector<WatchEvent> events;
  while (true) {
    events.clear();
    watcher_->Wait(absl::InfiniteDuration(), &events);
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    for (const WatchEvent& e : events) {
      if (e.kind == WatchEvent::Kind::kOverflow) {
        for (auto& [watch, list] : by_watch_) {
          for (auto& [id, cb] : list) cb();
        }
        continue;
      }
      auto it = by_watch_.find(e.watch);
      if (it == by_watch_.end()) continue;
      for (auto& [id, cb] : it->second) cb();
    }
  }
}

absl::StatusOr<std::unique_ptr<FileWatcher>> NewInotifyFileWatcher() {
  AMLD_ASSIGN_OR_RETURN(std::unique_ptr<Watcher> watcher, NewInotifyWatcher());
  return std::make_unique<FileWatcher>(std::move(watcher));
}

}  // namespace amld::daemon
