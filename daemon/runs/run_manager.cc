// RunManager, part 1 of 3: construction, submit (runs and sweep parents),
// cancel, subscriptions and counters, and the transitions they share. Part 2,
// run_manager_start.cc, takes a run from PREPARING to RUNNING; part 3,
// run_manager_end.cc, from its exit to the end.
#include "daemon/runs/run_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "daemon/executors/run_as.h"
#include "daemon/ingest/live_ingester.h"
#include "daemon/runs/run_manager_internal.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {
namespace {

using amld::storage::IsTerminal;
using amld::storage::RunStatus;
using amld::storage::StatusName;
using amld::storage::TransitionDetails;
using amld::v1::Run;
using amld::v1::RunConfig;
using run_manager_internal::IsLocalTarget;
using run_manager_internal::WithReason;
using Status = amld::v1::RunStatus;

constexpr int kRunIdAttempts = 8;

TargetCapacity CapacityOf(const RunManagerOptions& o) {
  const int runs = std::max(o.max_concurrent_runs, 1);
  return TargetCapacity{runs, o.cpus > 0 ? o.cpus : runs, o.gpus};
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
      scheduler_(CapacityOf(options_), options_.user_limits) {
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

absl::StatusOr<RunConfig> RunManager::CheckSubmission(const RunConfig& submitted,
                                                      uint32_t submitter_uid) {
  AMLD_RETURN_IF_ERROR(ValidateRunConfig(submitted));
  const LaunchSpec::Processes processes = ProcessesOf(submitted);
  bool slurm = false;
  if (!submitted.compute_target().empty()) {  // NOT_FOUND naming it when undefined
    AMLD_ASSIGN_OR_RETURN(amld::v1::ComputeTarget target,
                          deps_.store->GetComputeTarget(submitted.compute_target()));
    slurm = target.has_slurm();
  }
  if (processes.nodes > 1 && !slurm) {
    return absl::UnimplementedError(absl::StrCat(
        "a distributed run on ", processes.nodes,
        " nodes needs a Slurm target (local and SSH targets are one machine each: node_count 1); "
        "attach one with "
        "`aml compute create NAME --type slurm --workdir SHARED_DIR` and submit to it"));
  }
  if (processes.nodes > 1 && submitted.resources().gpus() % processes.nodes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resources.gpus ", submitted.resources().gpus(), " is the run's total, shared out over its ",
        processes.nodes, " nodes: ask for a multiple of ", processes.nodes, " (e.g. ",
        processes.nodes * std::max(1, submitted.resources().gpus() / processes.nodes), ")"));
  }
  RunConfig config = submitted;
  // amld.yaml default_gpus, for a local run that asked for nothing (an
  // explicit request, even for 0 GPUs, is kept).
  if (options_.default_gpus > 0 && !submitted.has_resources() && IsLocalTarget(submitted) &&
      !submitted.interactive() && !submitted.has_sweep()) {
    config.mutable_resources()->set_gpus(options_.default_gpus);
  }
  // Each process holds a CPU slot (as a Slurm task does), so a distributed
  // run waits until the machine has room for all of them, and is refused
  // below when it never can.
  if (config.resources().cpus() < processes.count) {
    config.mutable_resources()->set_cpus(processes.count);
  }
  AMLD_RETURN_IF_ERROR(CheckEnvironment(&config, submitter_uid));
  {
    absl::MutexLock lock(&mu_);
    AMLD_RETURN_IF_ERROR(ApplyLimitsLocked(&config));
  }
  // With a run id of the length it will have (<experiment>_<seconds>_<8 hex>).
  const std::string sized_id = absl::StrCat(config.experiment_name(), "_0000000000_00000000");
  // Other targets keep their login environment: stored, it would only
  // mislead whoever reads the run.
  if (!IsLocalTarget(config)) config.clear_submitter_environment();
  if (config.has_submitter_environment()) {
    FilterSubmitterEnvironment(options_.submitter_env, config.mutable_submitter_environment());
  }
  LaunchSpec sized = BuildLaunchSpec(sized_id, config, PathsFor(sized_id), options_.base_env,
                                     options_.kill_grace);
  UseSubmitterEnvironment(sized_id, config, PathsFor(sized_id), &sized);
  AMLD_RETURN_IF_ERROR(CheckExecLimits(sized));
  if (options_.run_as_submitter && !IsLocalTarget(config)) {
    // Asked as the submitter, as the launch will be: what a cluster lets
    // one user run (partitions, limits) it may not let another.
    AMLD_ASSIGN_OR_RETURN(sized.run_as, LookupAccount(submitter_uid));
  }
  // A request the target can never hold is refused now, not when it
  // reaches the front of the queue (the Slurm executor asks sbatch).
  AMLD_RETURN_IF_ERROR(deps_.executor->CheckCanEverHold(sized));
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
  if (IsInteractive(submitted)) return SubmitInteractive(submitted, submitter_uid, options);
  AMLD_ASSIGN_OR_RETURN(RunConfig config, CheckSubmission(submitted, submitter_uid));
  AMLD_ASSIGN_OR_RETURN(Run run, InsertQueued(config, submitter_uid, options));
  deps_.log->info("run {} queued ({})", run.id(),
                  config.script().empty() ? "command" : config.script());
  absl::MutexLock lock(&mu_);
  ++runs_submitted_;
  ActiveRun& active = active_[run.id()];
  active.config = config;
  active.submitter_uid = submitter_uid;
  scheduler_.Enqueue(run.id(), QueueRequestOf(config, submitter_uid));
  StartReadyLocked();
  return run;
}

absl::StatusOr<Run> RunManager::SubmitParent(const RunConfig& submitted, uint32_t submitter_uid) {
  if (!IsParentRun(submitted)) return absl::InvalidArgumentError("a parent run needs a sweep spec");
  RunConfig children = submitted;
  children.clear_sweep();
  AMLD_ASSIGN_OR_RETURN(RunConfig checked, CheckSubmission(children, submitter_uid));
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

absl::StatusOr<Run> RunManager::SubmitInteractive(const RunConfig& config,
                                                  uint32_t submitter_uid,
                                                  const SubmitOptions& options) {
  if (!config.script().empty() || !config.command().empty() || config.has_snapshot_root() ||
      config.has_sweep() || config.has_distributed()) {
    return absl::InvalidArgumentError(
        "an interactive run (start_logging) runs no process: leave script, command, snapshot, "
        "sweep and distributed unset");
  }
  AMLD_ASSIGN_OR_RETURN(Run run, InsertQueued(config, submitter_uid, options));
  absl::MutexLock lock(&mu_);
  for (RunStatus to : {Status::PREPARING, Status::STARTING, Status::RUNNING}) {
    AMLD_ASSIGN_OR_RETURN(
        run, TransitionLocked(run.id(), to,
                              {.reason = "interactive run (start_logging): no process",
                               .placement = std::string("interactive")}));
  }
  deps_.log->info("interactive run {} started", run.id());
  return run;
}

absl::StatusOr<Run> RunManager::EndInteractive(const std::string& run_id, RunStatus to,
                                               const std::string& error) {
  if (to != Status::COMPLETED && to != Status::FAILED && to != Status::CANCELED) {
    return absl::InvalidArgumentError("an interactive run ends COMPLETED, FAILED or CANCELED");
  }
  absl::MutexLock lock(&mu_);
  AMLD_ASSIGN_OR_RETURN(Run run, deps_.store->GetRun(run_id));
  if (!IsInteractive(run.config())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", run_id, " has a process: it ends when its process does (cancel it to stop it)"));
  }
  if (IsTerminal(run.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " has ended already (", StatusName(run.status()), ")"));
  }
  const RunStatus via = to == Status::CANCELED  ? Status::CANCEL_REQUESTED
                     : to == Status::COMPLETED ? Status::FINALIZING
                                               : Status::RUNNING;
  if (via != Status::RUNNING && run.status() != via) {
    AMLD_RETURN_IF_ERROR(TransitionLocked(run_id, via, {}).status());
  }
  TransitionDetails details;
  if (to == Status::FAILED) details.error = error.empty() ? "run.fail() was called" : error;
  return TransitionLocked(run_id, to, details);
}

void RunManager::SetParentCancelHandler(ParentCancelHandler handler) {
  absl::MutexLock lock(&mu_);
  parent_cancel_ = std::move(handler);
}

absl::StatusOr<std::vector<std::string>> RunManager::Delete(const std::string& run_id,
                                                           uint32_t caller_uid) {
  AMLD_ASSIGN_OR_RETURN(Run run, deps_.store->GetRun(run_id));
  if (caller_uid != 0 && caller_uid != run.submitter_uid()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "run ", run_id, " was submitted by uid ", run.submitter_uid(), ": only they (or root) may "
        "delete it"));
  }
  std::vector<std::string> ids = {run_id};
  amld::storage::RunFilter filter;
  filter.parent_run_id = run_id;
  filter.page_size = 1000;
  for (;;) {
    AMLD_ASSIGN_OR_RETURN(amld::storage::RunPage page, deps_.store->ListRuns(filter));
    for (const Run& child : page.runs) {
      if (!IsTerminal(child.status())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "run ", run_id, " has a child that has not ended (", child.id(), ", ",
            StatusName(child.status()), "); cancel the run first (aml run cancel ", run_id, ")"));
      }
      ids.push_back(child.id());
    }
    if (page.next_page_token.empty()) break;
    filter.page_token = page.next_page_token;
  }
  if (!IsTerminal(run.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " is ", StatusName(run.status()),
                     ": only ended runs are deleted; cancel it first (aml run cancel ", run_id,
                     ")"));
  }
  // The children first: their rows name the parent. Each folder goes before
  // its record, so a crash between leaves a record without a folder (read
  // from the store as every ended run is), never a folder of no run.
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    folders_.RemoveFolderOf(*it);
    AMLD_RETURN_IF_ERROR(deps_.store->DeleteRun(*it));
  }
  deps_.log->info("deleted run {}{}", run_id,
                  ids.size() > 1 ? absl::StrCat(" and its ", ids.size() - 1, " children") : "");
  return ids;
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

absl::Status RunManager::CheckEnvironment(RunConfig* config, uint32_t submitter_uid) const {
  config->mutable_environment()->clear_digest();  // the daemon's to set
  if (!IsManagedEnvironment(config->environment())) return absl::OkStatus();
  if (environments_ == nullptr) {
    return absl::UnimplementedError(
        "this daemon does not build managed environments (it has no environment cache); use a "
        "user-managed environment (python.user_managed_dependencies = True)");
  }
  AMLD_ASSIGN_OR_RETURN(
      EnvironmentSpec spec,
      environments_->Check(config->environment(),
                           IsLocalTarget(*config) ? std::optional<uid_t>(submitter_uid)
                                                  : std::nullopt));
  if (!IsLocalTarget(*config) && spec.needs_conda()) {
    // The conda tool of amld.yaml is this machine's; a target's is unknown.
    return absl::UnimplementedError(absl::StrCat(
        "conda packages (", absl::StrJoin(spec.conda_packages, ", "),
        ") are built only for the local target yet, not for \"", config->compute_target(),
        "\": on SSH and Slurm targets an environment is a venv with pip packages; move them to "
        "pip_packages or use a user-managed environment (python.interpreter_path)"));
  }
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
  bool is_interactive = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(run_id);
    if (it == active_.end()) {
      // Not scheduled: ended, unknown, or a parent run someone else drives.
      AMLD_ASSIGN_OR_RETURN(Run run, deps_.store->GetRun(run_id));
      is_interactive = !IsTerminal(run.status()) && IsInteractive(run.config());
      if (!is_interactive && (IsTerminal(run.status()) || !IsParentRun(run.config()))) return run;
      is_parent = true;
      parent_cancel = parent_cancel_;
    }
  }
  if (is_interactive) return EndInteractive(run_id, Status::CANCELED, reason);
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
  return LocalTargetState{scheduler_.capacity(), scheduler_.free_cpus(), scheduler_.free_gpus(),
                          scheduler_.Usage()};
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
  if (environments_ != nullptr) environments_->Release(run_id);  // its lease, if any
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

}  // namespace amld::daemon
