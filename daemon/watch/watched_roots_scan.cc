// WatchedRoots (watched_roots.h): pending changes → the root's tree. Stats
// each changed path, hashes and stores a changed file, walks a new or
// re-ruled folder, keeps a watch on every folder of the tree, and
// publishes the new digest.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/human_bytes.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "daemon/watch/inotify.h"
#include "daemon/watch/watched_roots_internal.h"
#include "spdlog/spdlog.h"
#include "storage/snapshot/snapshot.h"

namespace amld::daemon {

namespace fs = std::filesystem;
using namespace watch_tree;  // NOLINT: the tree's helpers, internal

namespace {

// Walks of one folder, each after adding the watches the previous one found
// missing; a folder still growing new subfolders after that is walked again
// later.
constexpr int kMaxScanPasses = 4;
constexpr size_t kLargestFilesListed = 10;

// A watch on the folder `dir` itself (never a link to one), taken as
// `read_as` (inotify_add_watch checks read permission with the thread's
// fsuid). NOT_FOUND when it is gone or no folder.
absl::StatusOr<int> WatchFolder(Watcher& watcher, const fs::path& dir,
                                const amld::base::FsIdentity* read_as) {
  AMLD_ASSIGN_OR_RETURN(amld::base::ScopedFsIdentity as,
                        amld::base::ScopedFsIdentity::Take(read_as));
  amld::base::ScopedFd fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
      return absl::NotFoundError(absl::StrCat(dir.string(), " is not a folder"));
    }
    return amld::base::ErrnoStatus(errno, "open", dir);
  }
  return watcher.AddWatch(fd.get(), WatchKind::kFolder);
}

}  // namespace

WatchedRoots::ProcessResult WatchedRoots::Process(Root& r) {
  absl::MutexLock work(&r.work_mu);
  Pending p;
  {
    absl::MutexLock lock(&mu_);
    if (r.removed) {
      ProcessResult gone;
      gone.status = absl::NotFoundError("the root is no longer watched");
      return gone;
    }
    p = std::exchange(r.pending, Pending());
    settle_.Take(r.path.string());
  }
  if (r.tree != nullptr) {
    absl::StatusOr<amld::base::ScopedFsIdentity> as = r.ReadAs();
    for (const std::string& rel : r.linked) {
      struct stat st;
      const FileEntry* e = FindFile(r.tree.get(), rel);
      if (e == nullptr || ::lstat((r.path / rel).c_str(), &st) != 0 ||
          e->stamp != FileStamp::Of(st)) {
        p.paths.insert(rel);
      }
    }
  }
  ProcessResult out;
  bool incremental = false;
  if (!p.full_rescan.empty() || r.tree == nullptr) {
    out.status = FullScan(r, p.full_rescan.empty() ? "initial scan" : p.full_rescan);
    out.rescanned = true;
  } else if (!p.empty()) {
    out.applied = static_cast<int64_t>(p.size());
    out.status = ApplyChanges(r, p);
    incremental = true;
  }
  if (!out.status.ok()) {
    if (deps_.log) deps_.log->warn("watched root {}: {}", r.path.string(), out.status.ToString());
    absl::MutexLock lock(&mu_);
    r.error = std::string(out.status.message());
    r.scanning = false;
    // Retried in full at the next change, or the next Sync or WatchRoot.
    r.pending.full_rescan = "retry after an error";
    return out;
  }
  if (out.rescanned || incremental) Publish(r, incremental);
  if (r.tree != nullptr && r.tree->digest) {
    out.digest = *r.tree->digest;
    out.file_count = r.tree->file_count;
    out.total_bytes = r.tree->total_bytes;
  }
  return out;
}

void WatchedRoots::Publish(Root& r, bool changed) {
  std::string problem;
  if (r.tree != nullptr) {
    absl::StatusOr<Digest> d = ComputeDigest(*r.tree, *deps_.cas);
    if (!d.ok()) problem = absl::StrCat("cannot store the tree: ", d.status().message());
    // The files and folders came in with deferred durability (one sync for
    // a whole scan): make them durable here, on the worker, so that a submit
    // of the tree finds nothing left to sync. A sync inside SubmitRun waits
    // for whatever else is dirty on the filesystem (ext4's ordered mode: a
    // run dir just materialized), 0.1-0.5 s here.
    absl::Status synced = d.ok() ? deps_.cas->SyncPending() : absl::OkStatus();
    if (!synced.ok()) problem = absl::StrCat("cannot store the tree: ", synced.message());
  }
  std::string over = problem.empty() ? LimitProblem(r) : "";
  absl::MutexLock lock(&mu_);
  r.scanning = false;
  r.over_limit = std::move(over);
  if (!problem.empty()) {
    r.error = std::move(problem);
    r.pending.full_rescan = "retry after an error";
    return;
  }
  r.error.clear();
  if (r.tree != nullptr && r.tree->digest) {
    r.digest = *r.tree->digest;
    r.file_count = r.tree->file_count;
    r.total_bytes = r.tree->total_bytes;
  }
  if (changed) r.last_change = deps_.clock->Now();
}

std::string WatchedRoots::LimitProblem(Root& r) {
  if (r.tree == nullptr || !r.tree->digest) return "";
  const int64_t files = r.tree->file_count;
  const int64_t bytes = r.tree->total_bytes;
  std::string over;
  if (options_.max_snapshot_files > 0 && files > options_.max_snapshot_files) {
    over = absl::StrCat(files, " files, over the limit of ", options_.max_snapshot_files, " files");
  } else if (options_.max_snapshot_bytes > 0 && bytes > options_.max_snapshot_bytes) {
    over = absl::StrCat(base::HumanBytes(bytes), " (", bytes, " bytes), over the limit of ",
                        base::HumanBytes(options_.max_snapshot_bytes), " (", options_.max_snapshot_bytes,
                        " bytes)");
  } else {
    return "";
  }
  std::vector<std::pair<int64_t, std::string>> all;
  CollectFiles(*r.tree, "", &all);
  const size_t listed = std::min(kLargestFilesListed, all.size());
  std::partial_sort(all.begin(), all.begin() + listed, all.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::string out =
      absl::StrCat("snapshot of ", r.path.string(), " holds ", over,
                   ". List what the run does not need in .amlignore, or raise amld's limit "
                   "(--max-snapshot-files, --max-snapshot-bytes). Largest files:");
  for (size_t i = 0; i < listed; ++i) {
    absl::StrAppend(&out, "\n  ", all[i].second, "  ", base::HumanBytes(all[i].first), " (", all[i].first,
                    " bytes)");
  }
  return out;
}

absl::Status WatchedRoots::FullScan(Root& r, const std::string& reason) {
  {
    AMLD_ASSIGN_OR_RETURN(amld::base::ScopedFsIdentity as, r.ReadAs());
    std::error_code ec;
    if (!fs::is_directory(r.path, ec)) {
      return absl::NotFoundError(absl::StrCat(r.path.string(),
                                              " no longer exists or is not a folder; unwatch it "
                                              "(aml snapshot unwatch) or create it again"));
    }
    r.rules = std::make_unique<amld::storage::IgnoreRules>(r.path);
  }
  AMLD_RETURN_IF_ERROR(ScanSubtree(r, "", /*apply_limits=*/true));
  absl::MutexLock lock(&mu_);
  ++r.rescans;
  r.last_rescan_reason = reason;
  r.last_rescan_time = deps_.clock->Now();
  if (deps_.log) {
    deps_.log->info("watched root {}: full scan ({}), {} folders watched", r.path.string(), reason,
                    r.watch_of_dir.size());
  }
  return absl::OkStatus();
}

absl::Status WatchedRoots::ScanSubtree(Root& r, const std::string& rel_dir, bool apply_limits) {
  for (int pass = 0; pass < kMaxScanPasses; ++pass) {
    TreeCache cache(r.tree.get(), absl::Now());
    amld::storage::BuildOptions o;
    o.rules = r.rules.get();
    o.subdir = rel_dir;
    o.cache = &cache;
    o.threads = options_.hash_threads;
    if (apply_limits) {
      o.max_total_bytes = options_.max_snapshot_bytes;
      o.max_files = options_.max_snapshot_files;
    }
    if (r.read_as) {
      // Read as the owner, each file stored as it is read (the CAS written
      // as the daemon): StoreSnapshot would open them again as the daemon.
      o.read_as = &*r.read_as;
      o.store = deps_.cas;
      o.store_durability = amld::storage::Durability::kDeferred;
    }
    absl::StatusOr<amld::storage::Snapshot> snap = amld::storage::BuildSnapshot(r.path, o);
    if (!snap.ok()) {
      if (!rel_dir.empty() && absl::IsNotFound(snap.status())) {
        RemoveEntry(r, rel_dir);  // removed meanwhile
        return absl::OkStatus();
      }
      return snap.status();
    }
    absl::Status stored =
        r.read_as ? amld::storage::StoreDirectories(*snap, *deps_.cas,
                                                    amld::storage::Durability::kDeferred)
                  : amld::storage::StoreSnapshot(*snap, *deps_.cas,
                                                 amld::storage::Durability::kDeferred);
    if (absl::IsAborted(stored)) continue;  // a file changed under us: walk again
    AMLD_RETURN_IF_ERROR(stored);
    AMLD_ASSIGN_OR_RETURN(
        std::unique_ptr<DirNode> node,
        NodeFromSnapshot(*snap, snap->root, rel_dir,
                         [&cache](const std::string& rel) { return cache.Seen(rel); }));
    ForgetUnder(&r.linked, rel_dir);
    CollectLinked(*node, rel_dir, &r.linked);
    if (rel_dir.empty()) {
      r.tree = std::move(node);
    } else {
      auto [parent_rel, name] = SplitParent(rel_dir);
      DirNode* parent = FindDir(r.tree.get(), parent_rel);
      if (parent == nullptr) return absl::OkStatus();  // its parent went away meanwhile
      parent->files.erase(name);
      parent->links.erase(name);
      parent->dirs[name] = std::move(node);
      InvalidatePath(r.tree.get(), parent_rel);
    }
    absl::StatusOr<bool> added = SyncWatches(r, rel_dir);
    if (!added.ok()) {
      if (!absl::IsResourceExhausted(added.status())) return added.status();
      SetDegraded(r, added.status());
      return absl::OkStatus();
    }
    // A folder watched only now may have changed before its watch existed:
    // the next pass (stats only, for what did not change) sees that.
    if (!*added) return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  r.pending.rescan_dirs.insert(rel_dir);
  MarkPathLocked(r, rel_dir);
  return absl::OkStatus();
}

absl::StatusOr<bool> WatchedRoots::SyncWatches(Root& r, const std::string& rel_dir) {
  std::vector<std::string> desired;
  if (DirNode* node = FindDir(r.tree.get(), rel_dir)) CollectDirs(*node, rel_dir, &desired);
  absl::flat_hash_set<std::string> wanted(desired.begin(), desired.end());
  absl::MutexLock lock(&mu_);
  if (r.removed || stopping_ || watcher_ == nullptr) return false;
  std::vector<std::string> gone;
  for (const auto& [dir, id] : r.watch_of_dir) {
    if (IsUnder(dir, rel_dir) && !wanted.contains(dir)) gone.push_back(dir);
  }
  for (const std::string& dir : gone) DropWatchLocked(r, dir);
  bool added = false;
  for (const std::string& d : desired) {
    if (r.watch_of_dir.contains(d)) continue;
    absl::StatusOr<int> id =
        WatchFolder(*watcher_, d.empty() ? r.path : r.path / d, r.read_as ? &*r.read_as : nullptr);
    if (!id.ok()) {
      if (absl::IsNotFound(id.status())) continue;  // removed meanwhile; its parent tells
      return id.status();
    }
    // A folder moved inside the tree keeps its inode and so its watch.
    auto prev = watches_.find(*id);
    if (prev != watches_.end()) prev->second.root->watch_of_dir.erase(prev->second.rel_dir);
    retired_watches_.erase(*id);
    watches_[*id] = WatchTarget{&r, d};
    r.watch_of_dir[d] = *id;
    added = true;
  }
  return added;
}

void WatchedRoots::SetDegraded(Root& r, const absl::Status& why) {
  std::vector<std::string> dirs;
  if (r.tree != nullptr) CollectDirs(*r.tree, "", &dirs);
  const int64_t needed = static_cast<int64_t>(dirs.size());
  const std::string fix = WatchLimitFix(needed);
  absl::MutexLock lock(&mu_);
  DropWatchesLocked(r, "");
  r.degraded = absl::StrCat(std::string(why.message()), "; this folder needs ", needed,
                            " watches. To fix it, ", fix, ", then run `aml snapshot watch ",
                            r.path.string(),
                            "` again. Until then submits of this folder walk it on the client");
  if (deps_.log) deps_.log->warn("watched root {} degraded: {}", r.path.string(), r.degraded);
}

absl::Status WatchedRoots::ApplyChanges(Root& r, Pending& p) {
  if (p.rules_changed) {
    AMLD_ASSIGN_OR_RETURN(amld::base::ScopedFsIdentity as, r.ReadAs());
    r.rules = std::make_unique<amld::storage::IgnoreRules>(r.path);
  }
  std::vector<std::string> paths(p.paths.begin(), p.paths.end());
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> rescan(p.rescan_dirs.begin(), p.rescan_dirs.end());
  for (const std::string& rel : paths) AMLD_RETURN_IF_ERROR(ApplyPath(r, rel, &rescan));
  // Walk only the outermost folders; ancestors sort first by depth.
  std::sort(rescan.begin(), rescan.end(), [](const std::string& a, const std::string& b) {
    const int da = Depth(a), db = Depth(b);
    return da != db ? da < db : a < b;
  });
  std::vector<std::string> outer;
  for (const std::string& d : rescan) {
    bool covered = std::any_of(outer.begin(), outer.end(),
                               [&](const std::string& o) { return IsUnder(d, o); });
    if (!covered) outer.push_back(d);
  }
  for (const std::string& d : outer) {
    if (!d.empty()) {
      struct stat st;
      auto [parent_rel, name] = SplitParent(d);
      if (FindDir(r.tree.get(), parent_rel) == nullptr) continue;
      int found = -1;
      {
        AMLD_ASSIGN_OR_RETURN(amld::base::ScopedFsIdentity as, r.ReadAs());
        found = ::lstat((r.path / d).c_str(), &st);
      }
      if (found != 0 || !S_ISDIR(st.st_mode) ||
          amld::storage::CheckLeftOut(r.rules.get(), d, name, true).ignored) {
        RemoveEntry(r, d);
        continue;
      }
    }
    AMLD_RETURN_IF_ERROR(ScanSubtree(r, d, /*apply_limits=*/false));
  }
  return absl::OkStatus();
}

absl::Status WatchedRoots::ApplyPath(Root& r, const std::string& rel,
                                     std::vector<std::string>* rescan_dirs) {
  if (rel.empty()) return absl::OkStatus();  // the root itself
  auto [parent_rel, name] = SplitParent(rel);
  DirNode* parent = FindDir(r.tree.get(), parent_rel);
  if (parent == nullptr) return absl::OkStatus();  // inside a folder left out or gone
  const fs::path abs = r.path / rel;
  struct stat st;
  int found = -1;
  int err = 0;
  {
    AMLD_ASSIGN_OR_RETURN(amld::base::ScopedFsIdentity as, r.ReadAs());
    found = ::lstat(abs.c_str(), &st);
    err = errno;
  }
  if (found != 0) {
    errno = err;
    if (errno == ENOENT || errno == ENOTDIR) {
      RemoveEntry(r, rel);
      return absl::OkStatus();
    }
    return Annotate(amld::base::ErrnoStatus(errno, "stat", abs), "cannot snapshot");
  }
  const bool is_dir = S_ISDIR(st.st_mode);
  if (amld::storage::CheckLeftOut(r.rules.get(), rel, name, is_dir).ignored) {
    RemoveEntry(r, rel);
    return absl::OkStatus();
  }
  if (is_dir) {
    if (!parent->dirs.contains(name)) {
      RemoveEntry(r, rel);  // a file or link of that name
      rescan_dirs->push_back(rel);
    }
    return absl::OkStatus();
  }
  if (S_ISREG(st.st_mode) && IsPlainName(name)) return StoreFile(r, rel, rescan_dirs);
  if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
    // Links and unusual names: a walk of the folder applies every check.
    rescan_dirs->push_back(parent_rel);
    return absl::OkStatus();
  }
  RemoveEntry(r, rel);  // fifos, sockets, devices are never part of a snapshot
  return absl::OkStatus();
}

absl::Status WatchedRoots::StoreFile(Root& r, const std::string& rel,
                                     std::vector<std::string>* rescan_dirs) {
  auto [parent_rel, name] = SplitParent(rel);
  const fs::path abs = r.path / rel;
  const absl::Time started = absl::Now();
  amld::base::ScopedFd fd;
  int open_errno = 0;
  {
    // Opened as the owner; read and stored through the descriptor as the
    // daemon (an open fd is read without further checks).
    AMLD_ASSIGN_OR_RETURN(amld::base::ScopedFsIdentity as, r.ReadAs());
    fd = amld::base::ScopedFd(::open(abs.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    open_errno = errno;
  }
  errno = open_errno;
  if (!fd.valid()) {
    if (errno == ENOENT) {
      RemoveEntry(r, rel);
      return absl::OkStatus();
    }
    if (errno == ELOOP) {  // became a link
      rescan_dirs->push_back(parent_rel);
      return absl::OkStatus();
    }
    return Annotate(amld::base::ErrnoStatus(errno, "open", abs),
                    "cannot read a file of the snapshot (fix its permissions or list it in "
                    ".amlignore)");
  }
  struct stat before, after;
  if (::fstat(fd.get(), &before) != 0) return amld::base::ErrnoStatus(errno, "fstat", abs);
  if (!S_ISREG(before.st_mode)) {
    rescan_dirs->push_back(parent_rel);
    return absl::OkStatus();
  }
  // Through the descriptor: the file stat saw, even if the path changed.
  // Deferred durability: the SubmitRun that uses the tree syncs it.
  AMLD_ASSIGN_OR_RETURN(Digest d, deps_.cas->PutFile(absl::StrCat("/proc/self/fd/", fd.get()),
                                                     amld::storage::Durability::kDeferred));
  FileEntry e = EntryOf(before);
  const bool stable = ::fstat(fd.get(), &after) == 0 && e.stamp == FileStamp::Of(after) &&
                      after.st_size == d.size;
  e.digest = std::move(d);
  e.executable = (before.st_mode & 0111) != 0;
  e.trusted = stable && e.stamp.TrustedFor(started);
  DirNode* parent = FindDir(r.tree.get(), parent_rel);
  if (parent == nullptr) return absl::OkStatus();
  if (parent->dirs.erase(name) > 0) {
    absl::MutexLock lock(&mu_);
    DropWatchesLocked(r, rel);
  }
  parent->links.erase(name);
  if (e.nlink > 1) {
    r.linked.insert(rel);
  } else {
    r.linked.erase(rel);
  }
  parent->files[name] = std::move(e);
  InvalidatePath(r.tree.get(), parent_rel);
  return absl::OkStatus();
}

void WatchedRoots::RemoveEntry(Root& r, const std::string& rel) {
  if (rel.empty()) return;
  auto [parent_rel, name] = SplitParent(rel);
  DirNode* parent = FindDir(r.tree.get(), parent_rel);
  if (parent == nullptr) return;
  ForgetUnder(&r.linked, rel);
  bool changed = parent->files.erase(name) + parent->links.erase(name) > 0;
  if (parent->dirs.erase(name) > 0) {
    absl::MutexLock lock(&mu_);
    DropWatchesLocked(r, rel);
    changed = true;
  }
  if (changed) InvalidatePath(r.tree.get(), parent_rel);
}

}  // namespace amld::daemon
