#include "daemon/sweeps/sweep_controller.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "daemon/sweeps/bayesian.h"
#include "daemon/sweeps/parameter_space.h"
#include "daemon/sweeps/policies.h"
#include "spdlog/spdlog.h"

namespace amld::daemon {
namespace {

namespace pb = amld::v1;
using amld::storage::IsTerminal;
using amld::storage::RunStatus;
using amld::storage::TransitionDetails;
using Status = amld::v1::RunStatus;

std::string ChildId(const std::string& parent_id, int64_t index) {
  return absl::StrCat(parent_id, "_", index);
}

// The index in "<parent>_<index>", or -1 for a child not named so.
int64_t ChildIndex(const std::string& parent_id, const std::string& child_id) {
  int64_t index = -1;
  if (!absl::StartsWith(child_id, parent_id + "_") ||
      !absl::SimpleAtoi(absl::string_view(child_id).substr(parent_id.size() + 1), &index)) {
    return -1;
  }
  return index;
}

SweepControllerDeps WithDefaults(SweepControllerDeps deps) {
  if (deps.log == nullptr) deps.log = std::make_shared<spdlog::logger>("amld-sweeps");
  return deps;
}

absl::Time StartedAt(const pb::Run& run) {
  for (const pb::StatusTransition& t : run.history()) {
    if (t.status() == Status::RUNNING) {
      return absl::FromUnixSeconds(t.time().seconds()) + absl::Nanoseconds(t.time().nanos());
    }
  }
  return absl::FromUnixSeconds(run.created_time().seconds()) +
         absl::Nanoseconds(run.created_time().nanos());
}

}  // namespace

SweepController::SweepController(SweepControllerDeps deps, SweepControllerOptions options)
    : deps_(WithDefaults(std::move(deps))), options_(options) {}

SweepController::~SweepController() { Shutdown(); }

int SweepController::active_sweeps() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(sweeps_.size());
}

absl::Status SweepController::Start() {
  deps_.runs->SetParentCancelHandler(
      [this](const std::string& id, const std::string& reason) { OnParentCancel(id, reason); });
  AMLD_ASSIGN_OR_RETURN(std::vector<pb::Run> runs,
                        deps_.store->RunsInStatus(amld::storage::UnfinishedStatuses()));
  std::vector<std::string> canceling;
  {
    absl::MutexLock lock(&mu_);
    for (const pb::Run& run : runs) {
      if (!RunManager::IsParentRun(run.config())) continue;
      Sweep sweep;
      sweep.id = run.id();
      sweep.config = run.config();
      sweep.spec = NormalizeSweepSpec(run.config().sweep());
      sweep.submitter_uid = run.submitter_uid();
      sweep.started = StartedAt(run);
      sweep.cancel_requested = run.status() == Status::CANCEL_REQUESTED;
      if (!sweep.cancel_requested) {
        absl::Status started = StartParentLocked(sweep, run.status());
        if (!started.ok()) {
          deps_.log->error("sweep {}: cannot resume: {}", run.id(), started.ToString());
          continue;
        }
      } else {
        canceling.push_back(sweep.id);
      }
      if (!RefreshChildrenLocked(sweep)) continue;
      // Policies judge only the intervals children reach from now on.
      for (auto& [id, child] : sweep.children) {
        child.evaluated = static_cast<int>(child.values.size());
      }
      deps_.log->info("sweep {}: resumed with {} child run(s)", sweep.id, sweep.children.size());
      sweeps_.emplace(sweep.id, std::move(sweep));
    }
  }
  // The cancel may not have reached every child before the restart.
  for (const std::string& id : canceling) (void)deps_.runs->Cancel(id, "");
  return absl::OkStatus();
}

absl::Status SweepController::StartParentLocked(Sweep& sweep, RunStatus status) {
  TransitionDetails details;
  details.reason = "sweep started";
  for (RunStatus next : {Status::PREPARING, Status::STARTING, Status::RUNNING}) {
    if (status >= next && status != Status::CANCEL_REQUESTED) continue;
    AMLD_RETURN_IF_ERROR(deps_.runs->TransitionParent(sweep.id, next, details).status());
  }
  return absl::OkStatus();
}

absl::StatusOr<pb::Run> SweepController::Submit(const pb::RunConfig& submitted,
                                                uint32_t submitter_uid) {
  AMLD_RETURN_IF_ERROR(ValidateSweepSpec(submitted.sweep()));
  AMLD_RETURN_IF_ERROR(ValidateChildTemplate(submitted));
  pb::RunConfig config = submitted;
  if (config.sweep().sampling() != pb::SamplingAlgorithm::GRID && !config.sweep().has_seed()) {
    // Recorded with the parent before the first draw, so a resumed sweep
    // draws the same sequence.
    config.mutable_sweep()->set_seed(absl::Uniform<uint64_t>(absl::BitGen()));
  }
  AMLD_ASSIGN_OR_RETURN(pb::Run parent, deps_.runs->SubmitParent(config, submitter_uid));
  {
    absl::MutexLock lock(&mu_);
    Sweep sweep;
    sweep.id = parent.id();
    sweep.config = parent.config();
    sweep.spec = NormalizeSweepSpec(parent.config().sweep());
    sweep.submitter_uid = submitter_uid;
    sweep.started = deps_.clock->Now();
    absl::Status started = StartParentLocked(sweep, Status::QUEUED);
    if (!started.ok()) return started;
    deps_.log->info("sweep {}: started ({} runs at most, {} at a time)", sweep.id,
                    sweep.spec.max_total_runs(), sweep.spec.max_concurrent_runs());
    Sweep& s = sweeps_.emplace(sweep.id, std::move(sweep)).first->second;
    StepSweepLocked(s);  // the first children, or the sweep FAILED saying why
    absl::StatusOr<pb::Run> now = deps_.store->GetRun(parent.id());
    if (now.ok() && IsTerminal(now->status())) {
      DropListenersLocked(s);
      sweeps_.erase(parent.id());
    }
  }
  Wake();
  return deps_.store->GetRun(parent.id());
}

void SweepController::OnParentCancel(const std::string& run_id, const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    auto it = sweeps_.find(run_id);
    if (it == sweeps_.end() || it->second.cancel_requested) return;
    it->second.cancel_requested = true;
    TransitionDetails details;
    details.reason = reason;
    absl::Status s = deps_.runs->TransitionParent(run_id, Status::CANCEL_REQUESTED, details).status();
    if (!s.ok()) deps_.log->error("sweep {}: cannot record the cancel: {}", run_id, s.ToString());
    deps_.log->info("sweep {}: cancel requested{}", run_id, reason.empty() ? "" : ": " + reason);
  }
  Wake();
}

void SweepController::Step() {
  absl::MutexLock lock(&mu_);
  for (auto it = sweeps_.begin(); it != sweeps_.end();) {
    StepSweepLocked(it->second);
    absl::StatusOr<pb::Run> parent = deps_.store->GetRun(it->first);
    if (!parent.ok() || IsTerminal(parent->status())) {
      DropListenersLocked(it->second);
      it = sweeps_.erase(it);
    } else {
      ++it;
    }
  }
}

void SweepController::StepSweepLocked(Sweep& sweep) {
  if (!RefreshChildrenLocked(sweep)) return;
  if (!sweep.cancel_requested) {
    ApplyPolicyLocked(sweep);
    const int64_t limit = sweep.spec.max_duration_minutes();
    if (!sweep.time_up && limit > 0 && deps_.clock->Now() - sweep.started >= absl::Minutes(limit)) {
      sweep.time_up = true;
      deps_.log->info("sweep {}: max_duration_minutes ({}) reached", sweep.id, limit);
      for (auto& [id, child] : sweep.children) {
        if (!IsTerminal(child.status)) {
          CancelChildLocked(sweep, id, child,
                            absl::StrCat("the sweep reached its max_duration_minutes (", limit, ")"));
        }
      }
    }
    if (!sweep.time_up && !SubmitChildrenLocked(sweep)) return;
  }
  MaybeFinishLocked(sweep);
}

bool SweepController::RefreshChildrenLocked(Sweep& sweep) {
  amld::storage::RunFilter filter;
  filter.parent_run_id = sweep.id;
  filter.page_size = 1000;
  for (;;) {
    absl::StatusOr<amld::storage::RunPage> page = deps_.store->ListRuns(filter);
    if (!page.ok()) {
      deps_.log->error("sweep {}: cannot list its children: {}", sweep.id, page.status().ToString());
      return false;
    }
    for (const pb::Run& run : page->runs) {
      auto [it, added] = sweep.children.try_emplace(run.id());
      Child& child = it->second;
      if (added) {
        child.index = ChildIndex(sweep.id, run.id());
        if (auto tag = run.config().tags().find(kSweepPointTag); tag != run.config().tags().end()) {
          child.point = ParsePoint(tag->second, sweep.spec.parameters_size());
        }
        sweep.next_index = std::max(sweep.next_index, child.index + 1);
        if (!IsTerminal(run.status())) {
          absl::StatusOr<RunManager::Subscription> sub =
              deps_.runs->Subscribe(run.id(), [this](const pb::Run& r) {
                if (IsTerminal(r.status())) Wake();
              });
          if (sub.ok()) child.listener = sub->listener_id;
        }
      }
      const bool was_terminal = !added && IsTerminal(child.status);
      child.status = run.status();
      if (was_terminal) continue;  // its values are final
      absl::StatusOr<std::vector<pb::Metric>> metrics =
          deps_.store->GetMetrics(run.id(), {sweep.spec.primary_metric_name()});
      if (!metrics.ok()) continue;
      child.values.clear();
      for (const pb::Metric& m : *metrics) {
        if (m.has_number()) child.values.push_back(m.number());
      }
      if (IsTerminal(child.status) && child.listener != 0) {
        deps_.runs->Unsubscribe(run.id(), child.listener);
        child.listener = 0;
      }
    }
    if (page->next_page_token.empty()) return true;
    filter.page_token = page->next_page_token;
  }
}

void SweepController::ApplyPolicyLocked(Sweep& sweep) {
  const pb::EarlyTerminationPolicy& policy = sweep.spec.policy();
  if (policy.policy_case() == pb::EarlyTerminationPolicy::POLICY_NOT_SET) return;
  std::vector<std::vector<double>> series;
  std::vector<std::string> ids;
  for (const auto& [id, child] : sweep.children) {
    series.push_back(child.values);
    ids.push_back(id);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    Child& child = sweep.children.at(ids[i]);
    if (IsTerminal(child.status) || child.stopped) continue;
    const int reached = static_cast<int>(child.values.size());
    for (int k = child.evaluated + 1; k <= reached; ++k) {
      std::optional<std::string> why =
          PolicyStops(policy, sweep.spec.primary_metric_goal(), series, i, k);
      if (why) {
        deps_.log->info("sweep {}: run {} {}", sweep.id, ids[i], *why);
        CancelChildLocked(sweep, ids[i], child, *why);
        break;
      }
    }
    child.evaluated = reached;
  }
}

void SweepController::CancelChildLocked(Sweep& sweep, const std::string& child_id, Child& child,
                                        const std::string& reason) {
  child.stopped = true;
  absl::StatusOr<pb::Run> run = deps_.runs->Cancel(child_id, reason);
  if (!run.ok()) {
    deps_.log->warn("sweep {}: cannot cancel run {}: {}", sweep.id, child_id,
                    run.status().ToString());
    return;
  }
  child.status = run->status();
}

bool SweepController::SubmitChildrenLocked(Sweep& sweep) {
  int unfinished = 0;
  for (const auto& [id, child] : sweep.children) unfinished += IsTerminal(child.status) ? 0 : 1;
  while (sweep.next_index < sweep.spec.max_total_runs() &&
         unfinished < sweep.spec.max_concurrent_runs()) {
    const int64_t index = sweep.next_index;
    pb::RunConfig child;
    switch (sweep.spec.sampling()) {
      case pb::SamplingAlgorithm::GRID:
        child = ChildConfig(sweep.config, GridAssignment(sweep.spec, index));
        break;
      case pb::SamplingAlgorithm::BAYESIAN: {
        std::vector<Observation> observed;
        const bool maximize = sweep.spec.primary_metric_goal() == pb::PrimaryMetricGoal::MAXIMIZE;
        for (const auto& [id, c] : sweep.children) {
          if (c.status != Status::COMPLETED || c.values.empty() || !c.point) continue;
          observed.push_back({*c.point, maximize ? *std::max_element(c.values.begin(), c.values.end())
                                                 : *std::min_element(c.values.begin(), c.values.end())});
        }
        const std::vector<double> point =
            NextBayesianPoint(sweep.spec, sweep.spec.seed(), index, observed);
        child = ChildConfig(sweep.config, AssignmentOfPoint(sweep.spec, point));
        (*child.mutable_tags())[kSweepPointTag] = FormatPoint(point);
        break;
      }
      default:
        child = ChildConfig(sweep.config, RandomAssignment(sweep.spec, sweep.spec.seed(), index));
    }
    RunSubmitOptions options{sweep.id, ChildId(sweep.id, index)};
    absl::StatusOr<pb::Run> run = deps_.runs->Submit(child, sweep.submitter_uid, options);
    if (!run.ok() && !absl::IsAlreadyExists(run.status())) {
      FailLocked(sweep, absl::StrCat("could not submit child run ", options.run_id, ": ",
                                     run.status().message()));
      return false;
    }
    sweep.next_index = index + 1;
    ++unfinished;
    // Read back from the store on the next refresh (subscribed there).
    if (run.ok()) deps_.log->info("sweep {}: run {} queued", sweep.id, run->id());
    if (!RefreshChildrenLocked(sweep)) return false;
  }
  return true;
}

bool SweepController::MaybeFinishLocked(Sweep& sweep) {
  int completed = 0, failed = 0;
  for (const auto& [id, child] : sweep.children) {
    if (!IsTerminal(child.status)) return false;
    completed += child.status == Status::COMPLETED ? 1 : 0;
    failed += child.status == Status::FAILED ? 1 : 0;
  }
  TransitionDetails details;
  if (sweep.cancel_requested) {
    details.error = "canceled";
    (void)deps_.runs->TransitionParent(sweep.id, Status::CANCELED, details);
    deps_.log->info("sweep {}: CANCELED", sweep.id);
    return true;
  }
  const bool more = !sweep.time_up && sweep.next_index < sweep.spec.max_total_runs();
  if (more) return false;
  if (failed > 0 && failed == static_cast<int>(sweep.children.size())) {
    FailLocked(sweep, absl::StrCat("every child run failed (", failed, "); see ",
                                   sweep.children.begin()->first, " for why"));
    return true;
  }
  details.reason = absl::StrCat(completed, " of ", sweep.children.size(), " child runs completed");
  // FINALIZING may be recorded already (a restart between the two).
  (void)deps_.runs->TransitionParent(sweep.id, Status::FINALIZING, details);
  if (!deps_.runs->TransitionParent(sweep.id, Status::COMPLETED, {}).ok()) return false;
  deps_.log->info("sweep {}: COMPLETED ({})", sweep.id, details.reason);
  return true;
}

void SweepController::FailLocked(Sweep& sweep, const std::string& error) {
  for (auto& [id, child] : sweep.children) {
    if (!IsTerminal(child.status)) CancelChildLocked(sweep, id, child, "the sweep failed");
  }
  TransitionDetails details;
  details.error = error;
  (void)deps_.runs->TransitionParent(sweep.id, Status::FAILED, details);
  deps_.log->error("sweep {}: FAILED: {}", sweep.id, error);
}

void SweepController::DropListenersLocked(Sweep& sweep) {
  for (auto& [id, child] : sweep.children) {
    if (child.listener != 0) deps_.runs->Unsubscribe(id, child.listener);
    child.listener = 0;
  }
}

void SweepController::Wake() {
  absl::MutexLock lock(&wake_mu_);
  woken_ = true;
}

void SweepController::StartThread() {
  thread_ = std::thread([this] { Loop(); });
}

void SweepController::Shutdown() {
  {
    absl::MutexLock lock(&wake_mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  for (auto& [id, sweep] : sweeps_) DropListenersLocked(sweep);
}

void SweepController::Loop() {
  for (;;) {
    const bool active = active_sweeps() > 0;
    {
      absl::MutexLock lock(&wake_mu_);
      const absl::Condition ready(this, &SweepController::WokenOrStopping);
      if (active) {
        wake_mu_.AwaitWithTimeout(ready, options_.poll_interval);
      } else {
        wake_mu_.Await(ready);
      }
      if (stopping_) return;
      woken_ = false;
    }
    Step();
  }
}

}  // namespace amld::daemon
