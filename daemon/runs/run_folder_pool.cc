#include "daemon/runs/run_folder_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "spdlog/spdlog.h"
#include "storage/snapshot/snapshot.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::storage::IsTerminal;
using amld::v1::Run;

// A prepared but unused run folder, renamed into place by the next run.
// Never a run id: those always contain '_'.
constexpr char kSpareName[] = ".spare";
// A spare whose wd/ holds a snapshot: ".spare-with-<hash>-<size>".
constexpr char kFilledSparePrefix[] = ".spare-with-";
// Largest snapshot copied ahead into a filled spare: the copy is a guess
// (the next run may use another snapshot), and for a large tree a wrong
// guess doubles the disk writes.
constexpr int64_t kMaxFilledSpareBytes = 64 << 20;
constexpr size_t kMaxFilledSpareBlobs = 5000;

absl::Status MakeDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return amld::base::ErrnoStatus(ec.value(), "mkdir", dir);
  if (!fs::is_directory(fs::symlink_status(dir, ec))) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir.filename().string(),
                     " exists in the run folder but is not a folder; rename that "
                     "entry of the source folder (amld creates outputs/ and logs/ for the run)"));
  }
  return absl::OkStatus();
}

// What every run folder has before its snapshot is materialized: wd/ (empty),
// user_logs/std_log.txt (empty; it exists from now on, so a follower never
// waits for it to appear) and system_logs/.
absl::Status MakeRunSkeleton(const fs::path& root) {
  AMLD_RETURN_IF_ERROR(MakeDir(root));
  for (const char* sub : {"wd", "user_logs", "system_logs"}) {
    AMLD_RETURN_IF_ERROR(MakeDir(root / sub));
  }
  const fs::path log = root / "user_logs/std_log.txt";
  amld::base::ScopedFd fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!fd.valid()) return amld::base::ErrnoStatus(errno, "create", log);
  return absl::OkStatus();
}

}  // namespace

RunFolderPool::RunFolderPool(RunFolderPoolDeps deps, RunFolderPoolOptions options)
    : deps_(std::move(deps)), options_(std::move(options)) {}

RunPaths RunFolderPool::PathsFor(const std::string& run_id) const {
  return RunPathsFor(options_.runs_root, run_id);
}

void RunFolderPool::Start() {
  // Filled spares too: an earlier daemon's may hold a snapshot no run needs.
  RemoveSpares(/*filled=*/true, /*temporary=*/true);
  ReplenishSpare();
  if (options_.keep_finished_run_folders < 0) return;  // all are kept
  std::vector<std::string> found = ScanFinishedFolders();
  absl::MutexLock lock(&mu_);
  finished_.assign(std::make_move_iterator(found.begin()), std::make_move_iterator(found.end()));
  PruneLocked();
}

// ---------------------------------------------------------------------------
// Spares.

absl::Status RunFolderPool::Prepare(const std::string& run_id,
                                    const amld::storage::Digest& snapshot) {
  const RunPaths paths = PathsFor(run_id);
  std::error_code ec;
  // Leftovers of an earlier attempt (recovery of a PREPARING run).
  if (fs::exists(paths.root, ec)) fs::remove_all(paths.root, ec);
  if (ec) return amld::base::ErrnoStatus(ec.value(), "remove", paths.root);
  // The snapshot may be in a filled spare already (the last run's snapshot,
  // materialized while that run ran): one rename, no copy.
  if (::rename(FilledSparePath(snapshot).c_str(), paths.root.c_str()) != 0) {
    // One rename instead of five creations on the way to the first
    // instruction; another submit may have taken the spare, then build one.
    if (::rename(SparePath().c_str(), paths.root.c_str()) != 0) {
      AMLD_RETURN_IF_ERROR(MakeRunSkeleton(paths.root));
    }
    AMLD_RETURN_IF_ERROR(amld::storage::Materialize(*deps_.cas, snapshot, paths.wd));
  }
  AMLD_RETURN_IF_ERROR(MakeDir(paths.outputs));
  return MakeDir(paths.logs);
}

void RunFolderPool::Launched(const amld::storage::Digest& snapshot) {
  ReplenishSpare();
  deps_.housekeeping->Post([this, snapshot] { FillSpareWith(snapshot); });
}

fs::path RunFolderPool::SparePath() const { return options_.runs_root / kSpareName; }

fs::path RunFolderPool::FilledSparePath(const amld::storage::Digest& root) const {
  return options_.runs_root / absl::StrCat(kFilledSparePrefix, root.hash, "-", root.size);
}

void RunFolderPool::ReplenishSpare() {
  std::error_code ec;
  if (!fs::exists(SparePath(), ec)) MakeSpare(SparePath(), nullptr);
}

void RunFolderPool::FillSpareWith(const amld::storage::Digest& root) {
  std::error_code ec;
  const fs::path filled = FilledSparePath(root);
  if (fs::exists(filled, ec)) return;
  absl::flat_hash_set<amld::storage::Digest> digests;
  if (!amld::storage::CollectTreeDigests(*deps_.cas, root, &digests).ok()) return;
  int64_t bytes = 0;
  for (const amld::storage::Digest& d : digests) bytes += d.size;
  if (bytes > kMaxFilledSpareBytes || digests.size() > kMaxFilledSpareBlobs) return;
  // One filled spare at a time: the one for the newest snapshot.
  RemoveSpares(/*filled=*/true, /*temporary=*/false);
  MakeSpare(filled, &root);
}

void RunFolderPool::MakeSpare(const fs::path& dest, const amld::storage::Digest* snapshot) {
  uint32_t bits;
  {
    absl::MutexLock lock(&mu_);
    bits = absl::Uniform<uint32_t>(random_);
  }
  const fs::path tmp = options_.runs_root / absl::StrCat(kSpareName, "-tmp-", bits);
  absl::Status made = MakeRunSkeleton(tmp);
  if (made.ok() && snapshot != nullptr) {
    made = amld::storage::Materialize(*deps_.cas, *snapshot, tmp / "wd");
  }
  // Renaming onto an existing spare fails: someone else made one first.
  if (!made.ok() || ::rename(tmp.c_str(), dest.c_str()) != 0) {
    if (!made.ok()) deps_.log->warn("cannot prepare a spare run folder: {}", made.ToString());
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }
}

void RunFolderPool::RemoveSpares(bool filled, bool temporary) {
  const std::string tmp_prefix = absl::StrCat(kSpareName, "-tmp-");
  std::vector<fs::path> doomed;
  std::error_code ec;
  for (fs::directory_iterator it(options_.runs_root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool is_tmp = absl::StartsWith(name, tmp_prefix);
    const bool is_filled = !is_tmp && absl::StartsWith(name, kFilledSparePrefix);
    if (temporary && is_tmp) doomed.push_back(it->path());
    if (filled && is_filled) {
      // A Prepare may be renaming this spare into a run's place right now:
      // claim it with a rename first, so a run never gets a half-removed
      // folder (seen as "chdir .../wd: No such file or directory" when two
      // snapshots alternate). Lost the race: the run has it, leave it.
      uint32_t bits;
      {
        absl::MutexLock lock(&mu_);
        bits = absl::Uniform<uint32_t>(random_);
      }
      const fs::path claimed = options_.runs_root / absl::StrCat(tmp_prefix, "gone-", bits);
      if (::rename(it->path().c_str(), claimed.c_str()) == 0) doomed.push_back(claimed);
    }
  }
  for (const fs::path& path : doomed) {
    std::error_code rm;
    fs::remove_all(path, rm);
  }
}

// ---------------------------------------------------------------------------
// Retention of finished runs' folders.

void RunFolderPool::Finished(const std::string& run_id) {
  if (options_.keep_finished_run_folders < 0) return;  // all are kept
  absl::MutexLock lock(&mu_);
  finished_.push_back(run_id);
  PruneLocked();
}

void RunFolderPool::RemoveFolderOf(const std::string& run_id) {
  {
    absl::MutexLock lock(&mu_);
    std::erase(finished_, run_id);
  }
  RemoveRunFolders({run_id});
}

void RunFolderPool::PruneLocked() {
  const size_t keep = static_cast<size_t>(options_.keep_finished_run_folders);
  if (finished_.size() <= keep) return;
  std::vector<std::string> to_remove;
  while (finished_.size() > keep) {
    to_remove.push_back(std::move(finished_.front()));
    finished_.pop_front();
  }
  // Removing ~10,000 files takes a while: on the housekeeping runner,
  // outside the lock. The caller posted the next run's Prepare first.
  deps_.housekeeping->Post(
      [this, to_remove = std::move(to_remove)] { RemoveRunFolders(to_remove); });
}

void RunFolderPool::RemoveRunFolders(const std::vector<std::string>& run_ids) {
  for (const std::string& id : run_ids) {
    // Only run folders: run ids never start with '.' (the spare and its
    // temporaries do) and never hold a '/'.
    if (id.empty() || id[0] == '.' || id.find('/') != std::string::npos) continue;
    // Only terminal runs, whatever the caller believed: their files are in
    // the store, and nothing writes to the folder any more.
    absl::StatusOr<Run> run = deps_.store->GetRun(id);
    if (!run.ok() || !IsTerminal(run->status())) {
      deps_.log->warn("run {}: its folder is kept: {}", id,
                      run.ok() ? "the run has not ended" : run.status().ToString());
      continue;
    }
    const fs::path root = PathsFor(id).root;
    std::error_code ec;
    const std::uintmax_t removed = fs::remove_all(root, ec);
    if (ec) {
      deps_.log->warn("run {}: cannot remove its folder {}: {}", id, root.string(), ec.message());
    } else if (removed > 0) {
      deps_.log->info(
          "run {}: removed its folder ({} files and folders); its outputs and logs "
          "stay in the store",
          id, removed);
    }
  }
}

std::vector<std::string> RunFolderPool::ScanFinishedFolders() {
  // Ordered by the time of the run's last transition in the state store
  // (its end), not the folder's mtime: a folder's mtime changes with any
  // file created at its top level and says nothing reliable about the run.
  std::vector<std::tuple<int64_t, int32_t, std::string>> finished;  // end (s, ns), id
  std::vector<std::string> unknown;
  std::error_code ec;
  for (fs::directory_iterator it(options_.runs_root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // the spare, never a run
    std::error_code type_ec;
    if (it->is_symlink(type_ec) || !it->is_directory(type_ec)) continue;
    absl::StatusOr<Run> run = deps_.store->GetRun(name);
    if (absl::IsNotFound(run.status()) || absl::IsInvalidArgument(run.status())) {
      unknown.push_back(name);
      continue;
    }
    if (!run.ok()) {
      deps_.log->warn("cannot tell whether run folder {} may be removed: {}", name,
                      run.status().ToString());
      continue;
    }
    if (!IsTerminal(run->status())) continue;
    const auto& ended =
        run->history().empty() ? run->created_time() : run->history(run->history_size() - 1).time();
    finished.emplace_back(ended.seconds(), ended.nanos(), name);
  }
  if (ec) {
    deps_.log->warn("cannot list {} to remove old run folders: {}", options_.runs_root.string(),
                    ec.message());
  }
  if (!unknown.empty()) {
    constexpr size_t kNamed = 10;
    std::vector<std::string> named(unknown.begin(),
                                   unknown.begin() + std::min(unknown.size(), kNamed));
    deps_.log->warn("{} folder(s) in {} belong to no run this daemon knows; left as they are: {}{}",
                    unknown.size(), options_.runs_root.string(), absl::StrJoin(named, ", "),
                    unknown.size() > kNamed ? ", …" : "");
  }
  std::sort(finished.begin(), finished.end());
  std::vector<std::string> ids;
  ids.reserve(finished.size());
  for (auto& f : finished) ids.push_back(std::move(std::get<2>(f)));
  return ids;
}

}  // namespace amld::daemon
