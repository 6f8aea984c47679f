// Materialize: a snapshot tree recreated as a folder (a run's source).
//
// Files get mode 0644/0755, symlinks stay symlinks. The result never shares
// an inode with the CAS, so the run cannot alter stored objects: each file
// is a reflink (FICLONE) or a copy (copy_file_range, else read/write), never
// a hardlink. Every directory blob is decoded and checked at its depth before
// anything in it is created, and entries are created relative to folders
// this call made (O_EXCL, O_NOFOLLOW), so a bad tree cannot write outside
// the destination.
//
// Thread-safety: free functions; each call may use several threads
// internally. Concurrent calls are safe (into different destinations).
#pragma once

#include <filesystem>

#include "absl/status/status.h"
#include "storage/cas.h"
#include "storage/digest.h"

namespace amld::storage {

struct MaterializeOptions {
  // Threads creating and copying files (folders are made by the calling
  // thread first); 0 means one per core. Nothing is fsynced: a half-made
  // run folder is made again after a crash.
  int threads = 0;
};

// Recreates the tree under `dest` (created if missing, must be empty).
// FAILED_PRECONDITION when `dest` is not empty; NOT_FOUND when a blob is
// missing. On error `dest` may hold part of the tree.
absl::Status Materialize(const ContentStore& cas, const Digest& root,
                         const std::filesystem::path& dest);
absl::Status Materialize(const ContentStore& cas, const Digest& root,
                         const std::filesystem::path& dest, const MaterializeOptions& options);

}  // namespace amld::storage
