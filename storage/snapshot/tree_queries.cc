#include "storage/snapshot/tree_queries.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/snapshot/directory_codec.h"
#include "storage/snapshot/snapshot_names.h"

namespace amld::storage {
namespace {

using amld::v1::Directory;
using snapshot_names::kMaxTreeDepth;
using snapshot_names::Quote;
using snapshot_names::SplitRelPath;

// Visits every directory reachable from root once, breadth first, so each
// is first decoded at its shallowest depth (the strictest check of `..` in
// its links). `on_dir` hears of each directory and whether the store has it;
// the children of one it lacks stay unknown.
absl::Status VisitTree(const ContentStore& cas, const Digest& root,
                       const std::function<void(const Digest&, bool present)>& on_dir,
                       const std::function<void(const amld::v1::FileNode&)>& on_file) {
  absl::flat_hash_set<Digest> seen{root};
  std::deque<std::pair<Digest, int>> queue{{root, 0}};
  while (!queue.empty()) {
    auto [digest, depth] = queue.front();
    queue.pop_front();
    if (!cas.Contains(digest)) {
      on_dir(digest, false);
      continue;
    }
    absl::StatusOr<Directory> dir = ReadDirectory(cas, digest, depth);
    if (absl::IsNotFound(dir.status())) {  // removed since Contains()
      on_dir(digest, false);
      continue;
    }
    if (!dir.ok()) return dir.status();
    on_dir(digest, true);
    for (const amld::v1::FileNode& f : dir->files()) on_file(f);
    for (const amld::v1::DirectoryNode& child : dir->directories()) {
      Digest cd = FromProto(child.digest());
      if (depth + 1 > kMaxTreeDepth) {
        return absl::InvalidArgumentError(absl::StrCat(
            "snapshot ", root.ToString(), " nests deeper than ", kMaxTreeDepth, " levels"));
      }
      if (seen.insert(cd).second) queue.emplace_back(cd, depth + 1);
    }
  }
  return absl::OkStatus();
}

template <typename Nodes>
auto FindByName(const Nodes& nodes, const std::string& name) {
  auto it =
      std::lower_bound(nodes.begin(), nodes.end(), name,
                       [](const auto& node, const std::string& n) { return node.name() < n; });
  return (it != nodes.end() && it->name() == name) ? &*it : nullptr;
}

}  // namespace

absl::StatusOr<std::vector<Digest>> FindMissingInTree(const ContentStore& cas, const Digest& root) {
  AMLD_RETURN_IF_ERROR(ValidateSnapshotRoot(root));
  std::vector<Digest> missing;
  std::vector<Digest> files;
  absl::flat_hash_set<Digest> files_seen;
  AMLD_RETURN_IF_ERROR(VisitTree(
      cas, root,
      [&](const Digest& d, bool present) {
        if (!present) missing.push_back(d);
      },
      [&](const amld::v1::FileNode& f) {
        Digest d = FromProto(f.digest());
        if (files_seen.insert(d).second) files.push_back(std::move(d));
      }));
  absl::flat_hash_set<Digest> listed(missing.begin(), missing.end());
  for (Digest& d : cas.FindMissing(files)) {
    if (listed.insert(d).second) missing.push_back(std::move(d));
  }
  return missing;
}

namespace {

// Depth-first, so that a folder is complete only once everything below it
// is; a folder met again at a shallower depth is decoded again there (the
// stricter check of `..` in its links).
class MissingFinder {
 public:
  MissingFinder(const ContentStore& cas, CompleteDirs* known) : cas_(cas), known_(known) {}

  absl::StatusOr<bool> Dir(const Digest& d, int depth) {
    if (auto it = known_->find(d); it != known_->end() && it->second <= depth) return true;
    if (auto it = memo_.find(d); it != memo_.end() && it->second.first <= depth) {
      return it->second.second;
    }
    if (depth > kMaxTreeDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("snapshot nests deeper than ", kMaxTreeDepth, " levels"));
    }
    absl::StatusOr<Directory> dir =
        cas_.Contains(d) ? ReadDirectory(cas_, d, depth) : absl::NotFoundError("absent");
    if (absl::IsNotFound(dir.status())) {
      Missing(d);
      memo_[d] = {depth, false};
      return false;
    }
    if (!dir.ok()) return dir.status();
    std::vector<Digest> files;
    for (const amld::v1::FileNode& f : dir->files()) files.push_back(FromProto(f.digest()));
    bool complete = true;
    for (Digest& m : cas_.FindMissing(files)) {
      complete = false;
      Missing(m);
    }
    for (const amld::v1::DirectoryNode& sub : dir->directories()) {
      AMLD_ASSIGN_OR_RETURN(bool below, Dir(FromProto(sub.digest()), depth + 1));
      complete = complete && below;
    }
    memo_[d] = {depth, complete};
    if (complete) {
      auto [it, fresh] = known_->emplace(d, depth);
      if (!fresh) it->second = std::min(it->second, depth);
    }
    return complete;
  }

  std::vector<Digest> TakeMissing() { return std::move(missing_); }

 private:
  void Missing(const Digest& d) {
    if (listed_.insert(d).second) missing_.push_back(d);
  }

  const ContentStore& cas_;
  CompleteDirs* known_;
  absl::flat_hash_map<Digest, std::pair<int, bool>> memo_;
  absl::flat_hash_set<Digest> listed_;
  std::vector<Digest> missing_;
};

}  // namespace

absl::StatusOr<std::vector<Digest>> FindMissingInTree(const ContentStore& cas, const Digest& root,
                                                      CompleteDirs* known) {
  AMLD_RETURN_IF_ERROR(ValidateSnapshotRoot(root));
  MissingFinder finder(cas, known);
  AMLD_RETURN_IF_ERROR(finder.Dir(root, 0).status());
  return finder.TakeMissing();
}

absl::Status CollectTreeDigests(const ContentStore& cas, const Digest& root,
                                absl::flat_hash_set<Digest>* out) {
  AMLD_RETURN_IF_ERROR(ValidateSnapshotRoot(root));
  return VisitTree(
      cas, root, [&](const Digest& d, bool) { out->insert(d); },
      [&](const amld::v1::FileNode& f) { out->insert(FromProto(f.digest())); });
}

absl::StatusOr<amld::v1::FileNode> LookupFile(const ContentStore& cas, const Digest& root,
                                              std::string_view rel_path) {
  AMLD_RETURN_IF_ERROR(ValidateSnapshotRoot(root));
  AMLD_ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitRelPath(rel_path));
  Digest current = root;
  for (size_t i = 0; i < parts.size(); ++i) {
    AMLD_ASSIGN_OR_RETURN(Directory dir, ReadDirectory(cas, current, static_cast<int>(i)));
    if (i + 1 == parts.size()) {
      if (const auto* f = FindByName(dir.files(), parts[i])) return *f;
      break;
    }
    const auto* sub = FindByName(dir.directories(), parts[i]);
    if (sub == nullptr) break;
    current = FromProto(sub->digest());
  }
  return absl::NotFoundError(
      absl::StrCat("snapshot ", root.ToString(), " has no file ", Quote(rel_path)));
}

}  // namespace amld::storage
