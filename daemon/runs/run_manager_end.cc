// RunManager, part 3 of 3: a run from its process's exit through FINALIZING (its
// files stored) to its end, and recording that end even on a full disk (run_manager.h).
#include "daemon/runs/run_manager.h"

#include <algorithm>
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

}  // namespace

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
  if (final_outcome.exit_code == kRemoteBuildFailedExit && !IsLocalTarget(r.config) &&
      !r.config.environment().digest().empty()) {
    // The exit of the environment script (env_remote.h), not of the process.
    final_outcome.error = absl::StrCat(
        "could not build environment ", ShortDigest(r.config.environment().digest()),
        " on the target (exit code ", kRemoteBuildFailedExit, "); the run's log has pip's output");
  }
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
  // The script's run.fail(details) (a "fail" line of its metrics file,
  // all of which Finish has read) makes the run FAILED whatever its exit.
  absl::StatusOr<std::optional<std::string>> failure = deps_.store->RequestedFailure(run_id);
  if (failure.ok() && failure->has_value()) {
    std::string what = absl::StrCat("the script called run.fail()",
                                    (*failure)->empty() ? "" : ": ", **failure);
    outcome.error = outcome.status == Status::COMPLETED || outcome.error.empty()
                        ? what
                        : absl::StrCat(outcome.error, "; ", what);
    if (outcome.status == Status::COMPLETED) outcome.status = Status::FAILED;
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
