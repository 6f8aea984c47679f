// RunManager: the run lifecycle. It accepts runs (SubmitRun), decides when
// they start (through the pure Scheduler), prepares their folders, hands them
// to the Executor, stores their outputs when they end, and tells watchers
// about every status change. The gRPC services are thin layers over it.
//
// Lifecycle of one run (every arrow is one StateStore::Transition):
//   QUEUED → PREPARING   a slot is free; a task materializes the snapshot into
//                        runs/<id>/wd and creates wd/outputs, wd/logs,
//                        user_logs/std_log.txt and system_logs/; a managed
//                        environment not built yet is built (or waited
//                        for) meanwhile, the PREPARING transition's reason
//                        saying "building environment <short digest>"
//                        (daemon/envs/env_builder.h)
//          → STARTING    committed before Executor::Launch, so a crash
//                        after it never launches the run a second time;
//                        the live ingester (live_ingester.h) starts
//                        watching the run's folders before the launch
//          → RUNNING     Launch returned; its handle is stored in the
//                        same commit (alone when the run stays STARTING).
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
// Recovery when the daemon starts (Start()): recovery.h says what happens
// to each unfinished run; nothing is ever launched twice, and nothing new
// starts until every run found at start is taken over. Start() and the
// manager's half of recovery are defined in recovery.cc.
//
// Scheduling (scheduler.h): priority, then users taking turns, then FIFO,
// with strict head-of-line blocking; a local run holds its CPU slots and
// GPUs from PREPARING to its end and sees only its GPUs through
// CUDA_VISIBLE_DEVICES ("" without GPUs). Runs for other targets hold a slot
// but no local CPUs or GPUs.
//
// Run folders: the spare folders that make PREPARING a rename, and the
// removal of finished runs' folders beyond keep_finished_run_folders, are
// the RunFolderPool's (run_folder_pool.h), which has its own lock.
//
// No polling anywhere: work is posted to the TaskRunner as events happen
// (submit, slot freed, exit reported), and watchers are called on change.
//
// Thread-safety: thread-safe. One mutex guards the in-memory state and
// serializes status transitions with the notification of watchers, so a
// watcher sees every change exactly once and in order. Executor calls and
// slow work (materialize, store outputs) happen outside it. The folder
// pool's lock is taken after it, never before (the pool calls nothing back).
#pragma once

#include <cstdint>
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
#include "daemon/envs/env_builder.h"
#include "daemon/envs/env_registry.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/executor.h"
#include "daemon/runs/run_folder_pool.h"
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
  // Where run folders live, and how many finished ones are kept.
  RunFolderPoolOptions folders;
  // Runs holding a slot (PREPARING through FINALIZING) at most; < 1 counts
  // as 1 (the daemon first makes it the number of cores).
  int max_concurrent_runs = 0;
  // The rest of the local target's capacity (scheduler.h): CPU slots
  // (<= 0: as many as max_concurrent_runs) and GPU ids.
  int cpus = 0;
  std::vector<int> gpus;
  // GPUs of a local run whose config has no `resources` (amld.yaml
  // default_gpus); 0: none.
  int default_gpus = 0;
  // Limits on max_run_duration_seconds (run_plan.h EffectiveRunDuration);
  // 0: none.
  int64_t default_run_duration_seconds = 0;
  int64_t max_run_duration_seconds = 0;
  // SIGTERM → SIGKILL grace for cancel and timeout.
  absl::Duration kill_grace = absl::Seconds(10);
  // First pause before a status that could not be recorded is tried again
  // (RecordLaterLocked).
  absl::Duration record_retry = absl::Seconds(1);
  // The environment every run starts from (CaptureDaemonEnvironment()),
  // unless a local run brings its submitter's (UseSubmitterEnvironment).
  EnvList base_env;
  // Which of a submitter's variables a run may take (amld.yaml).
  SubmitterEnvPolicy submitter_env;
  // Managed environments (amld.yaml `environments:`); the daemon sets
  // environments.root to <data>/envs. No root: they are refused at submit.
  EnvironmentOptions environments;
  // System mode (`amld --system`): each run runs as its submitter's account
  // (LaunchSpec::run_as, daemon/executors/run_as.h). What cannot run as the
  // submitter yet is refused at submit with UNIMPLEMENTED: managed
  // environments (they would be built by root). Slurm jobs and SSH
  // connections are the submitter's (those executors run Slurm's clients,
  // ssh and rsync with their uid).
  bool run_as_submitter = false;
  // Per-user caps on the local target (amld.yaml `per_user:`; scheduler.h).
  UserLimits user_limits;
  // amld's azureml alias, put on runs' PYTHONPATH (run_plan.h
  // AddAzuremlAlias); empty: none. The daemon writes it at start.
  std::filesystem::path azureml_alias_dir;
};

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
  // Runs the environment builder's commands (venv, pip). Null:
  // SystemCommandRunner().
  CommandRunner* environment_commands = nullptr;
};

// What a child run (of a sweep) is submitted with.
struct RunSubmitOptions {
  std::string parent_run_id{};  // empty: none; else NOT_FOUND unless it exists
  // Empty: a fresh id. Set: exactly this id, ALREADY_EXISTS when taken — a
  // sweep names its children so that a restart never submits one twice.
  std::string run_id{};
};

class RunManager {
 public:
  RunManager(RunManagerDeps deps, RunManagerOptions options);
  ~RunManager();
  RunManager(const RunManager&) = delete;
  RunManager& operator=(const RunManager&) = delete;

  // Installs the executor's callbacks, starts the folder pool and takes over
  // the runs the store holds in non-terminal statuses (recovery.h). Call
  // once, before the first Submit.
  absl::Status Start();

  using SubmitOptions = RunSubmitOptions;

  // Validates `config` (submit_validation.h), records the run as QUEUED in
  // one transaction and schedules it. Returns the QUEUED run.
  // INVALID_ARGUMENT for a config with a sweep (a parent run: SubmitParent).
  absl::StatusOr<amld::v1::Run> Submit(const amld::v1::RunConfig& config, uint32_t submitter_uid,
                                       const SubmitOptions& options = {});

  // See "Cancel" above; cancelling a run also cancels its unfinished
  // children (a sweep's). Returns the run as it is after the request.
  // NOT_FOUND when no run has that id.
  absl::StatusOr<amld::v1::Run> Cancel(const std::string& run_id, const std::string& reason);

  // Deletes an ended run (StateStore::DeleteRun) and its folder, and a
  // sweep's children with it; returns the ids deleted, the run first.
  // FAILED_PRECONDITION when it or a child has not ended; PERMISSION_DENIED
  // when `caller_uid` is neither root nor the run's submitter.
  absl::StatusOr<std::vector<std::string>> Delete(const std::string& run_id, uint32_t caller_uid);

  // Parent runs (a sweep: RunConfig.sweep set) run no process: another part
  // of the daemon (daemon/sweeps/) drives them. The manager records them,
  // tells their listeners about every change and never schedules, recovers
  // or launches them.
  //
  // Checks the config of the parent's children as Submit would (the sweep
  // itself is the caller's to check) and records the parent QUEUED.
  absl::StatusOr<amld::v1::Run> SubmitParent(const amld::v1::RunConfig& config,
                                             uint32_t submitter_uid);
  // Records a parent run's status change and tells its listeners.
  absl::StatusOr<amld::v1::Run> TransitionParent(const std::string& run_id,
                                                 amld::storage::RunStatus to,
                                                 const amld::storage::TransitionDetails& details);
  // Called (outside the manager's lock) when Cancel is asked of a parent
  // run that has not ended, before its children are canceled.
  using ParentCancelHandler =
      std::function<void(const std::string& run_id, const std::string& reason)>;
  void SetParentCancelHandler(ParentCancelHandler handler);
  static bool IsParentRun(const amld::v1::RunConfig& config) { return config.has_sweep(); }

  // Interactive runs (RunConfig.interactive: azureml's
  // Experiment.start_logging) have no process either: Submit records them
  // QUEUED → PREPARING → STARTING → RUNNING at once; they are never
  // scheduled, launched or recovered, keep RUNNING across restarts, and end
  // by EndInteractive (or Cancel). Their metrics and files come through
  // Runs.UpdateRun.
  static bool IsInteractive(const amld::v1::RunConfig& config) { return config.interactive(); }
  // Ends an interactive run: COMPLETED (through FINALIZING), FAILED with
  // `error`, or CANCELED (through CANCEL_REQUESTED). FAILED_PRECONDITION
  // for a run that is not interactive or has ended; INVALID_ARGUMENT for
  // another status.
  absl::StatusOr<amld::v1::Run> EndInteractive(const std::string& run_id,
                                               amld::storage::RunStatus to,
                                               const std::string& error);

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
  // CAS garbage collection removed objects: snapshots found complete before
  // are checked again at their next submit (submit_validation.h).
  void ForgetCheckedSnapshots() { snapshot_checker_.ForgetAll(); }
  // Runs waiting for a slot / holding one, as the scheduler sees them.
  int64_t queued_runs() const;
  int64_t runs_holding_slots() const;
  // The local target's capacity and what of it is free now.
  struct LocalTargetState {
    TargetCapacity capacity;
    int free_cpus = 0;
    std::vector<int> free_gpus;
    std::vector<UserUsage> users;  // what each user holds and has queued
  };
  LocalTargetState local_target() const;
  const RunManagerOptions& options() const { return options_; }
  // The environment builder; null when managed environments are off.
  EnvironmentBuilder* environments() const { return environments_.get(); }
  // Registered and curated environments; null when there is no registry.
  EnvironmentRegistry* environment_registry() const { return registry_.get(); }

 private:
  enum class Phase { kQueued, kPreparing, kStarting, kRunning, kFinalizing };
  struct ActiveRun {
    Phase phase = Phase::kQueued;
    amld::storage::RunStatus status = amld::v1::RunStatus::QUEUED;  // as stored
    amld::v1::RunConfig config;
    uint32_t submitter_uid = 0;
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
    // The last pause before recording its status again; zero until then.
    absl::Duration record_retry = absl::ZeroDuration();
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

  // What the run holds of the local target (runs for another target hold a
  // slot only), and its place in the queue.
  static RunResources ResourcesOf(const amld::v1::RunConfig& config);
  static QueueRequest QueueRequestOf(const amld::v1::RunConfig& config, uint32_t submitter_uid);

  void Prepare(const std::string& run_id);
  // After the folder (and the environment, when the run has a managed one)
  // is ready: STARTING, then Launch. `prefix` is the environment's, or
  // empty.
  void FinishPrepare(const std::string& run_id, const amld::v1::RunConfig& config,
                     const std::vector<int>& gpus, absl::Duration prepare_time,
                     absl::StatusOr<std::filesystem::path> prefix);
  void Launch(const std::string& run_id, const amld::v1::RunConfig& config,
              const std::vector<int>& gpus, absl::Duration prepare_time,
              const std::filesystem::path& environment_prefix);
  // Stores the executor's handle of a run that is not becoming RUNNING now
  // (RUNNING stores it in the same commit); a failure is logged.
  void SaveHandleLocked(const std::string& run_id, const std::string& handle)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Submit's checks of a managed environment (in system mode, for the
  // submitter: their build runs the conda tool as them); sets its digest in
  // `config`.
  absl::Status CheckEnvironment(amld::v1::RunConfig* config, uint32_t submitter_uid) const;
  // The run's time limit after the daemon's limits, and its place in the
  // scheduler's order; INVALID_ARGUMENT when the target cannot hold it.
  absl::Status ApplyLimitsLocked(amld::v1::RunConfig* config) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finalize(const std::string& run_id, FinalOutcome outcome);
  // The terminal transition after Finalize stored the outputs.
  void RecordEndLocked(const std::string& run_id, FinalOutcome outcome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A transition to FINALIZING or to the end that failed for a reason that
  // passes by itself (the database's disk full) is retried after a pause,
  // doubling from options_.record_retry up to kLastRecordRetry, on a task
  // that sleeps: the run keeps its slot and ends by itself once space
  // returns, instead of staying RUNNING until a restart.
  static bool MayPassByItself(const absl::Status& error);
  void RecordLaterLocked(const std::string& run_id, std::function<void()> again)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static constexpr absl::Duration kLastRecordRetry = absl::Seconds(10);
  void OnExit(const std::string& run_id, absl::StatusOr<ExitStatus> outcome);
  void OnProgress(const std::string& run_id, const RunProgress& progress);
  // Records a placement change of a run that keeps its status, and tells
  // the run's listeners.
  void SetPlacementLocked(const std::string& run_id, const std::string& placement)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes over one run found unfinished at start (recovery.cc).
  absl::Status Recover(const amld::v1::Run& run);
  // The handle of a run started but never recorded, as the executor finds
  // it (recorded now); else its error, with `not_found` saying where it
  // looked (empty when the executor cannot look).
  absl::StatusOr<std::string> FindUnrecorded(const amld::v1::Run& run, std::string* not_found);
  // Submit's checks: the config with the daemon's limits applied. The
  // target is asked as `submitter_uid` in system mode.
  absl::StatusOr<amld::v1::RunConfig> CheckSubmission(const amld::v1::RunConfig& submitted,
                                                      uint32_t submitter_uid);
  // Submit of an interactive run (see IsInteractive).
  absl::StatusOr<amld::v1::Run> SubmitInteractive(const amld::v1::RunConfig& config,
                                                  uint32_t submitter_uid,
                                                  const SubmitOptions& options);
  // Records `config` QUEUED under a fresh id (or options.run_id).
  absl::StatusOr<amld::v1::Run> InsertQueued(const amld::v1::RunConfig& config,
                                             uint32_t submitter_uid, const SubmitOptions& options);
  // Cancels every unfinished child of `parent_id`.
  void CancelChildren(const std::string& parent_id, const std::string& reason);

  RunManagerDeps deps_;
  RunManagerOptions options_;
  std::unique_ptr<LiveIngester> own_ingester_;  // when deps_ has none
  SnapshotChecker snapshot_checker_;
  RunFolderPool folders_;
  std::unique_ptr<EnvironmentBuilder> environments_;  // null: managed environments refused
  std::unique_ptr<EnvironmentRegistry> registry_;     // made by Start()

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
  ParentCancelHandler parent_cancel_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amld::daemon
