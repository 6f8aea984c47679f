// The parts of ContentStore (storage/cas.h) that its two halves share:
// cas.cc (open, lookup, put, read, verify, GC) and cas_upload.cc (resumable
// and private uploads). Not an interface: only storage/cas*.cc include it,
// and its names may change with them. The on-disk layout it encodes is
// described at the top of storage/cas.h.
//
// Thread-safety: the functions are thread-safe (they touch only the files
// they are given); PendingSyncs is thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/cas.h"
#include "storage/digest.h"

namespace amld::storage::internal {

// Socket, pipe and disk copies need 64-128 KiB buffers to run at full speed.
inline constexpr size_t kCopyBufferSize = 128 * 1024;

// The objects stored with Durability::kDeferred and not yet synced.
class PendingSyncs {
 public:
  void Add(std::filesystem::path object);
  int64_t Count() const;
  // See ContentStore::SyncPending.
  absl::Status SyncAll(const std::filesystem::path& root);

 private:
  // From this many objects on, one syncfs() beats an fsync per object (and
  // per folder); below it, fsyncs do not flush other programs' writes.
  static constexpr size_t kSyncfsAtCount = 64;
  // Objects listed at most; a longer run of unsynced writes (a watched root
  // edited for days without a submit) forgets them and syncs the filesystem.
  static constexpr size_t kMaxListed = 100000;

  static absl::Status SyncFilesystem(const std::filesystem::path& root);
  static absl::Status SyncEach(const std::vector<std::filesystem::path>& objects);

  absl::Mutex sync_mu_;
  mutable absl::Mutex mu_;
  std::vector<std::filesystem::path> objects_ ABSL_GUARDED_BY(mu_);
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
};

// Where a write of `durability` lists its object: nowhere (null) when it is
// fsynced on the spot.
std::shared_ptr<PendingSyncs> PendingFor(Durability durability,
                                         const std::shared_ptr<PendingSyncs>& pending);

// The folders of the layout under `root`.
std::filesystem::path ObjectsDir(const std::filesystem::path& root);
std::filesystem::path TmpDir(const std::filesystem::path& root);
std::filesystem::path UploadsDir(const std::filesystem::path& root);

// The object file of `d`; objects/invalid for a malformed digest.
std::filesystem::path ObjectPathIn(const std::filesystem::path& root, const Digest& d);

// A new name in tmp/, unique among processes (pid) and calls (counter);
// create it with O_EXCL, which guards the rest.
std::filesystem::path UniqueTempPath(const std::filesystem::path& root, std::string_view kind);

// Whether `path` still names the file open as `fd`: a concurrent commit or
// discard may have renamed or unlinked it between our open() and flock().
bool StillNamedBy(int fd, const std::filesystem::path& path);

// Feeds bytes [0, size) of `fd` to `hasher`; returns how many it could read
// (fewer than `size` when the file is shorter).
absl::StatusOr<int64_t> HashPrefix(int fd, int64_t size, const std::filesystem::path& path,
                                   Sha256& hasher);

// Makes the verified file at `from` (open as `fd`) the object of `d`: fsync,
// read-only, rename into its shard, fsync the shard so the rename is durable.
// With `pending` (Durability::kDeferred) the fsyncs are left to
// PendingSyncs::SyncAll; writeback starts now so that the sync finds little
// left to write.
absl::Status InstallObject(const std::filesystem::path& root, int fd,
                           const std::filesystem::path& from, const Digest& d,
                           PendingSyncs* pending);

}  // namespace amld::storage::internal
