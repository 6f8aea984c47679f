// StatCache: a persistent DigestCache (snapshot.h). It remembers, per file
// of one source root, what stat said (size, mtime and ctime in nanoseconds,
// inode, mode) and the digest read then, so that a resubmit of an unchanged
// tree costs a stat per file instead of a read. A file counts as unchanged
// only when every one of those fields matches.
//
// Trust: the cache file is never trusted beyond its checksum. A file that is
// missing, unreadable, truncated, of another format version or whose
// checksum does not match loads as an empty cache (load_problem() says why),
// and the next Save() replaces it.
//
// Racy files: Save() leaves out every file too recent to trust by the one
// rule of storage/file_stamp.h (mtime or ctime within kRacyWindow of the
// moment the walk started): those are hashed again next time.
//
// The uploaded tree: the folders (Directory digests) of the snapshot last
// uploaded from this root, and the daemon that then held all of them (its
// identity changes when it restarts). The next upload to that daemon does
// not ask about those folders or anything below them (client/
// snapshot_uploader.h): an unchanged subtree costs nothing. A daemon that
// lost blobs anyway refuses the submit (FAILED_PRECONDITION, missing
// blobs) and `aml run submit` uploads again asking about everything.
//
// File format (little-endian, host order is assumed to be little-endian as
// on every platform amld builds for):
//   "AMLDSTC2"  magic and version
//   u64         entry count
//   entries     u32 path length, path bytes, i64 size, i64 mtime_ns,
//               i64 ctime_ns, u64 inode, u32 st_mode, 32 raw SHA-256 bytes
//   u32, bytes  the daemon identity of the uploaded tree (may be empty)
//   u64         folder count, then per folder 32 raw SHA-256 bytes, i64 size
//   trailer     32 raw bytes: SHA-256 of everything before it
// Written to a temp file beside it and renamed (mode 0600), not fsynced: a
// file cut short by a crash fails its checksum and is ignored. Not written
// at all when it would hold what it already holds.
//
// Thread-safety: thread-compatible. BuildSnapshot calls a cache from one
// thread only.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "storage/digest.h"
#include "storage/file_stamp.h"
#include "storage/snapshot/snapshot.h"

namespace amld::storage {

class StatCache final : public DigestCache {
 public:
  StatCache() = default;

  // Reads `file`; never fails (see the file comment).
  static StatCache Load(const std::filesystem::path& file);

  std::optional<Digest> Lookup(const std::string& rel_path, const struct stat& st) override;
  void Store(const std::string& rel_path, const struct stat& st, const Digest& d) override;

  // Writes the entries that a Lookup hit or a Store touched since Load
  // (files no longer in the tree are dropped), except those too recent to
  // trust for a walk begun at `walk_started` (file_stamp.h). Creates the
  // folder (0700) when missing. Skipped when nothing changed since Load.
  absl::Status Save(const std::filesystem::path& file, absl::Time walk_started) const;

  // See "The uploaded tree" above. UploadedTree is null unless the tree was
  // recorded for `daemon_id`.
  void SetUploadedTree(std::string daemon_id, absl::flat_hash_set<Digest> dirs);
  const absl::flat_hash_set<Digest>* UploadedTree(const std::string& daemon_id) const;

  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  size_t size() const { return entries_.size(); }
  // Empty when the file loaded cleanly or did not exist.
  const std::string& load_problem() const { return load_problem_; }

 private:
  struct Entry {
    // Without the device: the file keeps none, since some file systems
    // number their device anew at each mount.
    FileStamp stamp;
    std::string hash_bytes;  // 32 raw bytes
    bool touched = false;    // hit or stored in this session
  };
  static FileStamp StampOf(const struct stat& st);

  absl::flat_hash_map<std::string, Entry> entries_;
  size_t loaded_ = 0;          // entries read by Load
  size_t loaded_touched_ = 0;  // of those, how many a Lookup hit
  bool changed_ = false;       // a Store or a new uploaded tree since Load
  std::string uploaded_daemon_;
  absl::flat_hash_set<Digest> uploaded_dirs_;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
  std::string load_problem_;
};

// $XDG_CACHE_HOME/amld, else $HOME/.cache/amld.
std::filesystem::path DefaultStatCacheDir();

// The cache file of one source root: <dir>/stat-<first 32 hex of the
// SHA-256 of the root's absolute path>.bin, so each root has its own file.
std::filesystem::path StatCacheFileFor(const std::filesystem::path& cache_dir,
                                       const std::filesystem::path& source_root);

}  // namespace amld::storage
