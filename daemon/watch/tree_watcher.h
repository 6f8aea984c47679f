// TreeWatcher: tells the watched-roots module (watched_roots.h) which
// entries of which folders changed. One watch covers one folder, not its
// subfolders; the caller adds a watch per folder it keeps. The watcher only
// collects names: deciding what changed (stat, hash) happens later, after a
// settle delay, in the caller (as in watchman).
//
// An interface so that tests can step the whole pipeline with a fake
// (tests/testing/fake_tree_watcher.h) instead of sleeping on a real inotify
// queue. The inotify implementation runs one thread blocked in poll(2) on
// the inotify fd and a wake-up eventfd: an idle daemon spends no CPU here.
//
// Thread-safety: thread-safe. The sink is called on the watcher's thread, one
// batch at a time and in the kernel's order; it may call AddWatch and
// RemoveWatch (they take no lock the delivery holds). After the watcher is
// destroyed the sink is never called again.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace amld::daemon {

// One thing that happened.
struct TreeEvent {
  // The watch it concerns; 0 for an overflow.
  uint64_t watch_id = 0;
  // The entry of the watched folder that changed; empty when the event is
  // about the folder itself (see self_gone, watch_gone).
  std::string name;
  // The entry is (or was) a folder.
  bool is_dir = false;
  // The entry was created or moved in (else: written, removed, moved out, or
  // its attributes changed).
  bool created = false;
  // Events were lost (the kernel's queue overflowed): nothing seen so far
  // can be trusted to be complete.
  bool overflow = false;
  // The watched folder itself was deleted or moved away.
  bool self_gone = false;
  // The watch ended (folder deleted, file system unmounted, or RemoveWatch);
  // no more events come for this id.
  bool watch_gone = false;
};

class TreeWatcher {
 public:
  using Sink = std::function<void(std::vector<TreeEvent>)>;
  virtual ~TreeWatcher() = default;

  // Watches the folder at `dir` (not followed if it is a symlink) for
  // entries created, removed, moved in or out, written or changed in
  // attributes. Watching a folder already watched returns its existing id.
  // Errors: RESOURCE_EXHAUSTED when the user's limit on watches is reached
  // (fs.inotify.max_user_watches); NOT_FOUND when `dir` is gone or is not a
  // folder; PERMISSION_DENIED.
  virtual absl::StatusOr<uint64_t> AddWatch(const std::filesystem::path& dir) = 0;
  // Stops a watch; a watch_gone event for it may still arrive.
  virtual void RemoveWatch(uint64_t watch_id) = 0;
};

// The inotify watcher, delivering to `sink`. RESOURCE_EXHAUSTED (with the
// sysctl to raise) when the user is out of inotify instances.
absl::StatusOr<std::unique_ptr<TreeWatcher>> NewInotifyTreeWatcher(TreeWatcher::Sink sink);

// The kernel's limit on inotify watches per user, or -1 when unknown.
int64_t InotifyWatchLimit();

}  // namespace amld::daemon
