#include "daemon/runs/run_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "daemon/ingest/live_ingester.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {
namespace {

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

TargetCapacity CapacityOf(const RunManagerOptions& o) {
  const int runs = std::max(o.max_concurrent_runs, 1);
  return TargetCapacity{runs, o.cpus > 0 ? o.cpus : runs, o.gpus};
}

bool IsLocalTarget(const RunConfig& config) {
  return config.compute_target().empty() || config.compute_target() == "local";
}

RunManagerDeps WithDefaults(RunManagerDeps deps) {
  if (deps.log == nullptr) deps.log = std::make_shared<spdlog::logger>("amld-run-manager");
  if (deps.housekeeping == nullptr) deps.housekeeping = deps.tasks;
  return deps;
}

}  // namespace

RunResources RunManager::ResourcesOf(const RunConfig& config) {
  if (!IsLocalTarget(config)) return RunResources{0, 0};
  return NormalizeResources(config.resources().cpus(), config.resources().gpus());
}

QueueRequest RunManager::QueueRequestOf(const RunConfig& config, uint32_t submitter_uid) {
  return QueueRequest{config.priority(), submitter_uid, ResourcesOf(config)};
}

RunManager::RunManager(RunManagerDeps deps, RunManagerOptions options)
    : deps_(WithDefaults(std::move(deps))),
      options_(std::move(options)),
      snapshot_checker_(deps_.cas),
      folders_(RunFolderPoolDeps{deps_.store, deps_.cas, deps_.housekeeping, deps_.log},
               options_.folders),
      scheduler_(CapacityOf(options_)) {
  if (options_.max_concurrent_runs < 1) options_.max_concurrent_runs = 1;
  if (deps_.ingester == nullptr) {
    own_ingester_ = std::make_unique<LiveIngester>(
        LiveIngesterDeps{deps_.store, deps_.cas, nullptr, deps_.clock, deps_.log},
        LiveIngesterOptions{});
    deps_.ingester = own_ingester_.get();
  }
  if (!options_.environments.root.empty()) {
    environments_ = std::make_unique<EnvironmentBuilder>(options_.environments,
                                                         deps_.environment_commands);
  }
}

// The builder first: its worker may still call back into the manager.
RunManager::~RunManager() { environments_.reset(); }

// ---------------------------------------------------------------------------
// Submit, cancel, watch.

absl::StatusOr<RunConfig> RunManager::CheckSubmission(const RunConfig& submitted) {
  AMLD_RETURN_IF_ERROR(ValidateRunConfig(submitted));
  const LaunchSpec::Processes processes = ProcessesOf(submitted);
  if (!submitted.compute_target().empty()) {  // NOT_FOUND naming it when undefined
    AMLD_ASSIGN_OR_RETURN(amld::v1::ComputeTarget target,
                          deps_.store->GetComputeTarget(submitted.compute_target()));
    if (!processes.kind.empty() && !target.has_local()) {
      return absl::UnimplementedError(absl::StrCat(
          "distributed runs (", processes.kind, ", ", processes.count,
          " processes) are not supported on SSH or Slurm targets yet: submit to the local target"));
    }
  }
  RunConfig config = submitted;
  // Each process holds a CPU slot (as a Slurm task does), so a distributed
  // run waits until the machine has room for all of them, and is refused
  // below when it never can.
  if (config.resources().cpus() < processes.count) {
    config.mutable_resources()->set_cpus(processes.count);
  }
  AMLD_RETURN_IF_ERROR(CheckEnvironment(&config));
  {
    absl::MutexLock lock(&mu_);
    AMLD_RETURN_IF_ERROR(ApplyLimitsLocked(&config));
  }
  // With a run id of the length it will have (<experiment>_<seconds>_<8 hex>).
  const std::string sized_id = absl::StrCat(config.experiment_name(), "_0000000000_00000000");
  AMLD_RETURN_IF_ERROR(CheckExecLimits(BuildLaunchSpec(
      sized_id, config, PathsFor(sized_id), options_.base_env, options_.kill_grace)));
  // The snapshot's blobs came in with Durability::kDeferred (Cas service,
  // watched roots): make them durable before the run that needs them is.
  if (const int64_t pending = deps_.cas->PendingSyncCount(); pending > 0) {
    const absl::Time start = absl::Now();
    AMLD_RETURN_IF_ERROR(deps_.cas->SyncPending());
    deps_.log->info("made {} uploaded blobs durable in {:.1f} ms", pending,
                    absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  AMLD_RETURN_IF_ERROR(snapshot_checker_.Check(config));
  return config;
}

absl::StatusOr<Run> RunManager::InsertQueued(const RunConfig& config, uint32_t submitter_uid,
                                             const SubmitOptions& options) {
  amld::storage::NewRun new_run;
  new_run.config = config;
  new_run.submitter_uid = submitter_uid;
  new_run.parent_run_id = options.parent_run_id;
  new_run.now = deps_.clock->Now();
  if (!options.run_id.empty()) {
    new_run.id = options.run_id;
    return deps_.store->InsertRun(new_run);
  }
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
  return run;
}

absl::StatusOr<Run> RunManager::Submit(const RunConfig& submitted, uint32_t submitter_uid,
                                       const SubmitOptions& options) {
  if (IsParentRun(submitted)) {
    return absl::InvalidArgumentError(
        "this config is a sweep (it has a sweep spec); submit it as a sweep, not as a run");
  }
  AMLD_ASSIGN_OR_RETURN(RunConfig config, CheckSubmission(submitted));
  AMLD_ASSIGN_OR_RETURN(Run run, InsertQueued(config, submitter_uid, options));
  deps_.log->info("run {} queued ({})", run.id(),
                  config.script().empty() ? "command" : config.script());
  absl::MutexLock lock(&mu_);
  ++runs_submitted_;
  ActiveRun& active = active_[run.id()];
  active.config = config;
  scheduler_.Enqueue(run.id(), QueueRequestOf(config, submitter_uid));
  StartReadyLocked();
  return run;
}

absl::StatusOr<Run> RunManager::SubmitParent(const RunConfig& submitted, uint32_t submitter_uid) {
  if (!IsParentRun(submitted)) return absl::InvalidArgumentError("a parent run needs a sweep spec");
  RunConfig children = submitted;
  children.clear_sweep();
  AMLD_ASSIGN_OR_RETURN(RunConfig checked, CheckSubmission(children));
  *checked.mutable_sweep() = submitted.sweep();
  AMLD_ASSIGN_OR_RETURN(Run run, InsertQueued(checked, submitter_uid, {}));
  deps_.log->info("parent run {} recorded", run.id());
  return run;
}

absl::StatusOr<Run> RunManager::TransitionParent(const std::string& run_id, RunStatus to,
                                                 const TransitionDetails& details) {
  absl::MutexLock lock(&mu_);
  return TransitionLocked(run_id, to, details);
}

void RunManager::SetParentCancelHandler(ParentCancelHandler handler) {
  absl::MutexLock lock(&mu_);
  parent_cancel_ = std::move(handler);
}

void RunManager::CancelChildren(const std::string& parent_id, const std::string& reason) {
  amld::storage::RunFilter filter;
  filter.parent_run_id = parent_id;
  filter.statuses = amld::storage::UnfinishedStatuses();
  filter.page_size = 1000;
  for (;;) {
    absl::StatusOr<amld::storage::RunPage> page = deps_.store->ListRuns(filter);
    if (!page.ok()) {
      deps_.log->error("run {}: cannot list its children to cancel them: {}", parent_id,
                       page.status().ToString());
      return;
    }
    for (const Run& child : page->runs) {
      absl::StatusOr<Run> canceled =
          Cancel(child.id(), WithReason(absl::StrCat("parent run ", parent_id, " canceled"), reason));
      if (!canceled.ok()) {
        deps_.log->warn("run {}: cancel: {}", child.id(), canceled.status().ToString());
      }
    }
    if (page->next_page_token.empty()) return;
    filter.page_token = page->next_page_token;
  }
}

absl::Status RunManager::CheckEnvironment(RunConfig* config) const {
  config->mutable_environment()->clear_digest();  // the daemon's to set
  if (!IsManagedEnvironment(config->environment())) return absl::OkStatus();
  if (environments_ == nullptr) {
    return absl::UnimplementedError(
        "this daemon does not build managed environments (it has no environment cache); use a "
        "user-managed environment (python.user_managed_dependencies = True)");
  }
  if (!IsLocalTarget(*config)) {
    return absl::UnimplementedError(absl::StrCat(
        "managed environments are built only for the local target yet, not for \"",
        config->compute_target(), "\"; use a user-managed environment whose interpreter on the "
        "target has the packages (python.user_managed_dependencies = True, "
        "python.interpreter_path)"));
  }
  AMLD_ASSIGN_OR_RETURN(EnvironmentSpec spec, environments_->Check(config->environment()));
  config->mutable_environment()->set_digest(SpecDigest(spec));
  return absl::OkStatus();
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
  ParentCancelHandler parent_cancel;
  bool is_parent = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it == active_.end()) {
      // Not scheduled: ended, unknown, or a parent run someone else drives.
      AMLD_ASSIGN_OR_RETURN(Run run, deps_.store->GetRun(run_id));
      if (IsTerminal(run.status()) || !IsParentRun(run.config())) return run;
      is_parent = true;
      parent_cancel = parent_cancel_;
    }
  }
  if (is_parent) {
    if (parent_cancel) parent_cancel(run_id, reason);
    CancelChildren(run_id, reason);
    return deps_.store->GetRun(run_id);
  }
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
  return folders_.PathsFor(run_id);
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
  if (ended && may_have_folder) folders_.Finished(run_id);
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
    const std::string& digest = r.config.environment().digest();
    if (!digest.empty() && environments_ != nullptr && !environments_->Built(digest).ok()) {
      preparing.reason = absl::StrCat("building environment ", ShortDigest(digest));
    }
    if (r.status != Status::PREPARING &&
        !TransitionLocked(run_id, Status::PREPARING, preparing).ok()) {
      return ForgetLocked(run_id);
    }
    config = r.config;
  }
  const amld::storage::Digest snapshot = amld::storage::FromProto(config.snapshot_root());
  const absl::Time prepare_start = absl::Now();
  absl::Status prepared = folders_.Prepare(run_id, snapshot);
  const absl::Duration prepare_time = absl::Now() - prepare_start;
  if (!prepared.ok()) {
    absl::MutexLock lock(&mu_);
    if (!active_.contains(run_id)) return;
    return EndWithoutProcessLocked(
        run_id, Status::FAILED, absl::StrCat("could not prepare the run: ", prepared.message()));
  }
  if (!config.environment().digest().empty()) {
    absl::StatusOr<EnvironmentSpec> spec =
        environments_ == nullptr
            ? absl::FailedPreconditionError("this daemon no longer builds managed environments")
            : environments_->Check(config.environment());
    if (spec.ok()) {
      const RunPaths paths = PathsFor(run_id);
      BuildRequest request{run_id, paths.std_log,
                           paths.system_logs / "environment_build.log"};
      environments_->Acquire(
          *spec, std::move(request),
          [this, run_id, config, gpus, prepare_time](absl::StatusOr<std::filesystem::path> prefix) {
            deps_.tasks->Post([=, this, prefix = std::move(prefix)] {
              FinishPrepare(run_id, config, gpus, prepare_time, prefix);
            });
          });
      return;
    }
    // The daemon's config changed since the submit (a conda tool removed).
    return FinishPrepare(run_id, config, gpus, prepare_time, spec.status());
  }
  FinishPrepare(run_id, config, gpus, prepare_time, std::filesystem::path());
}

void RunManager::FinishPrepare(const std::string& run_id, const RunConfig& config,
                               const std::vector<int>& gpus, absl::Duration prepare_time,
                               absl::StatusOr<std::filesystem::path> prefix) {
  absl::Status prepared = prefix.status();
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it == active_.end()) return;
    ActiveRun& r = it->second;
    if (r.cancel_requested) {
      return EndWithoutProcessLocked(run_id, Status::CANCELED,
                                     WithReason("canceled before it started", r.cancel_reason));
    }
    if (!prepared.ok()) {
      return EndWithoutProcessLocked(
          run_id, Status::FAILED,
          absl::StrCat("could not build environment ",
                       ShortDigest(config.environment().digest()), ": ", prepared.message()));
    }
    // Committed before the launch: after a crash, a STARTING run without a
    // handle is failed, never launched again.
    if (!TransitionLocked(run_id, Status::STARTING, {}).ok()) return ForgetLocked(run_id);
    r.phase = Phase::kStarting;
  }
  Launch(run_id, config, gpus, prepare_time, *prefix);
  // For the next run, now that this one is on its way.
  folders_.Launched(amld::storage::FromProto(config.snapshot_root()));
}

void RunManager::Launch(const std::string& run_id, const RunConfig& config,
                        const std::vector<int>& gpus, absl::Duration prepare_time,
                        const std::filesystem::path& environment_prefix) {
  LaunchSpec spec =
      BuildLaunchSpec(run_id, config, PathsFor(run_id), options_.base_env, options_.kill_grace);
  if (!environment_prefix.empty()) {
    ActivateEnvironment(environment_prefix, config.command().empty(), &spec.argv, &spec.env);
  }
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
    const absl::Status recorded = TransitionLocked(run_id, Status::FINALIZING, details).status();
    if (!recorded.ok()) {
      // Only a database error gets here. A full disk passes: try again.
      if (!MayPassByItself(recorded)) return ForgetLocked(run_id);
      return RecordLaterLocked(run_id, [this, run_id, outcome] {
        absl::MutexLock lock(&mu_);
        if (active_.contains(run_id)) BeginFinalizeLocked(run_id, outcome);
      });
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
  RecordEndLocked(run_id, std::move(outcome));
}

void RunManager::RecordEndLocked(const std::string& run_id, FinalOutcome outcome) {
  if (!active_.contains(run_id)) return;
  TransitionDetails details;
  if (!outcome.error.empty()) details.error = outcome.error;
  const absl::Status ended = TransitionLocked(run_id, outcome.status, details).status();
  if (!ended.ok() && MayPassByItself(ended)) {
    // Its outputs are stored; only its end is left to record.
    return RecordLaterLocked(run_id, [this, run_id, outcome] {
      absl::MutexLock lock(&mu_);
      RecordEndLocked(run_id, outcome);
    });
  }
  deps_.log->info("run {} {}{}", run_id, StatusName(outcome.status),
                  outcome.error.empty() ? "" : " (" + outcome.error + ")");
  ForgetLocked(run_id);  // the next run's Prepare is posted before any removal
  if (ended.ok()) folders_.Finished(run_id);
}

bool RunManager::MayPassByItself(const absl::Status& error) {
  // SQLITE_FULL is RESOURCE_EXHAUSTED; I/O errors and a busy database are
  // INTERNAL, UNAVAILABLE or ABORTED. An illegal transition or a missing run
  // (FAILED_PRECONDITION, NOT_FOUND) never passes.
  return absl::IsResourceExhausted(error) || absl::IsUnavailable(error) ||
         absl::IsInternal(error) || absl::IsAborted(error);
}

void RunManager::RecordLaterLocked(const std::string& run_id, std::function<void()> again) {
  ActiveRun& r = active_.at(run_id);
  r.record_retry = r.record_retry == absl::ZeroDuration()
                       ? options_.record_retry
                       : std::min(r.record_retry * 2, kLastRecordRetry);
  const absl::Duration pause = r.record_retry;
  deps_.log->warn("run {}: its status could not be recorded; trying again in {:.1f} s (it keeps "
                  "its slot until then; free space under the data dir if it is full)",
                  run_id, absl::ToDoubleSeconds(pause));
  deps_.tasks->Post([pause, again = std::move(again)] {
    absl::SleepFor(pause);
    again();
  });
}

}  // namespace amld::daemon
