// LocalIngest: the daemon snapshots a folder of a client on the same machine
// itself (Snapshots.IngestLocalFolder, proto/amld/v1/snapshots.proto), so the
// bytes are read once — walked, hashed on all cores and stored into the CAS
// in the same pass — instead of hashed by the client, streamed over the
// socket and hashed again here.
//
// Handing the folder over: gRPC carries no descriptors, so the client keeps
// its folder open (O_DIRECTORY) during the call and names the number; the
// daemon opens /proc/<pid>/fd/<n>, pid being the caller's as the kernel gave
// it for the connection (SO_PEERCRED). No path travels: client and daemon may
// see different mounts. Before opening, the daemon opens /proc/<pid> and
// checks that the process there belongs to the caller's uid (root's calls
// excepted); the descriptor is then opened through that /proc/<pid> handle,
// which fails rather than reach another process if the pid was reused. So a
// caller can only name a folder that one of its own processes holds open —
// one it could reach anyway. The descriptor must name a folder.
//
// Reading as the caller: a daemon running as root that serves another uid
// (system mode) takes the caller's filesystem identity (uid, gid, groups:
// base/fs_identity.h) on every thread that reads — the walk's threads, and
// around each open of a file — and writes the CAS with its own. A daemon not
// running as root reads as itself, which in user mode is the caller; it
// refuses (FAILED_PRECONDITION: the client uploads) a caller of another uid.
//
// The walk is BuildSnapshot (storage/snapshot/snapshot.h) with the client's
// rules, so the root digest is the one the client's walk and upload give. A
// stat cache (storage/snapshot/stat_cache.h) per caller and folder — keyed by
// uid, device and inode of the folder, under <data>/ingest-cache/, at most
// max_cached_folders files, the least recently used removed — makes a
// resubmit read only changed files; a cached digest the CAS no longer holds
// (a collection) is read again. Blobs are stored with deferred durability,
// as uploads are: SubmitRun syncs before recording a run.
//
// Automatic watches: the second ingest of a folder (by one uid, where the
// daemon reads as itself) hands it to options.on_repeated, which the
// Snapshots service wires to WatchedRoots::WatchAutomatically.
//
// Thread-safety: thread-safe. Ingests of one folder by one uid take turns
// (they share its stat cache); others run at once.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "amld/v1/snapshots.pb.h"
#include "base/file_util.h"
#include "base/fs_identity.h"
#include "storage/cas.h"

namespace amld::daemon {

// The process on the other end of a connection, as SO_PEERCRED gave it.
struct PeerProcess {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct LocalIngestOptions {
  // Where the per-folder stat caches live (created when missing); empty:
  // no stat cache (every file is read each time).
  std::filesystem::path cache_dir;
  size_t max_cached_folders = 64;
  // The daemon's snapshot limits (0: none); a request's own apply too.
  int64_t max_snapshot_bytes = 0;
  int64_t max_snapshot_files = 0;
  // Hashing threads; 0: one per core.
  int threads = 0;
  // Called with the folder's path (as this process sees it, checked to be
  // the same folder) the second time one uid's folder is ingested, unless
  // the request says no_auto_watch or the daemon reads as the caller (a
  // watched root is read with the daemon's rights). Returns whether the
  // folder is now watched. Null: never.
  std::function<absl::Status(const std::filesystem::path&)> on_repeated;
};

class LocalIngest {
 public:
  LocalIngest(amld::storage::ContentStore* cas, LocalIngestOptions options)
      : cas_(cas), options_(std::move(options)) {}

  // Snapshots the folder `peer` holds open as descriptor `request.dir_fd()`
  // into the CAS. Codes as Snapshots.IngestLocalFolder documents.
  absl::StatusOr<amld::v1::IngestLocalFolderResponse> Ingest(
      const PeerProcess& peer, const amld::v1::IngestLocalFolderRequest& request);

 private:
  void DropOldCaches();
  // Whether `key` was ingested before (remembers a bounded number).
  bool SeenBefore(const std::string& key);

  amld::storage::ContentStore* cas_;
  const LocalIngestOptions options_;
  // Ingests of one folder take turns: the folder's key picks one of these
  // (two folders may share one, and then wait for each other).
  static constexpr size_t kFolderLocks = 32;
  absl::Mutex folder_mu_[kFolderLocks];
  absl::Mutex seen_mu_;
  absl::flat_hash_set<std::string> seen_ ABSL_GUARDED_BY(seen_mu_);
};

// Opens the folder `peer` holds as descriptor `fd_number` (see the file
// comment), as `read_as` when not null. FAILED_PRECONDITION, saying why, when
// it cannot: the client then uploads.
absl::StatusOr<base::ScopedFd> OpenPeerFolder(const PeerProcess& peer, int fd_number,
                                              const base::FsIdentity* read_as);

}  // namespace amld::daemon
