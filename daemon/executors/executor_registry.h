// ExecutorRegistry: the one Executor the run manager talks to. It sends each
// run to the executor of the run's compute target (RunConfig.compute_target,
// stored in the StateStore; proto amld/v1/compute.proto):
//   "" or "local"  the local executor, made by the daemon
//   an ssh target  one executor per target, made from its stored settings
//                  on the target's first use (factories.ssh)
//   a slurm target likewise (factories.slurm)
// A kind without a factory fails its runs' launch with UNIMPLEMENTED naming
// the kind. Each factory, with its validator, is the hook where an executor
// kind plugs in: the validator checks a target's settings before the
// compute service stores it (ValidateTarget), since only the kind knows
// what its fields mean (ssh/ssh_target.h, slurm/slurm_target.h).
//
// Routing: Launch by LaunchSpec.compute_target; Reattach by the target of
// the run as stored; Cancel and Placement by the executor that launched or
// re-attached the run (remembered until its exit callback). Exit and
// progress callbacks of every executor are passed on unchanged.
//
// A deleted target's executor is retired (Forget), never destroyed while
// the daemon runs: no run can still use it (the store refuses to delete a
// target an unfinished run names), and an executor must not be destroyed
// from its own callback thread. A target defined again under the same name
// gets a fresh executor from its new settings.
//
// Thread-safety: thread-safe. No lock is held while an executor is called
// (Launch, Reattach and Cancel may block on the network).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "amld/v1/compute.pb.h"
#include "daemon/executors/executor.h"
#include "storage/state/state_store.h"

namespace amld::daemon {

// Makes the executor of one target from its settings; called once per
// target (again after the target is deleted and defined anew). It must not
// contact the target: the first Launch or Reattach does.
using ExecutorFactory =
    std::function<absl::StatusOr<std::unique_ptr<Executor>>(const amld::v1::ComputeTarget&)>;

// Checks the settings of a target of one kind: OK, or INVALID_ARGUMENT
// saying what to change (amld::storage::InvalidComputeTarget).
using TargetValidator = std::function<absl::Status(const amld::v1::ComputeTarget&)>;

// System mode: the executor of an ssh target for one submitter, whose ssh
// and rsync run as them (ssh_executor.h: SshExecutorOptions::run_as).
using AccountExecutorFactory = std::function<absl::StatusOr<std::unique_ptr<Executor>>(
    const amld::v1::ComputeTarget&, const RunAs&)>;

struct ExecutorFactories {
  ExecutorFactory ssh;    // SshTarget; ssh_executor.h: NewSshExecutor
  ExecutorFactory slurm;  // SlurmTarget; slurm_executor.h: NewSlurmExecutor
  // Set (system mode): each submitter of an ssh target gets an executor of
  // their own from it, made on their first run there (Launch by the spec's
  // run_as, Reattach by the stored run's submitter); other kinds stay one
  // per target.
  AccountExecutorFactory ssh_as;
  // Unset: the kind's settings are stored unchecked.
  TargetValidator validate_ssh;    // ssh_target.h: ValidateSshTarget
  TargetValidator validate_slurm;  // slurm_target.h: ValidateSlurmTarget
};

// For the validators (ssh/ssh_target.h, slurm/slurm_target.h): their
// refusals' shape, INVALID_ARGUMENT "compute target "NAME": WHAT" (the
// store's, so every complaint reads alike); whether `s` has a byte that
// would split a word or a line in a shell or an ssh/sbatch argument
// (whitespace, control characters, DEL); whether it has a line break or NUL.
using amld::storage::InvalidComputeTarget;
bool HasSpaceOrControl(std::string_view s);
bool HasLineBreakOrNul(std::string_view s);

class ExecutorRegistry final : public Executor {
 public:
  // `store` must outlive the registry.
  ExecutorRegistry(std::unique_ptr<Executor> local, ExecutorFactories factories,
                   amld::storage::StateStore* store);
  ~ExecutorRegistry() override;

  void SetExitCallback(ExitCallback callback) override;
  void SetProgressCallback(ProgressCallback callback) override;
  std::string Placement(const std::string& run_id, const std::string& handle) const override;
  // NOT_FOUND when the spec's target does not exist (deleted after the run
  // was submitted); UNIMPLEMENTED for a kind without a factory; the
  // factory's error; else the target executor's Launch.
  absl::StatusOr<std::string> Launch(const LaunchSpec& spec) override;
  // By the spec's target, like Launch (which makes its executor if need be;
  // contacting it is up to that executor's check).
  absl::Status CheckCanEverHold(const LaunchSpec& spec) override;
  // By the target of the run as stored, like Reattach.
  absl::StatusOr<std::string> FindUnrecorded(const std::string& run_id,
                                             const std::filesystem::path& run_dir,
                                             const std::optional<RunAs>& run_as) override;
  absl::Status Reattach(const std::string& run_id, const std::filesystem::path& run_dir,
                        const std::string& handle) override;
  // NOT_FOUND when no executor holds the run (it ended, or never started).
  absl::Status Cancel(const std::string& run_id) override;

  // OK when `target` may be stored: the store's own rules
  // (amld::storage::ValidateComputeTarget: name, exactly one kind), then its
  // kind's validator. INVALID_ARGUMENT saying what to change otherwise. Does
  // not contact the target.
  absl::Status ValidateTarget(const amld::v1::ComputeTarget& target) const;

  // Retires the executor of a deleted target (see above); a no-op for a
  // target that has none yet.
  void Forget(const std::string& target_name);

  // The executor kinds this daemon can run: "local", and "ssh" and "slurm"
  // when their factories are set (DaemonInfo.executors).
  std::vector<std::string> Kinds() const;

 private:
  // The executor of `target_name` ("" means local), made on first use; with
  // `account`, that account's own for an ssh target when ssh_as is set.
  absl::StatusOr<Executor*> ExecutorFor(const std::string& target_name,
                                        const std::optional<RunAs>& account = std::nullopt);
  // The account a stored run's executor is chosen by (ssh_as set), else
  // nullopt.
  absl::StatusOr<std::optional<RunAs>> AccountOf(const amld::v1::Run& run) const;
  absl::StatusOr<std::unique_ptr<Executor>> Make(const amld::v1::ComputeTarget& target);
  void OnExit(const std::string& run_id, absl::StatusOr<ExitStatus> outcome);
  void OnProgress(const std::string& run_id, const RunProgress& progress);

  const ExecutorFactories factories_;
  amld::storage::StateStore* const store_;
  Executor* const local_;

  mutable absl::Mutex mu_;
  // Every executor ever made, the local one first; only ever appended to,
  // so the raw pointers below stay valid for the registry's life.
  std::vector<std::unique_ptr<Executor>> owned_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Executor*> by_target_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Executor*> by_run_ ABSL_GUARDED_BY(mu_);
  ExitCallback exit_callback_ ABSL_GUARDED_BY(mu_);
  ProgressCallback progress_callback_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amld::daemon
