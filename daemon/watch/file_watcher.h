// FileWatcher: tells interested parties that a file changed, so StreamLogs
// can follow a growing log without sleeping or polling. The inotify
// implementation runs one thread blocked in poll(2) on the inotify fd and a
// wake-up eventfd: an idle daemon spends no CPU here.
//
// Callbacks only say "something changed, read again"; a follower reads the
// file itself, so coalesced or spurious events are harmless. A queue overflow
// wakes every watcher (never silently stale).
//
// Thread-safety: thread-safe. Callbacks run on the watcher's thread, must be
// quick, and must not call Watch/Unwatch. After Unwatch returns, its callback
// is never called again.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"

namespace amld::daemon {

class FileWatcher {
 public:
  using Callback = std::function<void()>;
  virtual ~FileWatcher() = default;
  // Watches the file open as `fd` (the very inode, even if its path is
  // renamed or replaced) for writes, truncation and removal.
  virtual absl::StatusOr<uint64_t> Watch(int fd, Callback callback) = 0;
  virtual void Unwatch(uint64_t watch_id) = 0;
};

// RESOURCE_EXHAUSTED (with the sysctl to raise) when inotify is out of
// instances.
absl::StatusOr<std::unique_ptr<FileWatcher>> NewInotifyFileWatcher();

}  // namespace amld::daemon
