// SweepController: runs sweeps (HyperDrive runs) in the daemon. A sweep is
// a parent run (RunManager::SubmitParent; its RunConfig.sweep is the spec)
// whose children are ordinary runs submitted through RunManager::Submit:
// the same snapshot, target and environment, the parent's arguments plus
// "--name value" per sampled parameter, parent_run_id set and the id
// "<parent id>_<index>" (as azureml's HD_<guid>_<index>).
//
// One Step() over a sweep:
//   1. reads its children from the state store and the primary metric each
//      unfinished child has logged (live ingestion appends metrics to the
//      store while a run runs: daemon/ingest/live_ingester.h);
//   2. applies the early termination policy (policies.h) at each interval a
//      running child newly reached, and cancels the children it stops with
//      the policy's reason (their record: CANCELED, "canceled: stopped early
//      by BanditPolicy(...): ...");
//   3. past max_duration_minutes, cancels the unfinished children and
//      samples no more;
//   4. samples (random, grid, or Bayesian over the completed children:
//      bayesian.h) and submits children until max_concurrent_runs are
//      unfinished or max_total_runs exist;
//   5. ends the parent when every child has ended and no more will come:
//      COMPLETED (FAILED when every child failed), or CANCELED after a
//      cancel of the parent.
//
// Restart: a child is durable (QUEUED in the store) before it runs, and its
// index is in its id, so a daemon killed at any point resumes each sweep
// from its children in the store: the next index is one past the highest,
// random values are a function of (seed, index) (parameter_space.h),
// nothing is sampled twice and nothing lost. Policies resume at the
// intervals children reach after the restart.
//
// The parent's statuses: QUEUED → PREPARING → STARTING → RUNNING when the
// sweep starts (the legal path; it holds no slot), then FINALIZING →
// COMPLETED, or RUNNING → FAILED, or CANCEL_REQUESTED → CANCELED.
//
// Stepping: tests call Step() after moving the fake clock, the fake
// executor and the metrics in the store. The daemon starts a thread
// (StartThread) that steps when a child changes status and every
// poll_interval while a sweep is unfinished (metrics have no push
// notification); with no sweep unfinished it sleeps until one is submitted.
//
// Thread-safety: thread-safe. Lock order: the controller's mutex, then the
// run manager's; run listeners only take wake_mu_.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "amld/v1/runs.pb.h"
#include "base/clock.h"
#include "daemon/runs/run_manager.h"
#include "storage/state/state_store.h"

namespace spdlog {
class logger;
}

namespace amld::daemon {

struct SweepControllerDeps {
  RunManager* runs = nullptr;
  amld::storage::StateStore* store = nullptr;
  base::Clock* clock = nullptr;
  std::shared_ptr<spdlog::logger> log;  // may be null
};

struct SweepControllerOptions {
  // How often the thread reads metrics while a sweep is unfinished.
  absl::Duration poll_interval = absl::Seconds(1);
};

class SweepController {
 public:
  SweepController(SweepControllerDeps deps, SweepControllerOptions options = {});
  ~SweepController();  // Shutdown()
  SweepController(const SweepController&) = delete;
  SweepController& operator=(const SweepController&) = delete;

  // Takes over the unfinished sweeps the store holds and handles cancels of
  // parent runs. Call once, after RunManager::Start.
  absl::Status Start();

  // Checks the spec (ValidateSweepSpec) and the children's config (as any
  // submit), records the parent, starts it and submits the first children.
  // INVALID_ARGUMENT for a bad spec; otherwise SubmitRun's codes.
  absl::StatusOr<amld::v1::Run> Submit(const amld::v1::RunConfig& config, uint32_t submitter_uid);

  // One pass over every unfinished sweep (see above).
  void Step();

  // The daemon's stepping thread; Shutdown stops and joins it (idempotent).
  void StartThread();
  void Shutdown();

  // Unfinished sweeps now.
  int active_sweeps() const;

 private:
  struct Child {
    amld::storage::RunStatus status = amld::v1::RunStatus::QUEUED;
    std::vector<double> values;  // the primary metric, in step order
    int evaluated = 0;           // intervals the policy has looked at
    bool stopped = false;        // the policy (or the time limit) canceled it
    uint64_t listener = 0;
    int64_t index = 0;
    std::optional<std::vector<double>> point;  // Bayesian sampling's (bayesian.h)
  };
  struct Sweep {
    std::string id;
    amld::v1::RunConfig config;  // the parent's: children template + spec
    amld::v1::SweepSpec spec;    // normalized
    uint32_t submitter_uid = 0;
    absl::Time started;
    bool cancel_requested = false;
    bool time_up = false;
    int64_t next_index = 0;
    std::map<std::string, Child> children;
  };

  void StepSweepLocked(Sweep& sweep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings `sweep.children` up to date from the store; false on a store error.
  bool RefreshChildrenLocked(Sweep& sweep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyPolicyLocked(Sweep& sweep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Submits children while the limits allow; false when the sweep failed.
  bool SubmitChildrenLocked(Sweep& sweep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the parent when it is done; true when it ended.
  bool MaybeFinishLocked(Sweep& sweep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailLocked(Sweep& sweep, const std::string& error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelChildLocked(Sweep& sweep, const std::string& child_id, Child& child,
                         const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropListenersLocked(Sweep& sweep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnParentCancel(const std::string& run_id, const std::string& reason);
  // Moves a QUEUED parent on to RUNNING.
  absl::Status StartParentLocked(Sweep& sweep, amld::storage::RunStatus status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Wake();
  bool WokenOrStopping() const ABSL_SHARED_LOCKS_REQUIRED(wake_mu_) { return woken_ || stopping_; }
  void Loop();

  SweepControllerDeps deps_;
  SweepControllerOptions options_;

  mutable absl::Mutex mu_;
  std::map<std::string, Sweep> sweeps_ ABSL_GUARDED_BY(mu_);

  mutable absl::Mutex wake_mu_;
  bool woken_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::thread thread_;
};

}  // namespace amld::daemon
