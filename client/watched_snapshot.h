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

struct LocalIngestAnswer {
  // Set when the daemon read and stored the folder itself.
  std::optional<amld::v1::IngestLocalFolderResponse> snapshot;
  // Why it could not, for a note; empty when the daemon simply lacks the
  // call (an older daemon) or it was not asked (AMLD_NO_LOCAL_INGEST).
  std::string fallback_reason;
};

// Local ingest (daemon/watch/local_ingest.h): hands the daemon `dir` as a
// descriptor held open for the call, for it to read, hash and store. An
// answer without a snapshot means: walk and upload. Errors are the
// snapshot's own (what a walk here would report too: an unreadable file, a
// bad link, over the limits) and UNAVAILABLE. Not asked when the
// environment sets AMLD_NO_LOCAL_INGEST (to compare with an upload);
// AMLD_NO_AUTO_WATCH asks the daemon not to watch the folder however often
// it is submitted.
absl::StatusOr<LocalIngestAnswer> AskLocalIngest(const Connection& conn,
                                                 const std::filesystem::path& dir,
                                                 int64_t max_total_bytes, int64_t max_files);

}  // namespace amld::client
