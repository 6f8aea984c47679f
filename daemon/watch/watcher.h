// Watcher: the one interface between the kernel's change notifications and
// what is built on them — live ingestion (daemon/ingest/live_ingester.h),
// watched source roots (watched_roots.h) and log following (file_watcher.h).
// As in watchman (Watcher.h), a watcher only collects what changed, by
// watch and name; deciding what that means (stat, hash, store) happens
// later, after the change settled (settle_queue.h), in the caller.
//
// The one implementation is inotify (inotify.h); tests use one fake
// (tests/testing/fake_watcher.h) to step the callers without sleeping.
//
// Lossy by design: when the kernel's queue overflows, Wait reports one
// kOverflow event (with the reason to give for the rescan it requires) and
// the caller must look at everything it watches again. Out of watches
// (ENOSPC): AddWatch fails RESOURCE_EXHAUSTED; the caller degrades (rescans
// on a timer, or refuses) and tells the user the fix (WatchLimitFix in
// inotify.h).
//
// Thread-safety: thread-safe. Wait is called from one thread at a time (the
// caller's event loop); AddWatch, RemoveWatch and Wake from any thread,
// including while a Wait blocks.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace amld::daemon {

// The {} initializers let tests write WatchEvent{kind, watch, name} without
// -Wmissing-field-initializers warnings.
struct WatchEvent {
  enum class Kind {
    kEntry,       // `name` in the watched folder (empty: the watched file or
                  // folder itself) was created, written, closed after
                  // writing, removed, moved in or out, or changed attributes
    kSelfGone,    // the watched folder or file itself was removed or moved,
                  // or its file system unmounted
    kWatchEnded,  // the watch is gone (RemoveWatch, or its inode deleted);
                  // the last event of `watch`
    kOverflow,    // events were lost: rescan everything (watch is -1)
  };
  Kind kind = Kind::kEntry;
  int watch = -1;
  std::string name{};          // kEntry only
  bool is_dir{false};          // kEntry: `name` is (or was) a folder
  bool created{false};         // kEntry: created or moved in
  std::string reason{};        // kOverflow: why the caller must rescan (kOverflowReason
                               // for a queue overflow)
};

// What a watch reports.
// The reason a kOverflow event gives when the kernel's queue overflowed.
inline constexpr char kOverflowReason[] = "inotify queue overflow: events were lost";

enum class WatchKind {
  kFolder,          // the entries of a folder, one level deep, and the folder itself,
                    // attribute changes (chmod, touch) included
  kFolderContents,  // the same without attribute changes: for callers that
                    // keep no metadata, so the kernel queues none for them
  kFile,    // writes, truncation, attributes and removal of one file
};

class Watcher {
 public:
  virtual ~Watcher() = default;
  // Watches the folder or file open as `fd` (any mode, O_PATH included): the
  // very inode, not whatever its path names later. Watching an inode already
  // watched returns its existing id. Errors: RESOURCE_EXHAUSTED when the
  // user is out of watches; NOT_FOUND when a kFolder watch meets something
  // that is not a folder; others as errno says.
  virtual absl::StatusOr<int> AddWatch(int fd, WatchKind kind) = 0;
  // Stops a watch; a kWatchEnded event for it follows, and events queued
  // before it may still arrive. Unknown ids are ignored.
  virtual void RemoveWatch(int watch) = 0;
  // Blocks until events are ready, `timeout` has passed or Wake() was
  // called, then appends the ready events to `events` in the order they
  // happened. absl::InfiniteDuration() waits without limit.
  virtual void Wait(absl::Duration timeout, std::vector<WatchEvent>* events) = 0;
  // Makes the current or next Wait return early.
  virtual void Wake() = 0;
};

}  // namespace amld::daemon
