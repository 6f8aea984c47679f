// RunManager: the run lifecycle. It accepts runs (SubmitRun), decides when
// they start (through the pure Scheduler), prepares their folders, hands them
// to the Executor, stores their outputs when they end, and tells watchers
// about every status change. The gRPC services are thin layers over it.
//
// Lifecycle of one run (every arrow is one StateStore::Transition):
//   QUEUED → PREPARING   a slot is free; a task materializes the snapshot into
//                        runs/<id>/wd and creates wd/outputs, wd/logs,
//                        user_logs/std_log.txt and system_logs/
//          → STARTING    committed before Executor::Launch, so a crash
//                        after it never launches the run a second time;
//                        the live ingester (live_ingester.h) starts
//                        watching the run's folders before the launch
//          → RUNNING     Launch returned; its handle is persisted first.
//                        An executor that only queued the run elsewhere
//                        (Slurm) says so during Launch (RunProgress with
//                        started == false): the run stays STARTING, its
//                        placement carrying that scheduler's words
//                        ("slurm:12 PENDING (Resources)",
//                        StateStore::SetRunPlacement, watchers told), and
//                        becomes RUNNING on a progress with started == true.
//                        It never goes back to QUEUED: a restart hands a
//                        QUEUED run on again, and this one was handed on.
//                        Ending while still waiting (canceled, refused
//                        there) goes from STARTING or CANCEL_REQUESTED to
//                        its end without RUNNING.
//          → FINALIZING  the executor reported the exit (exit code/signal
//                        recorded); a task stops the watching and brings
//                        the artifacts (outputs/, logs/, the std log) and
//                        metrics up to date, reading only changed files
//          → COMPLETED | FAILED | CANCELED, with a reason (run_plan.h)
// Cancel: QUEUED → CANCELED at once; PREPARING/STARTING/RUNNING →
// CANCEL_REQUESTED (then Executor::Cancel once the process exists);
// FINALIZING and terminal runs are left as they are.
//
// Recovery when the daemon starts (Start()): what was persisted decides, and
// nothing is ever launched twice.
//   QUEUED            stays queued, in the original order.
//   PREPARING         nothing was launched (STARTING is committed before any
//                     launch): the half-made run folder is removed and the
//                     run prepared again.
//   STARTING          with a handle: the launch finished, so it is re-adopted
//                     (→ RUNNING, unless the executor says during Reattach
//                     that it still waits elsewhere). Without one the daemon
//                     died inside Launch
//                     and cannot know whether the process started: FAILED,
//                     saying so and to resubmit — never a blind second launch.
//   RUNNING, FINALIZING, CANCEL_REQUESTED with a handle: Executor::Reattach;
//                     a run that ended meanwhile reports its exit at once and
//                     is finalized (again: storing artifacts is idempotent);
//                     a CANCEL_REQUESTED run is sent its cancel again. Its
//                     folders are watched again first, with a full rescan.
//   without a handle  RUNNING/FINALIZING: FAILED "daemon lost the run";
//                     CANCEL_REQUESTED: CANCELED (it never started).
//   Reattach failure  FAILED "daemon lost the run after a restart: …".
// Re-adopted runs hold slots even beyond the limit, and keep the GPUs they
// were given (Run.assigned_gpus, recorded with PREPARING); nothing new starts
// until every run found at start is taken over. A queued run the target can
// no longer hold (the config shrank) is FAILED saying so, never left queued.
//
// Scheduling (scheduler.h): priority, then users taking turns, then FIFO,
// with strict head-of-line blocking; a local run holds its CPU slots and
// GPUs from PREPARING to its end and sees only its GPUs through
// CUDA_VISIBLE_DEVICES ("" without GPUs). Runs for other targets hold a slot
// but no local CPUs or GPUs.
//
// Latency: creating folders costs ~0.2-1 ms each on this kind of disk, so a
// spare run folder (runs/.spare: wd/, user_logs/std_log.txt, system_logs/) is
// made ahead of time and renamed into place at PREPARING; the next spare is
// made after the launch, off the path from submit to the first instruction.
// After a launch the snapshot just used (up to 64 MiB, 5,000 blobs) is also
// copied into a filled spare (runs/.spare-with-<digest>): the next run of the
// same snapshot — a sweep, a resubmit without edits — takes it with one
// rename instead of materializing (5-9 ms for 300 files here). Nothing
// writes into a spare, and a run's own copy is never shared.
//
// Run folder retention: a finished run's folder (a full copy of its
// snapshot plus what it wrote) is only a scratch copy once the run is
// terminal: its outputs, logs and metrics are in the CAS and the state store,
// which is what downloads, file listings and StreamLogs read from then. So
// only the folders of the newest `keep_finished_run_folders` finished runs
// are kept; older ones are removed on a task, outside the lock, after the
// run's final ingestion. Start() applies the same rule to folders that
// earlier daemons left.
//
// No polling anywhere: work is posted to the TaskRunner as events happen
// (submit, slot freed, exit reported), and watchers are called on change.
//
// Thread-safety: thread-safe. One mutex guards the in-memory state and
// serializes status transitions with the notification of watchers, so a
// watcher sees every change exactly once and in order. Executor calls and
// slow work (materialize, store outputs) happen outside it.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "amld/v1/runs.pb.h"
#include "base/clock.h"
#include "daemon/executors/executor.h"
#include "daemon/runs/run_plan.h"
#include "daemon/runs/scheduler.h"
#include "daemon/runs/submit_validation.h"
#include "base/task_runner.h"
#include "storage/cas.h"
#include "storage/state/state_store.h"

namespace spdlog {
class logger;
}

namespace amld::daemon {

class LiveIngester;

struct RunManagerOptions {
  // <data>/runs: each run gets runs/<run_id>/.
  std::filesystem::path runs_root;
  // Runs holding a slot (PREPARING through FINALIZING) at most.
  int max_concurrent_runs = 1;
  // The rest of the local target's capacity (scheduler.h): CPU slots
  // (<= 0: as many as max_concurrent_runs) and GPU ids.
  int cpus = 0;
  std::vector<int> gpus;
  // Limits on max_run_duration_seconds (run_plan.h EffectiveRunDuration);
  // 0: none.
  int64_t default_run_duration_seconds = 0;
  int64_t max_run_duration_seconds = 0;
  // SIGTERM → SIGKILL grace for cancel and timeout.
  absl::Duration kill_grace = absl::Seconds(10);
  // The environment every run starts from (CaptureDaemonEnvironment()).
  EnvList base_env;
  // Folders of finished runs kept (the newest by end time); older ones are
  // removed. 0: each is removed once its run has finished;
  // kKeepAllRunFolders: none is ever removed.
  int keep_finished_run_folders = 20;
};

// RunManagerOptions::keep_finished_run_folders: never remove a run folder.
inline constexpr int kKeepAllRunFolders = -1;

// What the manager works with; all must outlive it. `log` may be null
// (no logging).
struct RunManagerDeps {
  amld::storage::StateStore* store = nullptr;
  amld::storage::ContentStore* cas = nullptr;
  Executor* executor = nullptr;
  base::Clock* clock = nullptr;
  base::TaskRunner* tasks = nullptr;
  std::shared_ptr<spdlog::logger> log;
  // Stores outputs/, logs/ and metrics while runs run. Null: the manager
  // keeps one without a watcher (everything is stored at the end).
  LiveIngester* ingester = nullptr;
  // Housekeeping that no client or run waits for — removing old run
  // folders, filling the spare — at low priority. Null: `tasks`.
  base::TaskRunner* housekeeping = nullptr;
};

class RunManager {
 public:
  RunManager(RunManagerDeps deps, RunManagerOptions options);
  ~RunManager();
  RunManager(const RunManager&) = delete;
  RunManager& operator=(const RunManager&) = delete;

  // Installs the executor's exit callback and takes over the runs the store
  // holds in non-terminal statuses (see "Recovery" above). Call once, before
  // the first Submit.
  absl::Status Start();

  // Validates `config` (submit_validation.h), records the run as QUEUED in
  // one transaction and schedules it. Returns the QUEUED run.
  absl::StatusOr<amld::v1::Run> Submit(const amld::v1::RunConfig& config, uint32_t submitter_uid);

  // See "Cancel" above. Returns the run as it is after the request.
  // NOT_FOUND when no run has that id.
  absl::StatusOr<amld::v1::Run> Cancel(const std::string& run_id, const std::string& reason);

  // Called with the run after each status change, under the manager's lock:
  // it must be quick and must not call back into the manager.
  using RunListener = std::function<void(const amld::v1::Run&)>;
  struct Subscription {
    amld::v1::Run run;         // the state when subscribed
    uint64_t listener_id = 0;  // 0: the run is terminal, no listener kept
  };
  // The run's current state and, unless it is terminal, a listener for every
  // later change (atomically: no change is missed or seen twice). NOT_FOUND
  // when no run has that id.
  absl::StatusOr<Subscription> Subscribe(const std::string& run_id, RunListener listener);
  // Removes a listener; once it returns the listener is never called again.
  void Unsubscribe(const std::string& run_id, uint64_t listener_id);

  RunPaths PathsFor(const std::string& run_id) const;
  int max_concurrent_runs() const { return options_.max_concurrent_runs; }
  int64_t runs_submitted() const;
  // Runs waiting for a slot / holding one, as the scheduler sees them.
  int64_t queued_runs() const;
  int64_t runs_holding_slots() const;
  // The local target's capacity and what of it is free now.
  struct LocalTargetState {
    TargetCapacity capacity;
    int free_cpus = 0;
    std::vector<int> free_gpus;
  };
  LocalTargetState local_target() const;
  const RunManagerOptions& options() const { return options_; }

 private:
  enum class Phase { kQueued, kPreparing, kStarting, kRunning, kFinalizing };
  struct ActiveRun {
    Phase phase = Phase::kQueued;
    amld::storage::RunStatus status = amld::v1::RunStatus::QUEUED;  // as stored
    amld::v1::RunConfig config;
    bool cancel_requested = false;
    std::string cancel_reason;
    // An exit reported while Launch had not returned yet.
    std::optional<absl::StatusOr<ExitStatus>> early_exit;
    // The executor said the run waits in another scheduler's queue (a
    // RunProgress with started == false, e.g. a pending Slurm job): it stays
    // STARTING, with `waiting_placement` as its placement, until a progress
    // with started == true makes it RUNNING.
    bool waiting_elsewhere = false;
    std::string waiting_placement;
  };

  absl::StatusOr<amld::v1::Run> TransitionLocked(const std::string& run_id,
                                                 amld::storage::RunStatus to,
                                                 const amld::storage::TransitionDetails& details)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a run that holds a slot but has no process (prepare failed, cancel
  // before launch, launch failed).
  void EndWithoutProcessLocked(const std::string& run_id, amld::storage::RunStatus status,
                               const std::string& error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BeginFinalizeLocked(const std::string& run_id, const absl::StatusOr<ExitStatus>& outcome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetLocked(const std::string& run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void Prepare(const std::string& run_id);
  absl::Status PrepareRunFolder(const amld::v1::RunConfig& config, const RunPaths& paths);
  base::TaskRunner& Housekeeping() const;
  std::filesystem::path SparePath() const;
  void ReplenishSpare();
  // A spare with `root` materialized in its wd/, for the next run of the
  // same snapshot (a sweep, a resubmit without edits).
  std::filesystem::path FilledSparePath(const amld::storage::Digest& root) const;
  void FillSpareWith(const amld::storage::Digest& root);
  // Builds a spare under a temporary name and renames it to `dest`; with
  // `snapshot`, materialized into its wd/.
  void MakeSpare(const std::filesystem::path& dest, const amld::storage::Digest* snapshot);
  void RemoveSpares(bool filled, bool temporary);
  void RemoveStaleSpares();
  void Launch(const std::string& run_id, const amld::v1::RunConfig& config,
              const std::vector<int>& gpus, absl::Duration prepare_time);
  // The run's time limit after the daemon's limits, and its place in the
  // scheduler's order; INVALID_ARGUMENT when the target cannot hold it.
  absl::Status ApplyLimitsLocked(amld::v1::RunConfig* config) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finalize(const std::string& run_id, FinalOutcome outcome);
  void OnExit(const std::string& run_id, absl::StatusOr<ExitStatus> outcome);
  void OnProgress(const std::string& run_id, const RunProgress& progress);
  // Records a placement change of a run that keeps its status, and tells
  // the run's listeners.
  void SetPlacementLocked(const std::string& run_id, const std::string& placement)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Recover(const amld::v1::Run& run);

  // Records that `run_id` is terminal (its files stored) and posts the
  // removal of the folders beyond the newest keep_finished_run_folders.
  void NoteFinishedLocked(const std::string& run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PruneFinishedFoldersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The terminal runs whose folders earlier daemons left, oldest end first.
  std::vector<std::string> ScanFinishedFolders();
  void RemoveRunFolders(const std::vector<std::string>& run_ids);

  RunManagerDeps deps_;
  RunManagerOptions options_;
  std::unique_ptr<LiveIngester> own_ingester_;  // when deps_ has none
  SnapshotChecker snapshot_checker_;

  mutable absl::Mutex mu_;
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ActiveRun> active_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<std::pair<uint64_t, RunListener>>> listeners_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_listener_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t runs_submitted_ ABSL_GUARDED_BY(mu_) = 0;
  // Until Start() has taken over every run it found, nothing new starts: a
  // re-adopted run's GPUs must be marked taken before any are handed out.
  bool recovering_ ABSL_GUARDED_BY(mu_) = true;
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
  // Terminal runs whose folders may still exist, oldest end first.
  std::deque<std::string> finished_folders_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amld::daemon
