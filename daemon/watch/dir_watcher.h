// DirWatcher: the nondeterministic edge of live ingestion (live_ingester.h).
// It reports changes to the entries of watched folders, one level deep; the
// ingester decides what they mean and watches new subfolders itself. An
// interface, so tests feed the ingester events by hand (a fake watcher) and
// step it without sleeping; the real one is inotify.
//
// The inotify implementation owns one inotify fd and a wake-up eventfd; its
// Wait blocks in poll(2) on both, so an idle daemon spends no CPU here.
// inotify is lossy by design: when its queue overflows, Wait reports one
// kOverflow event and the caller must rescan everything it watches.
//
// Thread-safety: thread-safe. Wait is called from one thread at a time (the
// ingester's loop); AddWatch, RemoveWatch and Wake from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace amld::daemon {

// The {} initializers let tests write DirEvent{kind, watch} without
// -Wmissing-field-initializers warnings.
struct DirEvent {
  enum class Kind {
    kEntry,       // `name` in the watched folder was created, written,
                  // closed after writing, removed, or moved in or out
    kSelfGone,    // the watched folder itself was removed or moved
    kWatchEnded,  // the watch is gone (removed, or its folder deleted);
                  // the last event of `watch`
    kOverflow,    // events were lost: rescan everything (watch is -1)
  };
  Kind kind = Kind::kEntry;
  int watch = -1;
  std::string name{};  // kEntry only
  bool is_dir{false};  // kEntry: `name` is (or was) a folder
};

class DirWatcher {
 public:
  virtual ~DirWatcher() = default;
  // Watches the folder open as `dir_fd` (the very inode, not whatever its
  // path names later), not recursively. Watching a folder that is already
  // watched returns its existing id. RESOURCE_EXHAUSTED (naming the sysctl
  // to raise) when the user is out of watches.
  virtual absl::StatusOr<int> AddWatch(int dir_fd) = 0;
  // Stops a watch; a kWatchEnded event for it follows. Unknown ids are
  // ignored.
  virtual void RemoveWatch(int watch) = 0;
  // Blocks until events are ready, `timeout` has passed or Wake() was
  // called, then appends the ready events to `events` in the order they
  // happened. absl::InfiniteDuration() waits without limit.
  virtual void Wait(absl::Duration timeout, std::vector<DirEvent>* events) = 0;
  // Makes the current or next Wait return early.
  virtual void Wake() = 0;
};

// RESOURCE_EXHAUSTED (with the sysctl to raise) when inotify is out of
// instances.
absl::StatusOr<std::unique_ptr<DirWatcher>> NewInotifyDirWatcher();

}  // namespace amld::daemon
