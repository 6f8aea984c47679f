// Snapshots: a source folder as a Merkle tree of canonical amld.v1.Directory
// nodes (directory_codec.h). The root Directory's digest is the snapshot's
// id. This header is the one to include: it declares the walk
// (BuildSnapshot, StoreSnapshot: snapshot_walk.cc) and brings in the codec,
// the tree queries (tree_queries.h) and Materialize (materialize.h).
//
// The walk records symlinks as links (never followed); a link whose target
// is absolute or climbs out of the root is refused, and so are names and
// trees the rules of snapshot_names.h refuse (not UTF-8, deeper than 256
// levels, ...). Other file types (sockets, fifos, devices) are skipped and
// reported.
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
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "amld/v1/common.pb.h"
#include "storage/cas.h"
#include "storage/digest.h"
#include "storage/ignore.h"
#include "storage/snapshot/directory_codec.h"
#include "storage/snapshot/materialize.h"
#include "storage/snapshot/tree_queries.h"

namespace amld::base {
struct FsIdentity;  // base/fs_identity.h
}

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
  // Files read (hashed, or stored with BuildOptions::store) rather than
  // answered by the cache.
  int64_t files_read = 0;
};

// How an IgnoreDecision names a rule no ignore file holds: always applied
// (`.git`, the daemon's sync cookies), or applied unless an ignore file's
// `!` rule keeps the path (a run's own folders, kRunOutputsFolder and
// kRunLogsFolder at the root).
inline constexpr std::string_view kBuiltinRuleSource = "(builtin)";
inline constexpr std::string_view kDefaultRuleSource = "(default)";
inline constexpr std::string_view kRunOutputsFolder = "outputs";
inline constexpr std::string_view kRunLogsFolder = "logs";

// Whether a snapshot leaves out `rel` ("a/b", relative to the root; `name`
// is its last part), and by which rule: the builtin ones, the default ones
// above, then `rules` (null: no ignore file is read). Every walk (the
// client's, the daemon's watched roots) decides through this, so their trees
// agree.
IgnoreDecision CheckLeftOut(const IgnoreRules* rules, std::string_view rel, std::string_view name,
                            bool is_dir);
// The decision as a person reads it, e.g. "ignored by src/.gitignore:3 (*.log)".
std::string WhyLeftOut(const IgnoreDecision& d);

// A cache of file digests keyed by what stat says, so an unchanged file is
// not read again. Implementations decide persistence.
class DigestCache {
 public:
  virtual ~DigestCache() = default;
  virtual std::optional<Digest> Lookup(const std::string& rel_path, const struct stat& st) = 0;
  virtual void Store(const std::string& rel_path, const struct stat& st, const Digest& d) = 0;
};

struct BuildOptions {
  // Honour .amlignore/.gitignore; the builtin and default rules of
  // CheckLeftOut apply either way.
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
  // Read the folder as this user (base/fs_identity.h: a root daemon reading a
  // caller's folder): every thread of the walk takes the identity, and each
  // file is opened with it; null: with the process's own. Must outlive the
  // call.
  const base::FsIdentity* read_as = nullptr;
  // Store each file read into this CAS in the same pass that hashes it
  // (ContentStore::PutOpenFile: a reflink where the file system can), and
  // read again a cache hit the store lacks; Snapshot::files then need not be
  // read again. The Directory blobs are left to StoreDirectories. Null: hash
  // only.
  ContentStore* store = nullptr;
  Durability store_durability = Durability::kDeferred;
};

// Walks `dir` and hashes it into a Snapshot, leaving out what CheckLeftOut
// says (`.git` and `.amld-cookie-*` even without use_ignore_files). Files are opened with
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
// Stores only the Directory blobs of `snapshot` (the root last): what is left
// after a BuildSnapshot with BuildOptions::store.
absl::Status StoreDirectories(const Snapshot& snapshot, ContentStore& cas,
                              Durability durability = Durability::kImmediate);

}  // namespace amld::storage
