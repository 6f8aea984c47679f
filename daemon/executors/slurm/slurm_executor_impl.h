// The Slurm executor's class, shared by its three files (the contract is
// slurm_executor.h):
//   slurm_executor.cc  the Executor calls: Launch (shim, wd/ copy, job.sh,
//                      sbatch), Reattach, Cancel, Placement; construction
//   slurm_poller.cc    the poller thread: squeue for all jobs, scancel,
//                      progress, and where a finished job's record comes
//                      from (scontrol, sacct, jobcomp)
//   slurm_finish.cc    a job's end: files copied back, exit.json read, the
//                      exit callback; the per-run executor log
// Every Slurm client call goes through the CommandRunner the executor was
// given, so tests step the poller with a fake (tests/testing/).
//
// Thread-safety: as Executor; see the members.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/executor.h"
#include "daemon/executors/shim/shim_protocol.h"
#include "daemon/executors/slurm/slurm_executor.h"
#include "daemon/executors/slurm/slurm_job.h"

namespace amld::daemon::slurm {

// For a while after a submit, a cancel or a change of state, polls come
// every kFastPoll (a job starts 0.2-1 s after sbatch, on the controller's
// 1 s cycle), then every poll_interval.
inline constexpr absl::Duration kFastPoll = absl::Milliseconds(100);
inline constexpr absl::Duration kFastPollWindow = absl::Seconds(3);

// One line, with the time, in the daemon's system_logs/slurm-executor.log:
// what a person looking at a run needs to know about its Slurm job.
void LogForRun(const std::filesystem::path& run_dir, const std::string& message);

// Appends to `to` what `from` has beyond `to`'s size: logs only grow, and
// the destination's size is the offset, so this is idempotent and resumes
// after a daemon restart. A missing `from` is nothing to copy.
absl::Status CopyGrowth(const std::filesystem::path& from, const std::filesystem::path& to);

// CopyGrowth of std_log.txt and of every other rank's log (rank 0's is
// std_log.txt in both folders).
absl::Status CopyLogsGrowth(const std::filesystem::path& shared_dir,
                            const std::filesystem::path& run_dir);

// Copies the files under `shared_dir`/uploads (the SDK's upload_file to
// names outside outputs/ and logs/) that `run_dir`/uploads lacks or has
// with another size or time, before the metrics lines that name them are
// copied. Nothing when there is no such folder.
absl::Status CopyNewUploads(const std::filesystem::path& shared_dir,
                            const std::filesystem::path& run_dir);

// The shim's exit record in `shared_dir`; nullopt when there is none (then
// *problem says why when it is not simply missing).
std::optional<shim::ExitRecord> ReadExitRecord(const std::filesystem::path& shared_dir,
                                               std::string* problem);

// Slurm's clients say "Invalid job id" for a job they no longer know.
bool InvalidJobIdError(const CommandResult& r);

class SlurmExecutor final : public Executor {
 public:
  SlurmExecutor(SlurmExecutorOptions options, std::string shim_name);
  // Stops and joins the poller; jobs go on in Slurm.
  ~SlurmExecutor() override;

  void SetExitCallback(ExitCallback callback) override;
  void SetProgressCallback(ProgressCallback callback) override;
  // `sbatch --test-only` of the run's request, as its submitter in system
  // mode; a request the cluster could hold once for a submitter is taken as
  // fitting for them until the target is redefined.
  absl::Status CheckCanEverHold(const LaunchSpec& spec) override;
  absl::StatusOr<std::string> Launch(const LaunchSpec& spec) override;
  // "slurm:<job id>", and " on <nodes>" once the job was seen running.
  std::string Placement(const std::string& run_id, const std::string& handle) const override;
  absl::Status Reattach(const std::string& run_id, const std::filesystem::path& run_dir,
                        const std::string& handle) override;
  // The job named after the run (squeue -t all, then sacct when there is
  // accounting), asked as `run_as` when given; the newest when there are
  // several. The handle carries run_as's uid, as Launch's does.
  absl::StatusOr<std::string> FindUnrecorded(const std::string& run_id,
                                             const std::filesystem::path& run_dir,
                                             const std::optional<RunAs>& run_as) override;
  absl::Status Cancel(const std::string& run_id) override;

 private:
  struct Job {
    std::string job_id;
    std::filesystem::path run_dir;     // the daemon's runs/<id>
    std::filesystem::path shared_dir;  // <workdir>/<id>
    // System mode: the submitter, whom the job, its shared dir and every
    // Slurm client call about it belong to (sbatch, squeue, scancel, ...).
    std::optional<RunAs> run_as;
    bool cancel_pending = false;
    bool progress_sent = false;
    RunProgress progress;           // the last one reported
    std::string last_poll_problem;  // logged once per distinct problem
    std::optional<absl::Time> final_without_exit_file_since;
  };

  // Says, on the caller's thread, that the run waits in Slurm (executor.h:
  // SetProgressCallback); the poller reports what Slurm says next.
  void ReportWaiting(const std::string& run_id, const std::string& job_id,
                     const std::string& detail);
  static absl::Status AlreadyWatched(const std::string& run_id);
  void PollSoonLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs a Slurm client; as `run_as` when given (a system-mode run's
  // submitter), else as the daemon.
  absl::StatusOr<CommandResult> RunSlurm(std::vector<std::string> argv,
                                         std::optional<std::vector<std::string>> env = {},
                                         const std::optional<RunAs>& run_as = {});

  // slurm_executor.cc
  absl::StatusOr<std::filesystem::path> EnsureShimOnSharedDir();
  absl::StatusOr<std::filesystem::path> EnsureLaunchOnSharedDir();
  // options_.run_python copied to <workdir>/.amld/<its folder name>/ once.
  absl::StatusOr<std::filesystem::path> EnsureRunPythonOnSharedDir();
  absl::StatusOr<std::filesystem::path> InstallOnSharedDirLocked(
      const std::filesystem::path& source, const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shim_mu_);
  SubmitSpec SubmitSpecFor(const LaunchSpec& spec, const std::filesystem::path& shared_dir) const;
  absl::StatusOr<std::string> Submit(const LaunchSpec& spec, const std::filesystem::path& run_dir,
                                     const std::filesystem::path& shared_dir);
  // slurm_poller.cc
  void ThreadMain();
  void PollOnce();
  void SendCancels(const std::vector<std::pair<std::string, Job>>& jobs);
  void PollJob(const std::string& run_id, Job job, const std::map<std::string, JobInfo>& queue,
               bool queue_ok);
  std::optional<JobInfo> FinalRecordOffQueue(const Job& job, const std::string& run_id);
  std::optional<JobInfo> ScontrolJob(const Job& job);
  std::optional<JobInfo> SacctJob(const Job& job);
  std::string JobCompFile();
  void SendProgress(const std::string& run_id, const RunProgress& progress);
  // Updates the stored copy of a job, if it is still watched.
  void UpdateJob(const std::string& run_id, const std::function<void(Job&)>& update);
  // slurm_finish.cc
  void Finish(const std::string& run_id, const Job& job, const JobInfo& info,
              const std::optional<shim::ExitRecord>& record);
  void FinishLost(const std::string& run_id, const Job& job, const std::string& problem);
  absl::Status CopyBack(const Job& job);

  const SlurmExecutorOptions options_;
  CommandRunner& runner_;
  const std::string shim_name_;  // amld-shim-<digest prefix>

  absl::Mutex shim_mu_;  // one install at a time
  std::string launch_name_ ABSL_GUARDED_BY(shim_mu_);  // amld-launch-<digest prefix>

  mutable absl::Mutex mu_;
  ExitCallback exit_callback_ ABSL_GUARDED_BY(mu_);
  ProgressCallback progress_callback_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  // CheckCanEverHold's requests the cluster can hold: (submitter uid, -1 in
  // user mode; its sbatch arguments).
  std::set<std::pair<int64_t, std::string>> fitting_requests_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool poll_soon_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time fast_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  // Poller thread only.
  std::optional<std::string> jobcomp_file_;  // resolved once
  bool sacct_unavailable_ = false;
  std::thread thread_;  // the poller; joined by the destructor
};

}  // namespace amld::daemon::slurm
