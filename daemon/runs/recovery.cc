#include "daemon/runs/recovery.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "daemon/executors/run_as.h"
#include "daemon/ingest/live_ingester.h"
#include "daemon/runs/run_manager.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {

using amld::storage::RunStatus;
using amld::storage::StatusName;
using amld::storage::TransitionDetails;
using amld::v1::Run;
using Status = amld::v1::RunStatus;

RecoveryStep DecideRecovery(RunStatus status, bool has_handle) {
  using Action = RecoveryStep::Action;
  RecoveryStep step;
  if (status == Status::QUEUED) {
    step.action = Action::kRequeue;
  } else if (status == Status::PREPARING) {
    step.action = Action::kPrepareAgain;
  } else if (has_handle) {
    step.action = Action::kReattach;
    step.cancel_again = status == Status::CANCEL_REQUESTED;
  } else {
    step.action = Action::kEnd;
    if (status == Status::STARTING) {
      step.error =
          "the daemon stopped while starting this run, before it could record the process; it "
          "may or may not have run. Resubmit it";
    } else if (status == Status::CANCEL_REQUESTED) {
      step.end_status = Status::CANCELED;
      step.error = "canceled; the daemon restarted before the run started";
    } else {
      step.error = "daemon lost the run: no process handle was recorded";
    }
  }
  return step;
}

std::string NoLongerFitsError(absl::string_view why) {
  return absl::StrCat("the daemon's capacity changed while the run was queued: ", why);
}

std::string ReattachFailedError(absl::string_view why) {
  return absl::StrCat("daemon lost the run after a restart: ", why);
}

// ---------------------------------------------------------------------------
// The run manager's half: applying the steps to its queue and executor.

absl::Status RunManager::Start() {
  deps_.executor->SetExitCallback(
      [this](const std::string& run_id, absl::StatusOr<ExitStatus> outcome) {
        OnExit(run_id, std::move(outcome));
      });
  deps_.executor->SetProgressCallback(
      [this](const std::string& run_id, const RunProgress& progress) {
        OnProgress(run_id, progress);
      });
  // First: a recovered PREPARING run may take a spare, and runs that end
  // during recovery join the finished folders the pool found.
  folders_.Start();
  if (environments_ != nullptr) AMLD_RETURN_IF_ERROR(environments_->Start());
  if (!options_.environments.registry.empty()) {
    AMLD_ASSIGN_OR_RETURN(registry_, EnvironmentRegistry::Open(options_.environments.registry));
  }
  AMLD_ASSIGN_OR_RETURN(
      std::vector<Run> runs,
      deps_.store->RunsInStatus(amld::storage::UnfinishedStatuses()));
  for (const Run& run : runs) {
    if (IsParentRun(run.config())) continue;  // its driver (daemon/sweeps/) takes it over
    if (IsInteractive(run.config())) continue;  // no process: stays RUNNING for its client
    absl::Status s = Recover(run);
    if (!s.ok()) deps_.log->error("run {}: recovery: {}", run.id(), s.ToString());
  }
  if (!runs.empty()) deps_.log->info("took over {} unfinished run(s)", runs.size());
  absl::MutexLock lock(&mu_);
  recovering_ = false;
  if (environments_ != nullptr) environments_->RequestTrim();  // its runs' leases are held
  StartReadyLocked();
  return absl::OkStatus();
}

// A run launched (or being launched) whose handle was never recorded: the
// executor may still find it (a Slurm job by its name, an SSH run's
// supervisor), and the run is then adopted like any other — or canceled
// again, when that was asked. What was not found stays unfound: never a
// second launch.
absl::StatusOr<std::string> RunManager::FindUnrecorded(const Run& run, std::string* not_found) {
  const std::string& id = run.id();
  // System mode: the executor looks as the submitter (Slurm: their squeue),
  // never with the daemon's rights.
  std::optional<RunAs> run_as;
  if (options_.run_as_submitter) {
    absl::StatusOr<RunAs> account = LookupAccount(run.submitter_uid());
    if (!account.ok()) {
      *not_found = std::string(account.status().message());
      return account.status();
    }
    run_as = std::move(*account);
  }
  absl::StatusOr<std::string> found =
      deps_.executor->FindUnrecorded(id, PathsFor(id).root, run_as);
  if (!found.ok()) {
    if (!absl::IsUnimplemented(found.status())) *not_found = std::string(found.status().message());
    return found;
  }
  absl::Status saved = deps_.store->SetRunHandle(id, *found);
  if (!saved.ok()) deps_.log->error("run {}: cannot persist its handle: {}", id, saved.ToString());
  deps_.log->info("run {}: found it started without a recorded handle; adopting it", id);
  return found;
}

absl::Status RunManager::Recover(const Run& run) {
  using Action = RecoveryStep::Action;
  const std::string& id = run.id();
  const RunStatus status = run.status();
  absl::StatusOr<std::string> handle;
  std::string not_found;  // where the executor looked, for the error
  if (status != Status::QUEUED && status != Status::PREPARING) {
    handle = deps_.store->GetRunHandle(id);
    if (!handle.ok() || handle->empty()) handle = FindUnrecorded(run, &not_found);
  }
  RecoveryStep step = DecideRecovery(status, handle.ok() && !handle->empty());
  if (!not_found.empty()) absl::StrAppend(&step.error, " (", not_found, ")");
  absl::MutexLock lock(&mu_);
  ActiveRun& r = active_[id];
  r.config = run.config();
  r.submitter_uid = run.submitter_uid();
  r.status = status;
  if (step.action == Action::kRequeue) {
    const QueueRequest request = QueueRequestOf(run.config(), run.submitter_uid());
    if (absl::Status fits = scheduler_.CheckFits(request.resources); !fits.ok()) {
      EndWithoutProcessLocked(id, Status::FAILED, NoLongerFitsError(fits.message()));
    } else {
      scheduler_.Enqueue(id, request);
    }
    return absl::OkStatus();
  }
  scheduler_.Adopt(id, ResourcesOf(run.config()),
                   std::vector<int>(run.assigned_gpus().begin(), run.assigned_gpus().end()),
                   run.submitter_uid());
  if (step.action == Action::kPrepareAgain) {
    r.phase = Phase::kPreparing;
    deps_.tasks->Post([this, id] { Prepare(id); });
    return absl::OkStatus();
  }
  if (step.action == Action::kEnd) {
    EndWithoutProcessLocked(id, step.end_status, step.error);
    return absl::OkStatus();
  }
  // The launch finished (its handle is stored), so the process exists or
  // existed, unless it still waits in another scheduler's queue (the
  // executor says so during Reattach): then RUNNING comes with its start.
  r.phase = Phase::kRunning;
  r.cancel_requested = step.cancel_again;
  // Its environment stays in use until it ends, as before the restart.
  if (environments_ != nullptr && !run.config().environment().digest().empty()) {
    environments_->Hold(run.config().environment().digest(), id, run.submitter_uid());
  }
  const RunPaths paths = PathsFor(id);
  // Reattach may report the exit at once, from the executor's thread, which
  // takes mu_: call it unlocked.
  mu_.Unlock();
  deps_.ingester->Watch(id, paths);  // before an exit reported at once finishes it
  absl::Status attached = deps_.executor->Reattach(id, paths.root, *handle);
  if (attached.ok() && step.cancel_again) {
    absl::Status s = deps_.executor->Cancel(id);
    if (!s.ok()) deps_.log->warn("run {}: cancel: {}", id, s.ToString());
  }
  mu_.Lock();
  if (!attached.ok()) {
    auto it = active_.find(id);
    if (it != active_.end() && it->second.phase == Phase::kRunning) {
      EndWithoutProcessLocked(id, Status::FAILED, ReattachFailedError(attached.message()));
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
