// FileWatcher: tells interested parties that a file changed, so StreamLogs
// can follow a growing log without sleeping or polling. Built on a Watcher
// (watcher.h; inotify in the daemon): one thread blocked in its Wait, so an
// idle daemon spends no CPU here.
//
// Callbacks only say "something changed, read again"; a follower reads the
// file itself, so coalesced or spurious events are harmless. A queue overflow
// wakes every follower (never silently stale).
//
// Thread-safety: thread-safe. Callbacks run on the watcher's thread, must be
// quick, and must not call Watch/Unwatch. After Unwatch returns, its callback
// is never called again.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/watch/watcher.h"

namespace amld::daemon {

class FileWatcher {
 public:
  using Callback = std::function<void()>;
  explicit FileWatcher(std::unique_ptr<Watcher> watcher);
  ~FileWatcher();  // stops the thread
  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

  // Watches the file open as `fd` (the very inode, even if its path is
  // renamed or replaced) for writes, truncation and removal.
  absl::StatusOr<uint64_t> Watch(int fd, Callback callback);
  void Unwatch(uint64_t watch_id);

 private:
  void Loop();

  std::unique_ptr<Watcher> watcher_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Several follows of one inode share a kernel watch; it goes with the last.
  absl::flat_hash_map<int, std::vector<std::pair<uint64_t, Callback>>> by_watch_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, int> watch_of_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::thread thread_;
};

// A FileWatcher on inotify. RESOURCE_EXHAUSTED (with the sysctl to raise)
// when inotify is out of instances.
absl::StatusOr<std::unique_ptr<FileWatcher>> NewInotifyFileWatcher();

}  // namespace amld::daemon
