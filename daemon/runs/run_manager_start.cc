// RunManager, part 2 of 3: a run from PREPARING (its snapshot and environment) through
// STARTING to RUNNING, on a task thread (run_manager.h).
#include "daemon/runs/run_manager.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "daemon/envs/env_remote.h"
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

// The managed environment a run names, as the builder reads it; refused when
// this daemon was started without one (its runs were accepted by an earlier
// daemon). Both the local build (Prepare) and the remote one (Launch) ask.
absl::StatusOr<EnvironmentSpec> CheckManagedEnvironment(EnvironmentBuilder* environments,
                                                        const RunConfig& config) {
  if (environments == nullptr) {
    return absl::FailedPreconditionError("this daemon no longer builds managed environments");
  }
  return environments->Check(config.environment());
}

}  // namespace

// ---------------------------------------------------------------------------
// PREPARING → STARTING → RUNNING, on a task thread.

void RunManager::Prepare(const std::string& run_id) {
  RunConfig config;
  std::vector<int> gpus;
  uint32_t submitter_uid = 0;
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
    if (!digest.empty() && environments_ != nullptr && IsLocalTarget(r.config)) {
      absl::StatusOr<EnvironmentSpec> spec = environments_->Check(r.config.environment());
      if (!spec.ok() || !environments_->Built(*spec, r.submitter_uid).ok()) {
        preparing.reason = absl::StrCat("building environment ", ShortDigest(digest));
      }
    }
    if (r.status != Status::PREPARING &&
        !TransitionLocked(run_id, Status::PREPARING, preparing).ok()) {
      return ForgetLocked(run_id);
    }
    config = r.config;
    submitter_uid = r.submitter_uid;
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
  // Another target's environment is built there, by the run's own process
  // (Launch, env_remote.h).
  if (!config.environment().digest().empty() && IsLocalTarget(config)) {
    absl::StatusOr<EnvironmentSpec> spec =
        CheckManagedEnvironment(environments_.get(), config);
    if (spec.ok()) {
      const RunPaths paths = PathsFor(run_id);
      // In system mode the submitter's: built as them, in their cache (or
      // the shared one, for a spec that decides its content).
      BuildRequest request{run_id, paths.std_log, paths.system_logs / "environment_build.log",
                           submitter_uid};
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
  if (IsLocalTarget(config)) UseSubmitterEnvironment(run_id, config, PathsFor(run_id), &spec);
  if (!environment_prefix.empty()) {
    ActivateEnvironment(environment_prefix, config.command().empty(), &spec.argv, &spec.env);
  } else if (!config.environment().digest().empty() && !IsLocalTarget(config)) {
    absl::StatusOr<EnvironmentSpec> env_spec =
        CheckManagedEnvironment(environments_.get(), config);
    if (!env_spec.ok()) {
      absl::MutexLock lock(&mu_);
      if (!active_.contains(run_id)) return;
      return EndWithoutProcessLocked(
          run_id, Status::FAILED,
          absl::StrCat("could not build environment ", ShortDigest(config.environment().digest()),
                       ": ", env_spec.status().message()));
    }
    UseRemoteEnvironment(*env_spec, options_.environments, config.command().empty(), &spec);
  }
  if (IsLocalTarget(config)) SetVisibleGpus(gpus, &spec);
  if (IsLocalTarget(config) && gpus.empty() && !options_.gpus.empty()) {
    // Before the process: the run's output appends after this line.
    const std::filesystem::path log = PathsFor(run_id).std_log;
    const std::string notice = NoGpuNotice(options_.gpus);
    std::ofstream out(log, std::ios::binary | std::ios::app);
    if (!out.write(notice.data(), static_cast<std::streamsize>(notice.size())).flush()) {
      spdlog::warn("run {}: could not write the no-GPU notice to {}", run_id, log.string());
    }
  }
  if (options_.run_as_submitter) {
    uint32_t uid;
    {
      absl::MutexLock lock(&mu_);
      auto it = active_.find(run_id);
      if (it == active_.end()) return;
      uid = it->second.submitter_uid;
    }
    absl::StatusOr<RunAs> account = LookupAccount(uid);
    if (!account.ok()) {
      absl::MutexLock lock(&mu_);
      if (!active_.contains(run_id)) return;
      return EndWithoutProcessLocked(run_id, Status::FAILED,
                                     absl::StrCat("could not start: ", account.status().message()));
    }
    SetAccountEnvironment(*account, &spec.env);
    spec.run_as = std::move(*account);
  }
  AddAzuremlAlias(options_.azureml_alias_dir, config, &spec);
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
    // RUNNING carries the handle in its own commit; a run that stays
    // STARTING or was canceled meanwhile stores it alone.
    const bool becomes_running = !r.cancel_requested && !r.waiting_elsewhere;
    if (!becomes_running) SaveHandleLocked(run_id, *handle);
    r.phase = Phase::kRunning;
    if (!r.cancel_requested && r.waiting_elsewhere) {
      // Handed to another scheduler (Slurm): STARTING until it runs there.
      SetPlacementLocked(run_id, r.waiting_placement);
      deps_.log->info("run {} handed on ({}); prepared in {:.2f} ms, launched in {:.2f} ms", run_id,
                      r.waiting_placement, absl::ToDoubleMilliseconds(prepare_time),
                      absl::ToDoubleMilliseconds(launch_time));
    } else if (becomes_running) {
      TransitionDetails details;
      details.placement = placement;
      details.handle = *handle;
      // Failed, the status stays STARTING: the handle alone still lets a
      // restart re-adopt the run.
      if (!TransitionLocked(run_id, Status::RUNNING, details).ok()) {
        SaveHandleLocked(run_id, *handle);
      }
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

void RunManager::SaveHandleLocked(const std::string& run_id, const std::string& handle) {
  absl::Status saved = deps_.store->SetRunHandle(run_id, handle);
  if (!saved.ok()) {
    // The run goes on; only a daemon restart before it ends would lose it.
    deps_.log->error("run {}: cannot persist its handle: {}", run_id, saved.ToString());
  }
}

}  // namespace amld::daemon
