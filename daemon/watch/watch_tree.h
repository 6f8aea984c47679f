// The in-memory tree of a watched root (watched_roots.h): one node per
// folder, with what stat said of each file when it was hashed. A change
// clears the cached digest of the nodes on its path only; ComputeDigest then
// re-encodes just those (storing each new Directory blob). Also the path
// helpers and naming rules the watched-roots files share.
//
// Internal to daemon/watch/.
//
// Thread-safety: thread-compatible; a root's work mutex guards its tree.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/cas.h"
#include "storage/digest.h"
#include "storage/file_stamp.h"
#include "storage/snapshot/snapshot.h"

namespace amld::daemon::watch_tree {

using amld::storage::Digest;
using amld::storage::FileStamp;

// Sync cookies (watched_roots.h): always left out of trees, client walks too.
inline constexpr char kCookiePrefix[] = ".amld-cookie-";

// What stat said about a file when it was hashed, and whether that may vouch
// for its digest in a later rescan.
struct FileEntry {
  Digest digest;
  bool executable = false;
  FileStamp stamp;
  uint64_t nlink = 1;
  // False when the file changed while read, or was too recent to trust
  // (storage/file_stamp.h): it could change again without its stamp
  // changing.
  bool trusted = false;
};

FileEntry EntryOf(const struct stat& st);

// One folder of a root's current tree. `digest` (with the totals) is cached
// and cleared along the path of every change.
struct DirNode {
  std::map<std::string, FileEntry> files;
  std::map<std::string, std::unique_ptr<DirNode>> dirs;
  std::map<std::string, std::string> links;  // name → target
  std::optional<Digest> digest;
  int64_t file_count = 0;
  int64_t total_bytes = 0;
};

// Paths are relative to the root, "/"-separated; "" is the root itself.
std::pair<std::string, std::string> SplitParent(const std::string& rel);
std::string Join(const std::string& dir, std::string_view name);
// `path` is `dir` or below it ("" is the root, above everything).
bool IsUnder(const std::string& path, const std::string& dir);
int Depth(const std::string& rel);
bool IsIgnoreFileName(std::string_view name);
// Names a walk would accept without further checks (printable ASCII); any
// other name goes through a walk of its folder, which applies the full rules
// (UTF-8, length) and fails the same way a client walk would.
bool IsPlainName(std::string_view name);

DirNode* FindDir(DirNode* root, const std::string& rel);
const FileEntry* FindFile(DirNode* root, const std::string& rel);
// Clears the cached digest of the root and of every folder down to rel_dir.
void InvalidatePath(DirNode* root, const std::string& rel_dir);
// Encodes the folders whose digest was cleared (children first), storing
// each new Directory blob.
absl::StatusOr<Digest> ComputeDigest(DirNode& n, amld::storage::ContentStore& cas);

void CollectDirs(const DirNode& n, const std::string& rel, std::vector<std::string>* out);
// (size, path) of every file.
void CollectFiles(const DirNode& n, const std::string& rel,
                  std::vector<std::pair<int64_t, std::string>>* out);
// Files with more than one name.
void CollectLinked(const DirNode& n, const std::string& rel, std::set<std::string>* out);
// Drops `rel` and every path below it.
void ForgetUnder(std::set<std::string>* paths, const std::string& rel);

// A DigestCache over a root's current tree, for walks: a file whose stamp
// still matches its trusted entry is not read again. It records what stat
// said of every file, so the new nodes keep it for the next walk.
class TreeCache final : public amld::storage::DigestCache {
 public:
  TreeCache(DirNode* tree, absl::Time walk_started) : tree_(tree), started_(walk_started) {}
  std::optional<Digest> Lookup(const std::string& rel_path, const struct stat& st) override;
  void Store(const std::string& rel_path, const struct stat& st, const Digest&) override;
  FileEntry Seen(const std::string& rel_path) const;

 private:
  DirNode* tree_;
  absl::Time started_;
  absl::flat_hash_map<std::string, FileEntry> seen_;
};

// The nodes of a walked (sub)tree rooted at `rel_dir`, from its Directory
// blobs; `seen` gives each file's entry (TreeCache::Seen).
absl::StatusOr<std::unique_ptr<DirNode>> NodeFromSnapshot(
    const amld::storage::Snapshot& snap, const Digest& digest, const std::string& rel_dir,
    const std::function<FileEntry(const std::string&)>& seen);

}  // namespace amld::daemon::watch_tree
