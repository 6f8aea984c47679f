// The inotify Watcher (watcher.h): one inotify fd and a wake-up eventfd per
// watcher; Wait blocks in poll(2) on both, so an idle daemon spends no CPU
// here. The one place inotify events are decoded, a queue overflow becomes
// a rescan with its reason, and running out of watches or instances
// becomes an error that names the sysctl and the fix.
//
// Thread-safety: as Watcher.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/watch/watcher.h"

namespace amld::daemon {

// RESOURCE_EXHAUSTED (with the sysctl to raise) when the user is out of
// inotify instances.
absl::StatusOr<std::unique_ptr<Watcher>> NewInotifyWatcher();

// The kernel's limit on inotify watches per user, or -1 when unknown.
int64_t InotifyWatchLimit();

// What to do when AddWatch ran out of watches and `needed` more would do
// (0: unknown): the sysctl command, with a value that fits, and how to keep
// it. For the message that tells a user why something is degraded.
std::string WatchLimitFix(int64_t needed);

}  // namespace amld::daemon
