// Shared by the walk (snapshot_walk.cc) and the hashing of what it found
// (snapshot_hash.cc); not part of the snapshot library's interface.
//
// Thread-safety: HashAll calls options.cache from the calling thread only.
#pragma once

#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/snapshot/snapshot.h"

namespace amld::storage::internal {

// A regular file the walk found, before it is read.
struct PendingFile {
  std::string rel_path;
  std::string abs_path;  // see SnapshotFile::abs_path
  struct stat st;
};

struct HashedFiles {
  std::vector<Digest> digests;  // one per file, in order
  int64_t files_read = 0;       // read (hashed, or stored) rather than found in the cache
};

// The digest of every file: from options.cache when stat matches, else read
// on options.threads threads. With options.store, each file read is stored
// as read (one pass), and a cache hit the store lacks is read and stored
// too. With options.read_as, every file is opened with that identity.
absl::StatusOr<HashedFiles> HashAll(const std::vector<PendingFile>& files,
                                    const BuildOptions& options);

}  // namespace amld::storage::internal
