// The client's side of watched source roots (daemon/watch/watched_roots.h): one
// Snapshots.GetWatchedSnapshot call on every submit tells whether the daemon
// already holds the folder's current tree, so the client neither walks nor
// uploads it. A folder the daemon does not watch costs one round trip.
//
// Thread-safety: free functions, thread-safe.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "amld/v1/snapshots.pb.h"
#include "client/connection.h"

namespace amld::client {

struct WatchedSnapshotAnswer {
  // Set when the daemon served the snapshot: use it as it is.
  std::optional<amld::v1::GetWatchedSnapshotResponse> snapshot;
  // When the daemon watches the folder but cannot serve it (degraded, in
  // error, cookie timeout): why, for a note to the user. Empty when the
  // folder is simply not watched (or the daemon has no Snapshots service).
  std::string fallback_reason;
};

// Asks for the snapshot of `dir` (absolute, symlinks resolved: the daemon
// matches registered roots exactly). Errors only when walking on the client
// would not help: RESOURCE_EXHAUSTED (over the daemon's limits, the message
// lists the largest files) and UNAVAILABLE (the daemon went away).
absl::StatusOr<WatchedSnapshotAnswer> AskWatchedSnapshot(const Connection& conn,
                                                         const std::filesystem::path& dir);

}  // namespace amld::client
