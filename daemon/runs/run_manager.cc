#include "daemon/runs/run_manager.h"

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
#include "daemon/ingest/live_ingester.h"
#include "daemon/executors/run_folder.h"
#include "spdlog/spdlog.h"
#include "base/file_util.h"
#include "storage/snapshot/snapshot.h"
#include "base/status_macros.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::storage::IsTerminal;
using amld::storage::RunStatus;
using amld::storage::StatusName;
using amld::storage::TransitionDetails;
using amld::v1::Run;
using amld::v1::RunConfig;
using Status = amld::v1::RunStatus;

constexpr int kRunIdAttempts = 8;

std::string WithReason(std::string what, const std::string& reason) {
  if (!reason.empty()) absl::StrAppend(&what, ": ", reason);
  return what;
}

// A prepared but unused run folder, renamed into place by the next run.
// Never a run id: those always contain '_'.
constexpr char kSpareName[] = ".spare";
// A spare whose wd/ holds a snapshot: ".spare-with-<hash>-<size>".
constexpr char kFilledSparePrefix[] = ".spare-with-";
// Largest snapshot copied ahead into a filled spare.
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

TargetCapacity CapacityOf(const RunManagerOptions& o) {
  const int runs = std::max(o.max_concurrent_runs, 1);
  return TargetCapacity{runs, o.cpus > 0 ? o.cpus : runs, o.gpus};
}

bool IsLocalTarget(const RunConfig& config) {
  return config.compute_target().empty() || config.compute_target() == "local";
}

// What the run holds of the local target: its request; runs for another
// target hold a slot only.
RunResources ResourcesOf(const RunConfig& config) {
  if (!IsLocalTarget(config)) return RunResources{0, 0};
  return NormalizeResources(config.resources().cpus(), config.resources().gpus());
}

QueueRequest QueueRequestOf(const RunConfig& config, uint32_t submitter_uid) {
  return QueueRequest{config.priority(), submitter_uid, ResourcesOf(config)};
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

RunManager::RunManager(RunManagerDeps deps, RunManagerOptions options)
    : deps_(std::move(deps)),
      options_(std::move(options)),
      snapshot_checker_(deps_.cas),
      scheduler_(CapacityOf(options_)) {
  if (options_.max_concurrent_runs < 1) options_.max_concurrent_runs = 1;
  if (deps_.log == nullptr) deps_.log = std::make_shared<spdlog::logger>("amld-run-manager");
  if (deps_.ingester == nullptr) {
    own_ingester_ = std::make_unique<LiveIngester>(
        LiveIngesterDeps{deps_.store, deps_.cas, nullptr, deps_.clock, deps_.log},
        LiveIngesterOptions{});
    deps_.ingester = own_ingester_.get();
  }
}

RunManager::~RunManager() = default;

// ---------------------------------------------------------------------------
// Submit, cancel, watch.

absl::StatusOr<Run> RunManager::Submit(const RunConfig& submitted, uint32_t submitter_uid) {
  AMLD_RETURN_IF_ERROR(ValidateRunConfig(submitted));
  if (!submitted.compute_target().empty()) {  // NOT_FOUND naming it when undefined
    AMLD_RETURN_IF_ERROR(deps_.store->GetComputeTarget(submitted.compute_target()).status());
  }
  RunConfig config = submitted;
  {
    absl::MutexLock lock(&mu_);
    AMLD_RETURN_IF_ERROR(ApplyLimitsLocked(&config));
  }
  // The snapshot's blobs came in with Durability::kDeferred (Cas service,
  // watched roots): make them durable before the run that needs them is.
  if (const int64_t pending = deps_.cas->PendingSyncCount(); pending > 0) {
    const absl::Time start = absl::Now();
    AMLD_RETURN_IF_ERROR(deps_.cas->SyncPending());
    deps_.log->info("made {} uploaded blobs durable in {:.1f} ms", pending,
                    absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  AMLD_RETURN_IF_ERROR(snapshot_checker_.Check(config));
  amld::storage::NewRun new_run;
  new_run.config = config;
  new_run.submitter_uid = submitter_uid;
  new_run.now = deps_.clock->Now();
  absl::StatusOr<Run> run = absl::InternalError("no run id was tried");
  for (int attempt = 0; attempt < kRunIdAttempts; ++attempt) {
    uint32_t bits;
    {
      absl::MutexLock lock(&mu_);
      bits = absl::Uniform<uint32_t>(random_);
    }
    new_run.id = MakeRunId(config.experiment_name(), new_run.now, bits);
    run = deps_.store->InsertRun(new_run);
    if (run.status().code() != absl::StatusCode::kAlreadyExists) break;
  }
  if (!run.ok()) return run.status();
  deps_.log->info("run {} queued ({})", run->id(),
                  config.script().empty() ? "command" : config.script());
  absl::MutexLock lock(&mu_);
  ++runs_submitted_;
  ActiveRun& active = active_[run->id()];
  active.config = config;
  scheduler_.Enqueue(run->id(), QueueRequestOf(config, submitter_uid));
  StartReadyLocked();
  return run;
}

absl::Status RunManager::ApplyLimitsLocked(RunConfig* config) {
  AMLD_RETURN_IF_ERROR(scheduler_.CheckFits(ResourcesOf(*config)));
  AMLD_ASSIGN_OR_RETURN(int64_t seconds, EffectiveRunDuration(config->max_run_duration_seconds(),
                                                              options_.default_run_duration_seconds,
                                                              options_.max_run_duration_seconds));
  config->set_max_run_duration_seconds(seconds);
  return absl::OkStatus();
}

absl::StatusOr<Run> RunManager::Cancel(const std::string& run_id, const std::string& reason) {
  bool signal_process = false;
  absl::StatusOr<Run> result;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it == active_.end()) return deps_.store->GetRun(run_id);
    ActiveRun& r = it->second;
    TransitionDetails details;
    details.reason = reason;
    if (r.phase == Phase::kQueued) {
      scheduler_.RemoveQueued(run_id);
      details.error = WithReason("canceled before it started", reason);
      result = TransitionLocked(run_id, Status::CANCELED, details);
      if (result.ok()) ForgetLocked(run_id);
      return result;
    }
    if (r.phase == Phase::kFinalizing || r.cancel_requested) return deps_.store->GetRun(run_id);
    r.cancel_requested = true;
    r.cancel_reason = reason;
    result = TransitionLocked(run_id, Status::CANCEL_REQUESTED, details);
    signal_process = r.phase == Phase::kRunning;
  }
  deps_.log->info("run {}: cancel requested{}", run_id, reason.empty() ? "" : ": " + reason);
  if (signal_process) {
    absl::Status s = deps_.executor->Cancel(run_id);
    // NOT_FOUND: the process ended meanwhile; its exit callback finishes it.
    if (!s.ok()) deps_.log->warn("run {}: cancel: {}", run_id, s.ToString());
  }
  return result;
}

absl::StatusOr<RunManager::Subscription> RunManager::Subscribe(const std::string& run_id,
                                                               RunListener listener) {
  absl::MutexLock lock(&mu_);
  AMLD_ASSIGN_OR_RETURN(Run run, deps_.store->GetRun(run_id));
  Subscription sub;
  if (!IsTerminal(run.status())) {
    sub.listener_id = next_listener_id_++;
    listeners_[run_id].emplace_back(sub.listener_id, std::move(listener));
  }
  sub.run = std::move(run);
  return sub;
}

void RunManager::Unsubscribe(const std::string& run_id, uint64_t listener_id) {
  if (listener_id == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = listeners_.find(run_id);
  if (it == listeners_.end()) return;
  std::erase_if(it->second, [&](const auto& l) { return l.first == listener_id; });
  if (it->second.empty()) listeners_.erase(it);
}

RunPaths RunManager::PathsFor(const std::string& run_id) const {
  return RunPathsFor(options_.runs_root, run_id);
}

int64_t RunManager::runs_submitted() const {
  absl::MutexLock lock(&mu_);
  return runs_submitted_;
}

int64_t RunManager::queued_runs() const {
  absl::MutexLock lock(&mu_);
  return scheduler_.queued();
}

int64_t RunManager::runs_holding_slots() const {
  absl::MutexLock lock(&mu_);
  return scheduler_.holding_slots();
}

RunManager::LocalTargetState RunManager::local_target() const {
  absl::MutexLock lock(&mu_);
  return LocalTargetState{scheduler_.capacity(), scheduler_.free_cpus(), scheduler_.free_gpus()};
}

// ---------------------------------------------------------------------------
// Bookkeeping under the lock.

absl::StatusOr<Run> RunManager::TransitionLocked(const std::string& run_id, RunStatus to,
                                                 const TransitionDetails& details) {
  absl::StatusOr<Run> run = deps_.store->Transition(run_id, to, details, deps_.clock->Now());
  if (!run.ok()) {
    deps_.log->error("run {}: cannot record {}: {}", run_id, StatusName(to),
                     run.status().ToString());
    return run;
  }
  if (auto it = active_.find(run_id); it != active_.end()) it->second.status = to;
  if (auto it = listeners_.find(run_id); it != listeners_.end()) {
    for (const auto& [id, listener] : it->second) listener(*run);
  }
  return run;
}

void RunManager::StartReadyLocked() {
  if (recovering_) return;
  for (std::string& run_id : scheduler_.TakeStartable()) {
    auto it = active_.find(run_id);
    if (it == active_.end()) {
      scheduler_.Release(run_id);
      continue;
    }
    it->second.phase = Phase::kPreparing;
    deps_.tasks->Post([this, run_id = std::move(run_id)] { Prepare(run_id); });
  }
}

void RunManager::ForgetLocked(const std::string& run_id) {
  active_.erase(run_id);
  if (scheduler_.Release(run_id)) StartReadyLocked();
}

void RunManager::EndWithoutProcessLocked(const std::string& run_id, RunStatus status,
                                         const std::string& error) {
  // A run still recorded QUEUED has no folder: PREPARING is recorded before
  // one is made.
  auto it = active_.find(run_id);
  const bool may_have_folder = it != active_.end() && it->second.status != Status::QUEUED;
  TransitionDetails details;
  details.error = error;
  const bool ended = TransitionLocked(run_id, status, details).ok();
  deps_.log->info("run {}: {} ({})", run_id, StatusName(status), error);
  deps_.ingester->Forget(run_id);  // it may have been watched for a launch
  ForgetLocked(run_id);
  if (ended && may_have_folder) NoteFinishedLocked(run_id);
}

// ---------------------------------------------------------------------------
// Retention of finished runs' folders.

void RunManager::NoteFinishedLocked(const std::string& run_id) {
  if (options_.keep_finished_run_folders < 0) return;  // all are kept
  finished_folders_.push_back(run_id);
  // While Start() recovers, the folders earlier daemons left are not known
  // yet; Start() merges them in and prunes.
  if (!recovering_) PruneFinishedFoldersLocked();
}

void RunManager::PruneFinishedFoldersLocked() {
  if (options_.keep_finished_run_folders < 0) return;
  const size_t keep = static_cast<size_t>(options_.keep_finished_run_folders);
  if (finished_folders_.size() <= keep) return;
  std::vector<std::string> to_remove;
  while (finished_folders_.size() > keep) {
    to_remove.push_back(std::move(finished_folders_.front()));
    finished_folders_.pop_front();
  }
  // Removing ~10,000 files takes a while: on a housekeeping task, outside
  // the lock, posted after the next run's Prepare so it does not wait for it.
  Housekeeping().Post([this, to_remove = std::move(to_remove)] { RemoveRunFolders(to_remove); });
}

void RunManager::RemoveRunFolders(const std::vector<std::string>& run_ids) {
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

std::vector<std::string> RunManager::ScanFinishedFolders() {
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

// ---------------------------------------------------------------------------
// PREPARING → STARTING → RUNNING, on a task thread.

void RunManager::Prepare(const std::string& run_id) {
  RunConfig config;
  std::vector<int> gpus;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it == active_.end()) return;
    ActiveRun& r = it->second;
    if (r.cancel_requested) {
      return EndWithoutProcessLocked(run_id, Status::CANCELED,
                                     WithReason("canceled before it started", r.cancel_reason));
    }
    gpus = scheduler_.GpusOf(run_id);
    TransitionDetails preparing;
    preparing.assigned_gpus = gpus;  // before any launch, so a restart keeps them
    if (r.status != Status::PREPARING &&
        !TransitionLocked(run_id, Status::PREPARING, preparing).ok()) {
      return ForgetLocked(run_id);
    }
    config = r.config;
  }
  const RunPaths paths = PathsFor(run_id);
  const absl::Time prepare_start = absl::Now();
  absl::Status prepared = PrepareRunFolder(config, paths);
  const absl::Duration prepare_time = absl::Now() - prepare_start;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it == active_.end()) return;
    ActiveRun& r = it->second;
    if (!prepared.ok()) {
      return EndWithoutProcessLocked(
          run_id, Status::FAILED, absl::StrCat("could not prepare the run: ", prepared.message()));
    }
    if (r.cancel_requested) {
      return EndWithoutProcessLocked(run_id, Status::CANCELED,
                                     WithReason("canceled before it started", r.cancel_reason));
    }
    // Committed before the launch: after a crash, a STARTING run without a
    // handle is failed, never launched again.
    if (!TransitionLocked(run_id, Status::STARTING, {}).ok()) return ForgetLocked(run_id);
    r.phase = Phase::kStarting;
  }
  Launch(run_id, config, gpus, prepare_time);
  // For the next run, now that this one is on its way.
  ReplenishSpare();
  Housekeeping().Post(
      [this, root = amld::storage::FromProto(config.snapshot_root())] { FillSpareWith(root); });
}

absl::Status RunManager::PrepareRunFolder(const RunConfig& config, const RunPaths& paths) {
  std::error_code ec;
  // Leftovers of an earlier attempt (recovery of a PREPARING run).
  if (fs::exists(paths.root, ec)) fs::remove_all(paths.root, ec);
  if (ec) return amld::base::ErrnoStatus(ec.value(), "remove", paths.root);
  const amld::storage::Digest root = amld::storage::FromProto(config.snapshot_root());
  // The snapshot may be in a filled spare already (the last run's snapshot,
  // materialized while that run ran): one rename, no copy.
  if (::rename(FilledSparePath(root).c_str(), paths.root.c_str()) != 0) {
    // One rename instead of five creations on the way to the first
    // instruction; another submit may have taken the spare, then build one.
    if (::rename(SparePath().c_str(), paths.root.c_str()) != 0) {
      AMLD_RETURN_IF_ERROR(MakeRunSkeleton(paths.root));
    }
    AMLD_RETURN_IF_ERROR(amld::storage::Materialize(*deps_.cas, root, paths.wd));
  }
  AMLD_RETURN_IF_ERROR(MakeDir(paths.outputs));
  return MakeDir(paths.logs);
}

base::TaskRunner& RunManager::Housekeeping() const {
  return deps_.housekeeping != nullptr ? *deps_.housekeeping : *deps_.tasks;
}

fs::path RunManager::SparePath() const { return options_.runs_root / kSpareName; }

void RunManager::ReplenishSpare() {
  std::error_code ec;
  if (!fs::exists(SparePath(), ec)) MakeSpare(SparePath(), nullptr);
}

fs::path RunManager::FilledSparePath(const amld::storage::Digest& root) const {
  return options_.runs_root / absl::StrCat(kFilledSparePrefix, root.hash, "-", root.size);
}

void RunManager::FillSpareWith(const amld::storage::Digest& root) {
  std::error_code ec;
  const fs::path filled = FilledSparePath(root);
  if (fs::exists(filled, ec)) return;
  // Only small trees: the copy is a guess (the next run may use another
  // snapshot), and for a large tree a wrong guess doubles the disk writes.
  absl::flat_hash_set<amld::storage::Digest> digests;
  if (!amld::storage::CollectTreeDigests(*deps_.cas, root, &digests).ok()) return;
  int64_t bytes = 0;
  for (const amld::storage::Digest& d : digests) bytes += d.size;
  if (bytes > kMaxFilledSpareBytes || digests.size() > kMaxFilledSpareBlobs) return;
  // One filled spare at a time: the one for the newest snapshot.
  RemoveSpares(/*filled=*/true, /*temporary=*/false);
  MakeSpare(filled, &root);
}

void RunManager::MakeSpare(const fs::path& dest, const amld::storage::Digest* snapshot) {
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

void RunManager::RemoveSpares(bool filled, bool temporary) {
  const std::string tmp_prefix = absl::StrCat(kSpareName, "-tmp-");
  std::error_code ec;
  for (fs::directory_iterator it(options_.runs_root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool is_tmp = absl::StartsWith(name, tmp_prefix);
    const bool is_filled = !is_tmp && absl::StartsWith(name, kFilledSparePrefix);
    if ((temporary && is_tmp) || (filled && is_filled)) {
      std::error_code rm;
      fs::remove_all(it->path(), rm);
    }
  }
}

void RunManager::RemoveStaleSpares() {
  // Filled spares too: an earlier daemon's may hold a snapshot no run needs.
  RemoveSpares(/*filled=*/true, /*temporary=*/true);
}

void RunManager::Launch(const std::string& run_id, const RunConfig& config,
                        const std::vector<int>& gpus, absl::Duration prepare_time) {
  LaunchSpec spec =
      BuildLaunchSpec(run_id, config, PathsFor(run_id), options_.base_env, options_.kill_grace);
  if (IsLocalTarget(config)) SetVisibleGpus(gpus, &spec);
  // Before the process exists, so its first file is seen.
  deps_.ingester->Watch(run_id, PathsFor(run_id));
  const absl::Time launch_start = absl::Now();
  absl::StatusOr<std::string> handle = deps_.executor->Launch(spec);
  const absl::Duration launch_time = absl::Now() - launch_start;
  const std::string placement = handle.ok() ? deps_.executor->Placement(run_id, *handle) : "";
  bool signal_process = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it == active_.end()) return;
    ActiveRun& r = it->second;
    if (!handle.ok()) {
      return EndWithoutProcessLocked(run_id, Status::FAILED,
                                     absl::StrCat("could not start: ", handle.status().message()));
    }
    absl::Status saved = deps_.store->SetRunHandle(run_id, *handle);
    if (!saved.ok()) {
      // The run goes on; only a daemon restart before it ends would lose it.
      deps_.log->error("run {}: cannot persist its handle: {}", run_id, saved.ToString());
    }
    r.phase = Phase::kRunning;
    if (!r.cancel_requested && r.waiting_elsewhere) {
      // Handed to another scheduler (Slurm): STARTING until it runs there.
      SetPlacementLocked(run_id, r.waiting_placement);
      deps_.log->info("run {} handed on ({}); prepared in {:.2f} ms, launched in {:.2f} ms", run_id,
                      r.waiting_placement, absl::ToDoubleMilliseconds(prepare_time),
                      absl::ToDoubleMilliseconds(launch_time));
    } else if (!r.cancel_requested) {
      TransitionDetails details;
      details.placement = placement;
      (void)TransitionLocked(run_id, Status::RUNNING, details);
      deps_.log->info("run {} running (prepared in {:.2f} ms, launched in {:.2f} ms)", run_id,
                      absl::ToDoubleMilliseconds(prepare_time),
                      absl::ToDoubleMilliseconds(launch_time));
    }
    if (r.early_exit.has_value()) {
      absl::StatusOr<ExitStatus> outcome = std::move(*r.early_exit);
      r.early_exit.reset();
      return BeginFinalizeLocked(run_id, outcome);
    }
    signal_process = r.cancel_requested;
  }
  if (signal_process) {
    absl::Status s = deps_.executor->Cancel(run_id);
    if (!s.ok()) deps_.log->warn("run {}: cancel: {}", run_id, s.ToString());
  }
}

// ---------------------------------------------------------------------------
// Exit → FINALIZING → terminal.

void RunManager::OnExit(const std::string& run_id, absl::StatusOr<ExitStatus> outcome) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(run_id);
  if (it == active_.end()) {
    deps_.log->warn("exit reported for run {}, which is not active", run_id);
    return;
  }
  if (it->second.phase == Phase::kStarting) {
    it->second.early_exit = std::move(outcome);  // Launch() finishes it
    return;
  }
  if (it->second.phase == Phase::kFinalizing) return;  // reported twice
  BeginFinalizeLocked(run_id, outcome);
}

void RunManager::OnProgress(const std::string& run_id, const RunProgress& progress) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(run_id);
  if (it == active_.end() || it->second.phase == Phase::kFinalizing) return;
  ActiveRun& r = it->second;
  if (!progress.started) {
    // A run amld already recorded RUNNING never goes back (a re-adopting
    // executor says "waiting" until it has looked).
    if (r.status == Status::RUNNING) return;
    r.waiting_elsewhere = true;
    r.waiting_placement = absl::StrCat(progress.placement, " ", progress.detail);
    // While Launch has not returned, it records this itself.
    if (r.phase == Phase::kRunning) SetPlacementLocked(run_id, r.waiting_placement);
    return;
  }
  const bool was_waiting = r.waiting_elsewhere;
  r.waiting_elsewhere = false;
  if (r.phase != Phase::kRunning) return;  // Launch goes on to RUNNING itself
  if (r.status == Status::STARTING) {
    TransitionDetails details;
    details.placement = progress.placement;
    details.reason = absl::StrCat(progress.placement, ": ", progress.detail);
    if (TransitionLocked(run_id, Status::RUNNING, details).ok()) {
      deps_.log->info("run {} running ({})", run_id, progress.placement);
    }
  } else if (was_waiting || r.status == Status::RUNNING) {
    SetPlacementLocked(run_id, progress.placement);
  }
}

void RunManager::SetPlacementLocked(const std::string& run_id, const std::string& placement) {
  absl::StatusOr<Run> run = deps_.store->SetRunPlacement(run_id, placement);
  if (!run.ok()) {
    deps_.log->warn("run {}: cannot record placement {}: {}", run_id, placement,
                    run.status().ToString());
    return;
  }
  if (auto it = listeners_.find(run_id); it != listeners_.end()) {
    for (const auto& [id, listener] : it->second) listener(*run);
  }
}

void RunManager::BeginFinalizeLocked(const std::string& run_id,
                                     const absl::StatusOr<ExitStatus>& outcome) {
  ActiveRun& r = active_.at(run_id);
  r.phase = Phase::kFinalizing;
  FinalOutcome final_outcome =
      DecideOutcome(outcome, r.config.max_run_duration_seconds(), r.cancel_reason);
  if (r.status == Status::STARTING &&
      (!r.waiting_elsewhere || final_outcome.status == Status::COMPLETED)) {
    // Its process ran: it ended while being re-adopted, or between two
    // looks of an executor that was still reporting it waiting.
    (void)TransitionLocked(run_id, Status::RUNNING, {});
  }
  if (r.status == Status::STARTING) {
    // Ended while still waiting elsewhere (canceled or refused by another
    // scheduler before it started): no process ran, nothing to finalize
    // first; Finalize goes straight to CANCELED or FAILED.
    deps_.log->info("run {} ended before it started ({})", run_id, final_outcome.error);
  } else if (r.status != Status::FINALIZING) {
    TransitionDetails details;
    details.exit_code = final_outcome.exit_code;
    details.exit_signal = final_outcome.exit_signal;
    details.reason = outcome.ok() ? "process ended" : std::string(outcome.status().message());
    if (!TransitionLocked(run_id, Status::FINALIZING, details).ok()) {
      // Only a database error gets here; the run cannot be recorded further.
      return ForgetLocked(run_id);
    }
  }
  deps_.log->info("run {} ended ({}); storing its outputs", run_id,
                  final_outcome.error.empty() ? "ok" : final_outcome.error);
  deps_.tasks->Post([this, run_id, final_outcome] { Finalize(run_id, final_outcome); });
}

void RunManager::Finalize(const std::string& run_id, FinalOutcome outcome) {
  std::vector<std::string> skipped;
  absl::Status stored = deps_.ingester->Finish(run_id, PathsFor(run_id), &skipped);
  if (!skipped.empty()) {
    deps_.log->info("run {}: not stored: {}", run_id, absl::StrJoin(skipped, "; "));
  }
  if (!stored.ok()) {
    std::string what = absl::StrCat("could not store the run's outputs: ", stored.message());
    outcome.error =
        outcome.status == Status::COMPLETED ? what : absl::StrCat(outcome.error, "; ", what);
    if (outcome.status == Status::COMPLETED) outcome.status = Status::FAILED;
  }
  absl::MutexLock lock(&mu_);
  TransitionDetails details;
  if (!outcome.error.empty()) details.error = outcome.error;
  const bool ended = TransitionLocked(run_id, outcome.status, details).ok();
  deps_.log->info("run {} {}{}", run_id, StatusName(outcome.status),
                  outcome.error.empty() ? "" : " (" + outcome.error + ")");
  ForgetLocked(run_id);  // the next run's Prepare is posted before any removal
  if (ended) NoteFinishedLocked(run_id);
}

// ---------------------------------------------------------------------------
// Start and recovery.

absl::Status RunManager::Start() {
  deps_.executor->SetExitCallback(
      [this](const std::string& run_id, absl::StatusOr<ExitStatus> outcome) {
        OnExit(run_id, std::move(outcome));
      });
  deps_.executor->SetProgressCallback(
      [this](const std::string& run_id, const RunProgress& progress) {
        OnProgress(run_id, progress);
      });
  AMLD_ASSIGN_OR_RETURN(
      std::vector<Run> runs,
      deps_.store->RunsInStatus({Status::QUEUED, Status::PREPARING, Status::STARTING,
                                 Status::RUNNING, Status::CANCEL_REQUESTED, Status::FINALIZING}));
  for (const Run& run : runs) {
    absl::Status s = Recover(run);
    if (!s.ok()) deps_.log->error("run {}: recovery: {}", run.id(), s.ToString());
  }
  if (!runs.empty()) deps_.log->info("took over {} unfinished run(s)", runs.size());
  RemoveStaleSpares();
  ReplenishSpare();
  std::vector<std::string> finished;
  if (options_.keep_finished_run_folders >= 0) finished = ScanFinishedFolders();
  absl::MutexLock lock(&mu_);
  // Runs that ended during recovery were noted already; those the scan saw
  // keep its order, the others ended after it.
  absl::flat_hash_set<std::string> scanned(finished.begin(), finished.end());
  for (std::string& id : finished_folders_) {
    if (!scanned.contains(id)) finished.push_back(std::move(id));
  }
  finished_folders_.assign(std::make_move_iterator(finished.begin()),
                           std::make_move_iterator(finished.end()));
  recovering_ = false;
  StartReadyLocked();
  PruneFinishedFoldersLocked();
  return absl::OkStatus();
}

absl::Status RunManager::Recover(const Run& run) {
  const std::string& id = run.id();
  const RunStatus status = run.status();
  {
    absl::MutexLock lock(&mu_);
    ActiveRun& r = active_[id];
    r.config = run.config();
    r.status = status;
    if (status == Status::QUEUED) {
      const QueueRequest request = QueueRequestOf(run.config(), run.submitter_uid());
      if (absl::Status fits = scheduler_.CheckFits(request.resources); !fits.ok()) {
        EndWithoutProcessLocked(
            id, Status::FAILED,
            absl::StrCat("the daemon's capacity changed while the run was queued: ",
                         fits.message()));
        return absl::OkStatus();
      }
      scheduler_.Enqueue(id, request);
      return absl::OkStatus();
    }
    scheduler_.Adopt(id, ResourcesOf(run.config()),
                     std::vector<int>(run.assigned_gpus().begin(), run.assigned_gpus().end()));
    if (status == Status::PREPARING) {
      r.phase = Phase::kPreparing;
      deps_.tasks->Post([this, id] { Prepare(id); });
      return absl::OkStatus();
    }
  }
  absl::StatusOr<std::string> handle = deps_.store->GetRunHandle(id);
  absl::MutexLock lock(&mu_);
  ActiveRun& r = active_.at(id);
  if (!handle.ok() || handle->empty()) {
    if (status == Status::STARTING) {
      EndWithoutProcessLocked(id, Status::FAILED,
                              "the daemon stopped while starting this run, before it could "
                              "record the process; it may or may not have run. Resubmit it");
    } else if (status == Status::CANCEL_REQUESTED) {
      EndWithoutProcessLocked(id, Status::CANCELED,
                              "canceled; the daemon restarted before the run started");
    } else {
      EndWithoutProcessLocked(id, Status::FAILED,
                              "daemon lost the run: no process handle was recorded");
    }
    return absl::OkStatus();
  }
  // The launch finished (its handle is stored), so the process exists or
  // existed, unless it still waits in another scheduler's queue (the
  // executor says so during Reattach): then RUNNING comes with its start.
  r.phase = Phase::kRunning;
  r.cancel_requested = status == Status::CANCEL_REQUESTED;
  const RunPaths paths = PathsFor(id);
  // Reattach may report the exit at once, from the executor's thread, which
  // takes mu_: call it unlocked.
  mu_.Unlock();
  deps_.ingester->Watch(id, paths);  // before an exit reported at once finishes it
  absl::Status attached = deps_.executor->Reattach(id, paths.root, *handle);
  if (attached.ok() && status == Status::CANCEL_REQUESTED) {
    absl::Status s = deps_.executor->Cancel(id);
    if (!s.ok()) deps_.log->warn("run {}: cancel: {}", id, s.ToString());
  }
  mu_.Lock();
  if (!attached.ok()) {
    auto it = active_.find(id);
    if (it != active_.end() && it->second.phase == Phase::kRunning) {
      EndWithoutProcessLocked(
          id, Status::FAILED,
          absl::StrCat("daemon lost the run after a restart: ", attached.message()));
    }
    return absl::OkStatus();
  }
  if (auto it = active_.find(id);
      status == Status::STARTING && it != active_.end() && it->second.phase == Phase::kRunning &&
      it->second.status == Status::STARTING && !it->second.waiting_elsewhere) {
    TransitionDetails details;
    details.placement = deps_.executor->Placement(id, *handle);
    if (!TransitionLocked(id, Status::RUNNING, details).ok()) {
      return absl::InternalError("cannot record RUNNING");
    }
  }
  deps_.log->info("run {} re-adopted ({})", id, StatusName(status));
  return absl::OkStatus();
}

}  // namespace amld::daemon
