// The SSH executor's class, shared by its three files (the contract is
// ssh_executor.h; the remote scripts and the handle are in ssh_run.h):
//   ssh_executor.cc  the Executor calls: Launch (host preparation, shim
//                    install, rsync, start), Reattach, Cancel; the threads
//   ssh_follow.cc    one run's thread: the remote tail that appends to the
//                    log and notices the end, periodic pulls, cancel
//   ssh_finish.cc    a run's end: log catch-up, the last pull, exit.json,
//                    the remote clean-up; the per-run executor log
// Every ssh and rsync call goes through the SshRemote, which goes through
// the CommandRunner the executor was given: tests step a run with a fake.
//
// Threads: one per followed run, owned by the executor. A thread that is
// done puts its id on finished_; the next StartFollowing (or the
// destructor) joins it. The destructor stops and joins them all.
//
// Thread-safety: as Executor; see the members.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/file_util.h"
#include "daemon/executors/command_runner.h"
#include "daemon/executors/executor.h"
#include "daemon/executors/ssh/ssh_executor.h"
#include "daemon/executors/ssh/ssh_remote.h"
#include "daemon/executors/ssh/ssh_run.h"

namespace amld::daemon::ssh {

class SshExecutor final : public Executor {
 public:
  SshExecutor(SshExecutorOptions options, SshRemote remote)
      : options_(std::move(options)), remote_(std::move(remote)) {}
  // Stops the threads (and their ssh processes) without calling back, joins
  // them, closes the master connection. Runs go on on the host.
  ~SshExecutor() override;

  void SetExitCallback(ExitCallback callback) override {
    absl::MutexLock lock(&mu_);
    exit_callback_ = std::move(callback);
  }
  std::string Placement(const std::string&, const std::string&) const override {
    return absl::StrCat("ssh:", remote_.Describe());
  }
  absl::StatusOr<std::string> Launch(const LaunchSpec& spec) override;
  // The run's supervisor, when the launch script got as far as its lock
  // (FindLaunchScript); starts nothing.
  // `run_as` is this executor's own submitter already (system mode: one
  // executor per submitter).
  absl::StatusOr<std::string> FindUnrecorded(const std::string& run_id,
                                             const std::filesystem::path& run_dir,
                                             const std::optional<RunAs>& run_as) override;
  absl::Status Reattach(const std::string& run_id, const std::filesystem::path& run_dir,
                        const std::string& handle) override;
  absl::Status Cancel(const std::string& run_id) override;

 private:
  // One run being followed, shared by its thread and Cancel.
  struct Follow {
    std::string run_id;
    std::filesystem::path local_dir;
    RemoteRun remote;
    base::ScopedFd wake;  // eventfd: cancel or stop
    std::atomic<bool> cancel{false};
    std::atomic<bool> stop{false};
  };
  using Outcome = absl::StatusOr<ExitStatus>;
  // kWake: a cancel arrived; kTick: `until` passed.
  enum class Woke { kStop, kWake, kTick, kFollowerEnded };

  // ssh_executor.cc
  absl::Status PrepareHost();
  // Copies kRemoteTools entry `tool` (beside the local shim) to the host.
  absl::Status InstallTool(const std::string& remote_workdir, const std::string& tool,
                           const std::string& digest);
  // Copies options_.run_python to the host as .amld/<its folder name>.
  absl::Status InstallRunPython(const std::string& remote_workdir);
  absl::StatusOr<RemoteRun> StartShim(const std::string& remote_dir);
  // ALREADY_EXISTS when `run_id` is followed already (launched or reattached).
  absl::Status NotFollowed(const std::string& run_id) ABSL_LOCKS_EXCLUDED(mu_);
  void StartFollowing(RemoteRun remote, const std::string& run_id,
                      const std::filesystem::path& local_dir, bool reattached);
  // Joins the threads that are done (none of them is the caller).
  void JoinFinishedThreads();

  // ssh_follow.cc
  // The thread of one run: follows it to its end and reports it.
  void FollowThread(std::shared_ptr<Follow> f, bool reattached, uint64_t thread_id);
  // The outcome; nullopt when the executor is stopping.
  std::optional<Outcome> FollowToEnd(Follow& f, bool reattached);
  absl::StatusOr<std::unique_ptr<RunningCommand>> StartFollower(Follow& f, bool* multiplexed);
  void ReleaseFollowerSlot(bool multiplexed);
  Woke Wait(Follow& f, RunningCommand* follower, absl::Time until);
  bool SendCancel(Follow& f);
  absl::StatusOr<Probe> AskHost(Follow& f);

  // ssh_finish.cc
  Outcome Finish(Follow& f, const Probe& probe);
  Outcome Lost(Follow& f, const absl::Status& why);
  absl::Status CatchUpLog(Follow& f);
  absl::Status Pull(Follow& f, bool final);
  void Note(const Follow& f, const std::string& message) const;

  const SshExecutorOptions options_;
  const SshRemote remote_;

  absl::Mutex setup_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  bool host_ready_ ABSL_GUARDED_BY(setup_mu_) = false;
  std::string remote_workdir_ ABSL_GUARDED_BY(setup_mu_);  // absolute
  // kRemoteTools found beside the local shim → their digests.
  std::map<std::string, std::string> tool_digests_ ABSL_GUARDED_BY(setup_mu_);
  // The host's copy of amld's Python for runs ("" when there is none).
  std::string remote_python_dir_ ABSL_GUARDED_BY(setup_mu_);

  absl::Mutex mu_;
  ExitCallback exit_callback_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Follow>> follows_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> finished_ ABSL_GUARDED_BY(mu_);  // in threads_, done
  uint64_t next_thread_id_ ABSL_GUARDED_BY(mu_) = 0;
  int multiplexed_followers_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amld::daemon::ssh
