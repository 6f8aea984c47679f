#include "daemon/watch/watch_tree.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "amld/v1/snapshots.pb.h"
#include "base/status_macros.h"

namespace amld::daemon::watch_tree {

namespace pb = amld::v1;

FileEntry EntryOf(const struct stat& st) {
  FileEntry e;
  e.stamp = FileStamp::Of(st);
  e.nlink = static_cast<uint64_t>(st.st_nlink);
  return e;
}

std::pair<std::string, std::string> SplitParent(const std::string& rel) {
  const size_t slash = rel.rfind('/');
  if (slash == std::string::npos) return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

std::string Join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : absl::StrCat(dir, "/", std::string(name));
}

bool IsUnder(const std::string& path, const std::string& dir) {
  return dir.empty() || path == dir ||
         (path.size() > dir.size() && absl::StartsWith(path, dir) && path[dir.size()] == '/');
}

bool IsIgnoreFileName(std::string_view name) {
  return name == ".amlignore" || name == ".gitignore";
}

bool IsPlainName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

int Depth(const std::string& rel) {
  return rel.empty() ? 0 : static_cast<int>(std::count(rel.begin(), rel.end(), '/')) + 1;
}

DirNode* FindDir(DirNode* root, const std::string& rel) {
  DirNode* node = root;
  if (node == nullptr || rel.empty()) return node;
  for (absl::string_view part : absl::StrSplit(rel, '/')) {
    auto it = node->dirs.find(std::string(part));
    if (it == node->dirs.end()) return nullptr;
    node = it->second.get();
  }
  return node;
}

const FileEntry* FindFile(DirNode* root, const std::string& rel) {
  auto [parent_rel, name] = SplitParent(rel);
  DirNode* parent = FindDir(root, parent_rel);
  if (parent == nullptr) return nullptr;
  auto it = parent->files.find(name);
  return it == parent->files.end() ? nullptr : &it->second;
}

void InvalidatePath(DirNode* root, const std::string& rel_dir) {
  DirNode* node = root;
  if (node == nullptr) return;
  node->digest.reset();
  if (rel_dir.empty()) return;
  for (absl::string_view part : absl::StrSplit(rel_dir, '/')) {
    auto it = node->dirs.find(std::string(part));
    if (it == node->dirs.end()) return;
    node = it->second.get();
    node->digest.reset();
  }
}

absl::StatusOr<Digest> ComputeDigest(DirNode& n, amld::storage::ContentStore& cas) {
  if (n.digest) return *n.digest;
  pb::Directory dir;
  int64_t count = 0;
  int64_t bytes = 0;
  for (const auto& [name, f] : n.files) {
    pb::FileNode* node = dir.add_files();
    node->set_name(name);
    amld::storage::ToProto(f.digest, node->mutable_digest());
    node->set_is_executable(f.executable);
    ++count;
    bytes += f.digest.size;
  }
  for (auto& [name, child] : n.dirs) {
    AMLD_ASSIGN_OR_RETURN(Digest d, ComputeDigest(*child, cas));
    pb::DirectoryNode* node = dir.add_directories();
    node->set_name(name);
    amld::storage::ToProto(d, node->mutable_digest());
    count += child->file_count;
    bytes += child->total_bytes;
  }
  for (const auto& [name, target] : n.links) {
    pb::SymlinkNode* node = dir.add_symlinks();
    node->set_name(name);
    node->set_target(target);
  }
  const std::string encoded = amld::storage::EncodeDirectory(dir);
  Digest d = amld::storage::DigestOf(encoded);
  if (!cas.Contains(d)) {
    AMLD_RETURN_IF_ERROR(cas.PutVerified(d, encoded, amld::storage::Durability::kDeferred));
  }
  n.digest = d;
  n.file_count = count;
  n.total_bytes = bytes;
  return d;
}

void CollectDirs(const DirNode& n, const std::string& rel, std::vector<std::string>* out) {
  out->push_back(rel);
  for (const auto& [name, child] : n.dirs) CollectDirs(*child, Join(rel, name), out);
}

void CollectFiles(const DirNode& n, const std::string& rel,
                  std::vector<std::pair<int64_t, std::string>>* out) {
  for (const auto& [name, f] : n.files) out->emplace_back(f.digest.size, Join(rel, name));
  for (const auto& [name, child] : n.dirs) CollectFiles(*child, Join(rel, name), out);
}

void CollectLinked(const DirNode& n, const std::string& rel, std::set<std::string>* out) {
  for (const auto& [name, f] : n.files) {
    if (f.nlink > 1) out->insert(Join(rel, name));
  }
  for (const auto& [name, child] : n.dirs) CollectLinked(*child, Join(rel, name), out);
}

void ForgetUnder(std::set<std::string>* paths, const std::string& rel) {
  for (auto it = paths->lower_bound(rel); it != paths->end() && absl::StartsWith(*it, rel);) {
    it = IsUnder(*it, rel) ? paths->erase(it) : std::next(it);
  }
}

std::optional<Digest> TreeCache::Lookup(const std::string& rel_path, const struct stat& st) {
  FileEntry& seen = seen_[rel_path] = EntryOf(st);
  const FileEntry* old = FindFile(tree_, rel_path);
  if (old == nullptr || !old->trusted || old->stamp != seen.stamp) return std::nullopt;
  seen.trusted = true;
  return old->digest;
}

void TreeCache::Store(const std::string& rel_path, const struct stat& st, const Digest&) {
  FileEntry& seen = seen_[rel_path] = EntryOf(st);
  seen.trusted = seen.stamp.TrustedFor(started_);
}

FileEntry TreeCache::Seen(const std::string& rel_path) const {
  auto it = seen_.find(rel_path);
  return it == seen_.end() ? FileEntry() : it->second;
}

absl::StatusOr<std::unique_ptr<DirNode>> NodeFromSnapshot(
    const amld::storage::Snapshot& snap, const Digest& digest, const std::string& rel_dir,
    const std::function<FileEntry(const std::string&)>& seen) {
  auto node = std::make_unique<DirNode>();
  if (digest != Digest::Empty()) {
    auto blob = snap.directories.find(digest);
    if (blob == snap.directories.end()) {
      return absl::InternalError(
          absl::StrCat("walk of ", rel_dir, " lacks directory ", digest.ToString()));
    }
    AMLD_ASSIGN_OR_RETURN(pb::Directory dir,
                          amld::storage::DecodeDirectory(blob->second, Depth(rel_dir)));
    for (const pb::FileNode& f : dir.files()) {
      FileEntry e = seen(Join(rel_dir, f.name()));
      e.digest = amld::storage::FromProto(f.digest());
      e.executable = f.is_executable();
      node->file_count += 1;
      node->total_bytes += e.digest.size;
      node->files.emplace(f.name(), std::move(e));
    }
    for (const pb::DirectoryNode& d : dir.directories()) {
      AMLD_ASSIGN_OR_RETURN(auto child, NodeFromSnapshot(snap, amld::storage::FromProto(d.digest()),
                                                         Join(rel_dir, d.name()), seen));
      node->file_count += child->file_count;
      node->total_bytes += child->total_bytes;
      node->dirs.emplace(d.name(), std::move(child));
    }
    for (const pb::SymlinkNode& l : dir.symlinks()) node->links.emplace(l.name(), l.target());
  }
  node->digest = digest;
  return node;
}

}  // namespace amld::daemon::watch_tree
