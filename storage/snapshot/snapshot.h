// Snapshots: a source folder as a Merkle tree of canonical amld.v1.Directory
// nodes. The root Directory's digest is the snapshot's id.
//
// Canonical Directory: files, directories and symlinks each sorted by name
// (byte order), no name twice across the three lists, names never empty,
// ".", "..", or containing '/' or NUL; serialized with deterministic proto
// serialization. Two folders with the same content and modes give the same
// root digest, whatever order readdir returns. Symlinks are recorded as links
// (never followed); a link whose target is absolute or climbs out of the
// root is refused. `..` may only lead a link target ("../../lib/x"): after a
// name ("a/../b") it is refused, since `a` could itself be a link and `..`
// would climb from wherever that points. Only the execute bit of a file's
// mode is recorded. Other file types (sockets, fifos, devices) are skipped
// and reported. Names and link targets must be UTF-8 (proto3 strings);
// trees deeper than 256 levels are refused.
//
// Thread-safety: free functions; BuildSnapshot may use several threads
// internally. A ContentStore passed in must outlive the call.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "amld/v1/common.pb.h"
#include "storage/cas.h"
#include "storage/digest.h"
#include "storage/ignore.h"

namespace amld::storage {

// One regular file included in a snapshot.
struct SnapshotFile {
  std::string rel_path;  // "a/b.py"
  // Where it was read from. A string, not a path: a std::filesystem::path
  // parses itself into components when made, 5% of a 10,000-file walk.
  std::string abs_path;
  Digest digest;
  bool executable = false;
};

// One path left out, and why.
struct SkippedPath {
  std::string rel_path;
  bool is_dir = false;
  IgnoreDecision decision;  // decision.ignored == false for unsupported types
  std::string why;          // e.g. "ignored by src/.gitignore:3 (*.log)" or "fifo"
};

// A folder hashed into a tree; nothing is stored yet.
struct Snapshot {
  Digest root;
  // Serialized canonical Directory blobs, by digest (the root included).
  absl::flat_hash_map<Digest, std::string> directories;
  // Every included regular file, sorted by rel_path.
  std::vector<SnapshotFile> files;
  // Every excluded path (ignored directories are listed, not their content).
  std::vector<SkippedPath> skipped;
  int64_t total_file_bytes = 0;
};

// A cache of file digests keyed by what stat says, so an unchanged file is
// not read again. Implementations decide persistence.
class DigestCache {
 public:
  virtual ~DigestCache() = default;
  virtual std::optional<Digest> Lookup(const std::string& rel_path, const struct stat& st) = 0;
  virtual void Store(const std::string& rel_path, const struct stat& st, const Digest& d) = 0;
};

struct BuildOptions {
  // Honour .amlignore/.gitignore; `.git` is skipped either way.
  bool use_ignore_files = true;
  // Threads that list folders (at most 4) and hash files; 0: one per core.
  int threads = 0;
  // Optional stat → digest cache.
  DigestCache* cache = nullptr;
  // Limits; 0 means none. Going over fails with RESOURCE_EXHAUSTED listing
  // the largest files.
  int64_t max_total_bytes = 0;
  int64_t max_files = 0;
  // Ignore rules of `dir` to use instead of fresh ones (when
  // use_ignore_files); lets a caller that keeps rules across walks (the
  // daemon's watched roots) re-read only what changed. Must outlive the call.
  const IgnoreRules* rules = nullptr;
  // Walk only this folder of `dir` ("a/b"; empty: all of it), with the
  // rules and symlink checks that apply there in a walk of all of `dir`.
  // Paths in the result stay relative to `dir`; the root digest is the
  // subfolder's. INVALID_ARGUMENT for a bad path, NOT_FOUND when it is not
  // a folder (a symlink on the way is not followed).
  std::string subdir = {};
};

// Walks `dir` and hashes it into a Snapshot. `.git` and `.amld-cookie-*`
// (the daemon's sync cookies) are always left out. Files are opened with
// O_NOFOLLOW and hashed as read; a file that changes while being read is
// hashed but not put in the cache. The cache is only called from the calling
// thread. Errors: NOT_FOUND/INVALID_ARGUMENT for a bad `dir`, a bad link or
// name; PERMISSION_DENIED naming an unreadable file or folder;
// RESOURCE_EXHAUSTED over a limit, listing the 10 largest files.
absl::StatusOr<Snapshot> BuildSnapshot(const std::filesystem::path& dir,
                                       const BuildOptions& options = {});

// Stores every directory and file blob of `snapshot` in `cas` (files are
// read from their abs_path, and must still hash to their digest: ABORTED,
// take the snapshot again, when one changed). The root is stored last.
// `durability` as in ContentStore (kDeferred: the caller syncs later).
absl::Status StoreSnapshot(const Snapshot& snapshot, ContentStore& cas,
                           Durability durability = Durability::kImmediate);

// Canonical bytes of a Directory (it must already be sorted and unique).
std::string EncodeDirectory(const amld::v1::Directory& dir);
// Parses a Directory blob and checks it is canonical and safe: sorted,
// unique, valid names, safe symlink targets (`depth_from_root` is how many
// levels below the root it sits, for checking that `..` in a link target
// stays inside). INVALID_ARGUMENT otherwise.
absl::StatusOr<amld::v1::Directory> DecodeDirectory(std::string_view bytes,
                                                    int depth_from_root = 0);

// Every blob reachable from `root` that `cas` lacks (directories that are
// missing hide their children, which are then not listed). Empty when the
// whole tree is present. INVALID_ARGUMENT when a stored directory is bad.
absl::StatusOr<std::vector<Digest>> FindMissingInTree(const ContentStore& cas, const Digest& root);

// Folders known to be in a store with everything below them, each with the
// shallowest depth it was checked at (a folder whose links are safe at
// depth d is safe deeper).
using CompleteDirs = absl::flat_hash_map<Digest, int>;

// FindMissingInTree that skips the folders `known` holds (when met no
// shallower) and adds each folder it finds complete: a tree that shares
// most folders with one checked before costs reading its new folders only.
// `known` stays true only while nothing removes blobs (CAS garbage
// collection must clear it). Not thread-safe for `known`.
absl::StatusOr<std::vector<Digest>> FindMissingInTree(const ContentStore& cas, const Digest& root,
                                                      CompleteDirs* known);

// Every digest reachable from `root` (directories and files), for GC. A
// directory the store lacks is listed, but its children cannot be known;
// a corrupt or invalid directory is an error (DATA_LOSS, INVALID_ARGUMENT).
absl::Status CollectTreeDigests(const ContentStore& cas, const Digest& root,
                                absl::flat_hash_set<Digest>* out);

// The file node at `rel_path` in the tree, or NOT_FOUND (also when the path
// names a directory or symlink).
absl::StatusOr<amld::v1::FileNode> LookupFile(const ContentStore& cas, const Digest& root,
                                              std::string_view rel_path);

// Recreates the tree under `dest` (created if missing, must be empty):
// files with mode 0644/0755, symlinks as symlinks. The result never shares
// an inode with the CAS, so the run cannot alter stored objects: each file
// is a reflink (FICLONE) or a copy (copy_file_range, else read/write), never
// a hardlink. Every directory blob is decoded and checked at its depth before
// anything in it is created, and entries are created relative to folders
// this call made (O_EXCL, O_NOFOLLOW), so a bad tree cannot write outside
// `dest`. FAILED_PRECONDITION when `dest` is not empty; NOT_FOUND when a blob
// is missing. On error `dest` may hold part of the tree.
absl::Status Materialize(const ContentStore& cas, const Digest& root,
                         const std::filesystem::path& dest);

struct MaterializeOptions {
  // Threads creating and copying files (folders are made by the calling
  // thread first); 0 means one per core. Nothing is fsynced: a half-made
  // run folder is made again after a crash.
  int threads = 0;
};
absl::Status Materialize(const ContentStore& cas, const Digest& root,
                         const std::filesystem::path& dest, const MaterializeOptions& options);

}  // namespace amld::storage
